#!/usr/bin/env bash
# The CUDA path, for a machine with a CUDA GPU (about ten minutes): one epoch of `digitsum train --device
# cuda`, the same under torchrun with one process (NCCL), then evaluate, predict and export of that run
# (on the CPU, as those sub-commands run), and the suite's tests of devices and training.
#
#   DIGITSUM_DATA=/path/to/mnist scripts/cuda_check.sh [OUT_DIR]
#
# Needs python3 with a CUDA build of torch and digitsum's dependencies (numpy, safetensors, pillow, tqdm;
# onnx and onnxruntime for the export; pytest for the tests); it runs the checkout's own src/ (PYTHONPATH),
# so no install is needed. Prints the GPU's name first; exits non-zero at the first step that fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
: "${DIGITSUM_DATA:?set DIGITSUM_DATA to a folder holding the four MNIST files}"
out="${1:-${TMPDIR:-/tmp}/digitsum-cuda}"
py="${PYTHON:-python3}"
rm -rf "$out" && mkdir -p "$out"
step() { printf '\n== %s\n' "$*"; }

step "the GPU"
"$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), \
'| torch', torch.__version__, '| CUDA', torch.version.cuda, '| NCCL', torch.cuda.nccl.version())"
step "digitsum train --device cuda (1 epoch)"
"$py" -m digitsum train --device cuda --epochs 1 --out "$out/run" --data-dir "$DIGITSUM_DATA"
step "torchrun --nproc-per-node 1 -m digitsum train --device cuda (NCCL, 1 epoch)"
"$py" -m torch.distributed.run --standalone --nproc-per-node 1 -m digitsum train --device cuda --epochs 1 \
    --out "$out/ddp" --data-dir "$DIGITSUM_DATA"
step "evaluate, predict and export the CUDA-trained run"
"$py" -m digitsum evaluate --checkpoint "$out/run" --data-dir "$DIGITSUM_DATA" --json > "$out/evaluate.json"
cat "$out/evaluate.json"
"$py" -m digitsum predict docs/examples/seven.png --number 5 --checkpoint "$out/run"
"$py" -m digitsum export --checkpoint "$out/run" --output "$out/run.onnx" --data-dir "$DIGITSUM_DATA"
step "the tests that train, resume, evaluate and pick devices"
"$py" -m pytest -q -p no:cacheprovider tests/test_train.py tests/test_resume.py tests/test_cli.py tests/test_model.py
step "all steps passed"
