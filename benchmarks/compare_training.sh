#!/usr/bin/env bash
# Training steps of the shipped configs under the code before and after each cheaper-step change, side by
# side (benchmarks/compare_training.py; one RESULTS.md section per change). One torch thread each.
# Arguments: the sections to run (default: all), e.g. `bash benchmarks/compare_training.sh compare_training_edge_terms`.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
SECTIONS=("$@")

wanted() {  # wanted SECTION: true when SECTION was named on the command line or none was
  [[ ${#SECTIONS[@]} -eq 0 ]] && return 0
  local name
  for name in "${SECTIONS[@]}"; do [[ $name == "$1" ]] && return 0; done
  return 1
}

compare() {  # compare SECTION TITLE CHANGE BEFORE_REV AFTER_REV [CONFIGS]
  local section=$1 title=$2 change=$3 before=$4 after=$5
  local configs=${6:-aspirin_deq ethanol_conservative aspirin_explicit}
  wanted "$section" || return 0
  rm -f "benchmarks/$section.json"
  for name in $configs; do
    $PY benchmarks/compare_training.py --config "configs/$name.yaml" --label "$name" --steps 30 \
      --section "$section" --title "$title" --change "$change" --before "$before" --after "$after"
  done
}

# 1. The per-edge terms as one tensor per piece instead of one flat tensor split in every application.
compare compare_training_edge_terms "Cheaper training steps: per-edge terms without split and concatenation (issue #13: 1)" \
  "Change: the block's per-edge terms (the tensor-product operator of each input block, the radial part of the \
attention) kept as separate tensors instead of one flat tensor split in every application of the block: the \
backward of the split concatenated the blocks' gradients into a tensor of the whole operator, and the double \
backward of force training sliced that gradient (each slice filling a zero tensor of the whole operator). Same \
function, same losses. Before: commit 3d69e88, after: c8f3dda. Command: bash benchmarks/compare_training.sh." \
  3d69e88 c8f3dda
