#!/usr/bin/env bash
# The shipped models exported before (commit 8946793) and after the cheaper-iteration change, side by
# side (benchmarks/compare_exports.py; RESULTS.md "compare_exports"). One torch thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
CHANGE="Change: the attention's tensor product with the spherical harmonics evaluated as a per-edge linear \
map built once per geometry (deqff.nn.edge_operator), the message linear on merged irreps, the gate and the \
norm in a few operations each; same checkpoints, results equal to round-off (tests/models/test_fast_block.py). \
Before: the shipped exports of commit 8946793. Command: bash benchmarks/compare_exports.sh."
rm -f benchmarks/compare_exports.json
$PY benchmarks/compare_exports.py --dataset data/aspirin.npz --label aspirin_deq --change "$CHANGE" \
  --before git:8946793:models/aspirin_deq.pt --after models/aspirin_deq.pt
for name in ethanol_conservative ethanol_explicit; do
  $PY benchmarks/compare_exports.py --dataset data/ethanol.npz --label "$name" --change "$CHANGE" \
    --before "git:8946793:models/$name.pt" --after "models/$name.pt"
done
