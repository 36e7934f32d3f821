#!/usr/bin/env bash
# The shipped models exported before and after each cheaper-iteration change, side by side
# (benchmarks/compare_exports.py; one RESULTS.md section per change). One torch thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}

compare() {  # compare SECTION TITLE JSON CHANGE BEFORE_REV AFTER [MODELS] (AFTER: a revision or "current")
  local section=$1 title=$2 json=$3 change=$4 before=$5 after=$6
  local models=${7:-aspirin_deq ethanol_conservative ethanol_explicit}
  rm -f "$json"
  for name in $models; do
    local dataset=data/ethanol.npz
    [[ $name == aspirin_deq ]] && dataset=data/aspirin.npz
    local after_file="models/$name.pt"
    [[ $after != current ]] && after_file="git:$after:models/$name.pt"
    $PY benchmarks/compare_exports.py --dataset "$dataset" --label "$name" --change "$change" \
      --section "$section" --title "$title" --json "$json" --before "git:$before:models/$name.pt" --after "$after_file"
  done
}

# 1. The SH tensor product as a per-edge operator (before: 8946793; after: the exports of ff6c691).
compare compare_exports "Cheaper iterations: the same model exported before and after a change (issue #15: 2)" \
  benchmarks/compare_exports.json \
  "Change: the attention's tensor product with the spherical harmonics evaluated as a per-edge linear \
map built once per geometry (deqff.nn.edge_operator), the message linear on merged irreps, the gate and the \
norm in a few operations each; same checkpoints, results equal to round-off (tests/models/test_fast_block.py). \
Before: the shipped exports of commit 8946793, after: those of ff6c691. Command: bash benchmarks/compare_exports.sh." \
  8946793 ff6c691

# 2. The per-edge operator stored block-major, viewed by bmm without a copy (before: d367013's exports,
# after: those of 65a839c, the commit of the change; a later ship retrains models, so not "current").
FLAT_TITLE="Cheaper iterations: the per-edge operator without a copy per iteration (issue #15: 2)"
FLAT_CHANGE="Change: the per-edge operator stored flat and block-major, so each solver iteration views every block \
as the batch of its matrix product instead of copying it out of an [E, operator] matrix (deqff.nn.edge_operator); \
same checkpoints, results equal to round-off. Before: the shipped exports of commit d367013, after: those of \
65a839c. Command: bash benchmarks/compare_exports.sh."
compare compare_exports_flat_operator "$FLAT_TITLE" benchmarks/compare_exports_flat_operator.json \
  "$FLAT_CHANGE" d367013 65a839c
# ... and on the water model's periodic box: 96 atoms and 8 copies (768 atoms), 3 frames each.
for n in 1 2; do
  $PY benchmarks/compare_exports.py --dataset data/water-box.npz --replicate $n --frames 3 \
    --label "water_deq, $((96 * n * n * n)) atoms" --section compare_exports_flat_operator \
    --title "$FLAT_TITLE" --change "$FLAT_CHANGE" --json benchmarks/compare_exports_flat_operator.json \
    --before git:d367013:models/water_deq.pt --after git:65a839c:models/water_deq.pt
done
