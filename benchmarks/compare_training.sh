#!/usr/bin/env bash
# Training steps of the shipped configs under the code before and after each cheaper-step change, side by
# side (benchmarks/compare_training.py; one RESULTS.md section per change). One torch thread each.
# Arguments: the sections to run (default: all), e.g. `bash benchmarks/compare_training.sh compare_training_edge_terms`.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
SECTIONS=("$@")

# shellcheck source=sections.sh
source benchmarks/sections.sh

# The configs these sections measured, frozen when the shipped models moved to other blocks (aspirin: the
# channel-wise block; ethanol: the many-body product block): a row labelled NAME trains config_of NAME.
config_of() {
  case $1 in
    aspirin_deq) echo configs/aspirin_deq_l12wide.yaml ;;
    aspirin_explicit) echo configs/aspirin_explicit_narrow.yaml ;;
    ethanol_conservative) echo configs/ethanol_conservative_narrow.yaml ;;
    *) echo "configs/$1.yaml" ;;
  esac
}

compare() {  # compare SECTION TITLE CHANGE BEFORE_REV AFTER_REV [CONFIGS [AFTER_SETTING]]
  local section=$1 title=$2 change=$3 before=$4 after=$5
  local configs=${6:-aspirin_deq ethanol_conservative aspirin_explicit}
  local after_set=()
  [[ -n ${7:-} ]] && after_set=(--after-set "$7")
  wanted "$section" || return 0
  rm -f "benchmarks/$section.json"
  for name in $configs; do
    $PY benchmarks/compare_training.py --config "$(config_of "$name")" --label "$name" --steps 30 \
      --section "$section" --title "$title" --change "$change" --before "$before" --after "$after" "${after_set[@]}"
  done
}

compare_shipped() {  # compare_shipped SECTION TITLE CHANGE BEFORE_REV AFTER_REV NOTES_FILE NAME...: configs/NAME.yaml
  local section=$1 title=$2 change=$3 before=$4 after=$5 notes=$6  # from models/NAME.ckpt's weights
  shift 6
  wanted "$section" || return 0
  rm -f "benchmarks/$section.json"
  for name in "$@"; do
    $PY benchmarks/compare_training.py --config "configs/$name.yaml" --label "$name (shipped), from its weights" \
      --weights "models/$name.ckpt" --steps 20 --warmup 2 --section "$section" \
      --before "$before" --after "$after" --title "$title" --change "$change" --notes-file "$notes"
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

# 2. The training's implicit backward solves (the forces' adjoint and the two of the exact second-order
# gradient) to 1e-2 instead of 1e-3: same code (revision 76037e0), other settings. Accuracy of a run trained
# so: RESULTS.md "Training recipes: ethanol, architecture" (ethanol_conservative_12ep_backward1e2).
compare compare_training_backward_tol "Cheaper training steps: looser implicit backward solves (issue #13: 1)" \
  "Change: model.solver_backward's tolerance 1e-2 instead of 1e-3 (the three implicit backward solves of a step \
of conservative-force training; the forward solve stays at 1e-3). Same code, other settings: losses differ by \
the gradients' inexactness. Command: bash benchmarks/compare_training.sh compare_training_backward_tol." \
  76037e0 76037e0 "aspirin_deq ethanol_conservative" \
  "model.solver_backward={method: anderson, max_iter: 15, tol: 1.0e-2, stop_mode: rel, m: 5}"

# 3. The block of the 12-epoch ablations (RESULTS.md "block ablations"): embedding gains and twice the scalar
# channels, against the current block, same code (revision 8a82fee): what a training step costs.
if wanted compare_training_gains_wide; then
  rm -f benchmarks/compare_training_gains_wide.json
  for name in ethanol_conservative aspirin_deq; do
    $PY benchmarks/compare_training.py --config "$(config_of "$name")" --label "$name" --steps 30 \
      --section compare_training_gains_wide --before 8a82fee --after 8a82fee \
      --after-set model.embedding_gains=true --after-set model.irreps_node=32x0e+16x1o+8x2e \
      --title "Training steps of the wider block with embedding gains (issue #13: 1)" \
      --change "Change: model.embedding_gains true and model.irreps_node 32x0e+16x1o+8x2e (twice the scalar \
channels) against the config's block; same code, another model (the losses differ). Command: bash \
benchmarks/compare_training.sh compare_training_gains_wide."
  done
fi

# 4. What the Jacobian penalty (train.jac_weight, which kept the wider block contracting on aspirin) and the
# channel-wise edge embedding (model.edge_embedding) cost or save per training step of that block (gains and
# twice the scalar channels on both sides), same code (revision 1ae1c45).
if wanted compare_training_jac_channelwise; then
  rm -f benchmarks/compare_training_jac_channelwise.json
  for change in "train.jac_weight=1.0" "model.edge_embedding=channelwise"; do
    $PY benchmarks/compare_training.py --config configs/aspirin_deq_l12wide.yaml --label "aspirin_deq, + $change" --steps 30 \
      --section compare_training_jac_channelwise --before 1ae1c45 --after 1ae1c45 \
      --set model.embedding_gains=true --set model.irreps_node=32x0e+16x1o+8x2e --after-set "$change" \
      --title "Training steps with the Jacobian penalty or the channel-wise edge embedding (issue #13: 1)" \
      --change "Change: train.jac_weight 1.0 (one more VJP of the layer at the fixed point and its double backward \
per step) or model.edge_embedding channelwise, each against the block with embedding gains and twice the scalar \
channels (both sides); same code, other settings (the losses differ). Command: bash benchmarks/compare_training.sh \
compare_training_jac_channelwise."
  done
fi

# 5. Warm-started training solves (train.warm_start: each frame's fixed point and energy adjoint from its previous
# visit) against cold ones, same code (revision 47e735f): the channel-wise aspirin DEQ from its 12-epoch weights at a
# later-stage rate (2e-3 without warmup); the first 200 steps (epoch 0: every frame solved once, cold) untimed, then
# 100 timed steps of epoch 1.
if wanted compare_training_warm_start; then
  make runs/aspirin_deq_12ep_gains_wide_chw_jac/checkpoints/best.pt  # trained if missing
  rm -f benchmarks/compare_training_warm_start.json
  $PY benchmarks/compare_training.py --config configs/aspirin_deq_l12wide.yaml \
    --label "aspirin_deq, channel-wise block, from its 12-epoch weights" --steps 100 --warmup 200 \
    --weights runs/aspirin_deq_12ep_gains_wide_chw_jac/checkpoints/best.pt \
    --section compare_training_warm_start --before 47e735f --after 47e735f \
    --set model.embedding_gains=true --set model.irreps_node=32x0e+16x1o+8x2e --set train.jac_weight=1.0 \
    --set model.edge_embedding=channelwise --set train.lr=2e-3 --set train.warmup_steps=0 \
    --after-set train.warm_start=true \
    --title "Training steps with warm-started solves (issue #13: 1)" \
    --change "Change: train.warm_start true: each training frame's fixed-point and energy-adjoint solves start from \
that frame's converged solutions of its previous visit (one epoch earlier) instead of cold (deqff.train.warm_start); \
same code, same model and batches. Both sides start from the 12-epoch weights of \
benchmarks/runs/aspirin_deq_12ep_gains_wide_chw_jac at lr 2e-3 (a later stage of training), 200 untimed steps (the \
first epoch, all cold), then 100 timed steps of the second. Iterations: of the forward solve; the losses differ by \
the solver tolerance (1e-3). Command: bash benchmarks/compare_training.sh compare_training_warm_start."
fi

# 6. The Jacobian penalty on every 4th step only (train.jac_every 4, weighted 4x there; reverted: no gain) against
# every step, same code (revision cdca837): the channel-wise aspirin DEQ from initialization, 80 steps (a multiple of 4); the mean,
# not the median, since every 4th step of the after side costs more by design.
if wanted compare_training_jac_every; then
  rm -f benchmarks/compare_training_jac_every.json
  $PY benchmarks/compare_training.py --config configs/aspirin_deq_l12wide.yaml --label "aspirin_deq, channel-wise block" \
    --steps 80 --warmup 4 --mean --section compare_training_jac_every --before cdca837 --after cdca837 \
    --set model.embedding_gains=true --set model.irreps_node=32x0e+16x1o+8x2e --set train.jac_weight=1.0 \
    --set model.edge_embedding=channelwise --after-set train.jac_every=4 \
    --title "Training steps with the Jacobian penalty on every 4th step (issue #13: 1)" \
    --change "Change: train.jac_every 4: the Jacobian penalty (train.jac_weight 1.0) computed on every 4th optimizer \
step only, weighted 4.0 there, against every step; same code, same model and batches (the losses differ by the \
penalty's terms). Mean over the timed steps. No gain beyond the noise (the penalty's forward is ~5 % of a step): \
reverted in 815cbe3, measured at cdca837. Command: bash benchmarks/compare_training.sh compare_training_jac_every."
fi

# 7. The many-body product's channel-wise square as one outer product and one matrix product (9ca36d6) against
# e3nn's per-path evaluation (cb0b84e): the 12-epoch aspirin DEQ with the product, from its trained weights.
if wanted compare_training_fast_square; then
  make runs/aspirin_deq_12ep_product16/checkpoints/best.pt
  rm -f benchmarks/compare_training_fast_square.json
  $PY benchmarks/compare_training.py --config benchmarks/runs/aspirin_deq_12ep_product16/config.yaml \
    --label "aspirin DEQ + product 16, from its 12-epoch weights" --steps 30 --warmup 2 \
    --weights runs/aspirin_deq_12ep_product16/checkpoints/best.pt \
    --section compare_training_fast_square --before cb0b84e --after 9ca36d6 \
    --title "Cheaper training steps: the many-body product as one outer product and one matrix product (issue #13: 1)" \
    --change "Change: the many-body product's channel-wise tensor square evaluated as one outer product per channel \
and one matrix product (deqff.nn.square.ChannelwiseSquare) instead of e3nn's per-path evaluation; same model and \
batches, losses equal to float32 round-off. Command: bash benchmarks/compare_training.sh compare_training_fast_square."
fi

# 8. The attention's neighbor sums, one [E, M] sum per head (8a19eec) and reordered after the sum (d50283a), against
# one sum of the broadcast [E, H, M] product (da7b232): the 12-epoch aspirin DEQ with the product, from its trained
# weights; the ethanol DEQ config shipped then (configs/ethanol_conservative_narrow.yaml) from initialization.
if wanted compare_training_per_head_sums; then
  make runs/aspirin_deq_12ep_product16/checkpoints/best.pt
  rm -f benchmarks/compare_training_per_head_sums.json
  change="Change: the attention's neighbor sums (2 heads) as one sum of [E, M] messages per head \
(deqff.nn.attention) instead of one sum of their broadcast product with the heads' weights [E, H, M], the messages' \
components reordered after the sum over neighbors (N rows) instead of before it (E rows); same model and batches, losses equal to float32 round-off. Command: bash benchmarks/compare_training.sh \
compare_training_per_head_sums."
  title="Cheaper training steps: per-head neighbor sums, reordered after the sum (issue #13: 1)"
  $PY benchmarks/compare_training.py --config benchmarks/runs/aspirin_deq_12ep_product16/config.yaml \
    --label "aspirin DEQ + product 16, from its 12-epoch weights" --steps 30 --warmup 2 \
    --weights runs/aspirin_deq_12ep_product16/checkpoints/best.pt \
    --section compare_training_per_head_sums --before da7b232 --after d50283a --title "$title" --change "$change"
  $PY benchmarks/compare_training.py --config "$(config_of ethanol_conservative)" --label ethanol_conservative \
    --steps 30 --warmup 2 --section compare_training_per_head_sums --before da7b232 --after d50283a \
    --title "$title" --change "$change"
fi

# 9. The per-edge operator factorized into a geometric part shared by the channels and a per-channel weight
# (FACTORED_REV) against the per-channel operator (bd98189): the shipped aspirin pair and water DEQ, from their
# trained weights.
FACTORED_REV=53347c3
if wanted compare_training_factored_operator; then
  change="Change: the attention's per-edge operator kept as a geometric part shared by the channels, G [E, d, K'], and \
each channel's path weight, W [E, u K], instead of their product per channel, [E u, d, K] (deqff.nn.edge_operator): one \
bmm of [u, d] x [d, K'] matrices per edge and input block in place of u rows of [1, d] x [d, K], in the forward, the \
adjoint and the double backward of force training alike. Same model and batches, losses equal to float32 round-off. \
Before: commit bd98189, after: $(git rev-parse --short "$FACTORED_REV"). Command: bash benchmarks/compare_training.sh \
compare_training_factored_operator."
  title="Cheaper training steps: the per-edge operator as a shared geometric part and per-channel weights (issue #13: 1)"
  compare_shipped compare_training_factored_operator "$title" "$change" bd98189 \
    "$(git rev-parse --short "$FACTORED_REV")" benchmarks/compare_training_factored_operator_notes.md \
    aspirin_deq aspirin_explicit water_deq
fi

# 10. The block's e3nn linear maps applied as one matrix product each (MATRIX_LINEAR_REV: deqff.nn.linear) against
# e3nn's per-path evaluation (6305fae): the shipped aspirin pair and ethanol DEQ, from their trained weights.
MATRIX_LINEAR_REV=71433a6
if wanted compare_training_matrix_linear; then
  change="Change: the block's five e3nn linear maps (the attention's output map, the feed-forward's two, the many-body \
product's two) evaluated as one matrix product each, x @ M with M [D_in, D_out] scattered from the weights at every \
call (deqff.nn.linear.MatrixLinear: same parameters, state dict and function), instead of e3nn's per-path slices, \
einsums and concatenation, in the forward, the adjoint and the double backward of force training alike. Same model \
and batches, losses equal to float32 round-off. Before: commit 6305fae, after: \
$(git rev-parse --short "$MATRIX_LINEAR_REV"). Command: bash benchmarks/compare_training.sh \
compare_training_matrix_linear."
  title="Cheaper training steps: the block's linear maps as one matrix product each (issue #13: 1)"
  compare_shipped compare_training_matrix_linear "$title" "$change" 6305fae \
    "$(git rev-parse --short "$MATRIX_LINEAR_REV")" benchmarks/compare_training_matrix_linear_notes.md \
    aspirin_deq aspirin_explicit ethanol_conservative
fi

# 11. The attention's per-head neighbor sums, when recorded for a backward, as one batched product over padded
# neighbor lists (PADDED_SUMS_REV: deqff.nn.scatter.weighted_neighbor_sums) against one scatter sum per head
# (c1a688f): the shipped aspirin pair and ethanol DEQ, from their trained weights.
PADDED_SUMS_REV=4c85de9
if wanted compare_training_padded_sums; then
  change="Change: the attention's weighted neighbor sums (two heads), when autograd records them (every graph of a \
training step), as one batched product [heads x width] by [width x M] over each atom's neighbors padded to the \
largest neighbor count (deqff.nn.scatter.weighted_neighbor_sums), whose backward is two batched products and one \
gather, instead of one weighting and one scatter sum of the [E, M] messages per head, whose backward gathers, \
multiplies and reduces [E, M] tensors per head; without autograd (the forward solve) the per-head sums as before. \
Same model and batches, losses equal to float32 round-off. Before: commit c1a688f, after: \
$(git rev-parse --short "$PADDED_SUMS_REV"). Command: bash benchmarks/compare_training.sh compare_training_padded_sums."
  title="Cheaper training steps: the attention's neighbor sums as one batched product (issue #13: 1)"
  compare_shipped compare_training_padded_sums "$title" "$change" c1a688f \
    "$(git rev-parse --short "$PADDED_SUMS_REV")" benchmarks/compare_training_padded_sums_notes.md \
    aspirin_deq aspirin_explicit ethanol_conservative
fi

# The Jacobian penalty on the layer inputs the training solves ran on (JACOBIAN_INPUTS_REV:
# EquivariantForceField.evaluate) against building them a third time for it (accc9ed).
JACOBIAN_INPUTS_REV=5e23e38
if wanted compare_training_jacobian_inputs; then
  change="Change: the Jacobian penalty (train.jac_weight > 0) evaluated on the layer inputs the step's solves ran \
on, which the model's training forward now returns (EquivariantForceField.evaluate; training_outputs at 5e23e38), instead of building \
them (edge features, input embedding, per-edge operators, with a graph to the parameters) a third time for it. \
Same model and batches, same values. Before: commit accc9ed, after: $(git rev-parse --short "$JACOBIAN_INPUTS_REV"). \
Command: bash benchmarks/compare_training.sh compare_training_jacobian_inputs."
  title="Cheaper training steps: the Jacobian penalty on the solves' layer inputs (issue #13: 1)"
  compare_shipped compare_training_jacobian_inputs "$title" "$change" accc9ed \
    "$(git rev-parse --short "$JACOBIAN_INPUTS_REV")" benchmarks/compare_training_jacobian_inputs_notes.md \
    aspirin_deq ethanol_conservative
fi

# Other training settings of the shipped aspirin DEQ, same code (SETTINGS_REV), from its trained weights: twice the
# frames per step (is a step of 5 frames dispatch-bound, so that a larger batch is nearly free per frame?) and every
# training solve to 1e-2 (the forward solve as well as the implicit backward solves).
SETTINGS_REV=223171b
if wanted compare_training_settings; then
  rm -f benchmarks/compare_training_settings.json
  change="Change: training settings of the shipped aspirin DEQ (configs/aspirin_deq.yaml), same code (commit \
$SETTINGS_REV) on both sides, from the weights of models/aspirin_deq.ckpt: the after worker with the settings of the \
row's label. Losses differ by what the settings change. Command: bash benchmarks/compare_training.sh \
compare_training_settings."
  title="Training steps of the aspirin DEQ: a batch of 10 frames, every training solve to 1e-2 (issue #13: 1)"
  loose="{method: anderson, max_iter: 20, tol: 1.0e-2, stop_mode: rel, m: 5}"
  loose_backward="{method: anderson, max_iter: 15, tol: 1.0e-2, stop_mode: rel, m: 5}"
  run_setting() {  # run_setting LABEL AFTER_SET...
    local label=$1
    shift
    $PY benchmarks/compare_training.py --config configs/aspirin_deq.yaml --weights models/aspirin_deq.ckpt \
      --label "$label" --steps 30 --warmup 2 --section compare_training_settings --before "$SETTINGS_REV" \
      --after "$SETTINGS_REV" --title "$title" --change "$change" \
      --notes-file benchmarks/compare_training_settings_notes.md "$@"
  }
  run_setting "batch 10 instead of 5 (per step)" --after-set data.batch_size=10
  run_setting "every training solve to 1e-2" --after-set "model.solver_train=$loose" \
    --after-set "model.solver_backward=$loose_backward"
fi
