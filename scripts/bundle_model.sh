#!/usr/bin/env bash
# Retrain the bundled model with the default recipe and copy it into the package.
# Usage: scripts/bundle_model.sh [--data-dir DIR]   (about 2-3 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
digitsum train --seed 0 --threads 2 --out runs/bundle --overwrite "$@"
mkdir -p src/digitsum/weights
cp runs/bundle/model.safetensors runs/bundle/config.json runs/bundle/metrics.json runs/bundle/metrics.jsonl \
   runs/bundle/calibration.json runs/bundle/novelty.json runs/bundle/novelty.safetensors \
   src/digitsum/weights/
echo "bundled model updated in src/digitsum/weights/; update README's figures (tests/test_bundled.py checks them)"
