#!/usr/bin/env bash
# Run a short torchrun training N times (default 20) with two busy loops beside it, and count the
# runs that did not exit cleanly (issue 16: a rank used to abort at exit under load).
#   scripts/stress_torchrun.sh [N]     (MNIST from $DIGITSUM_DATA, or ../shared/data/mnist)
set -u
cd "$(dirname "$0")/.."
runs=${1:-20}
data=${DIGITSUM_DATA:-../shared/data/mnist}
out=$(mktemp -d)
busy() { while :; do :; done; }
busy & first=$!
busy & second=$!
trap 'kill "$first" "$second" 2>/dev/null; rm -rf "$out"' EXIT
failures=0
for i in $(seq "$runs"); do
  if ! log=$(python -m torch.distributed.run --standalone --nproc-per-node 2 -m digitsum train --data-dir "$data" \
      --limit 2000 --epochs 1 --batch-size 64 --val-size 1000 --threads 1 --out "$out/run$i" 2>&1); then
    failures=$((failures + 1))
    echo "run $i failed:"; echo "$log" | grep -E "terminate|exitcode|Signal|error" | head -5
  fi
done
echo "$failures of $runs torchrun runs failed under load"
[ "$failures" -eq 0 ]
