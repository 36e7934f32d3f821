#!/usr/bin/env bash
# The shipped models exported before and after each cheaper-iteration change, side by side
# (benchmarks/compare_exports.py; one RESULTS.md section per change). One torch thread each.
# Arguments: the sections to run (default: all), e.g. `bash benchmarks/compare_exports.sh compare_exports_operator_build`.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
SECTIONS=("$@")

# shellcheck source=sections.sh
source benchmarks/sections.sh

compare() {  # compare SECTION TITLE JSON CHANGE BEFORE_REV AFTER [MODELS] (AFTER: a revision or "current")
  local section=$1 title=$2 json=$3 change=$4 before=$5 after=$6
  local models=${7:-aspirin_deq ethanol_conservative ethanol_explicit}
  wanted "$section" || return 0
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

# The frames a shipped model NAME is compared on (sets dataset, frames, replicate, model, label): aspirin models 200
# consecutive 0.5 fs steps of 500 K xTB MD; ethanol models 200 frames of data/ethanol.npz (500 K MD frames 1 ps
# apart); the water box 50 consecutive 0.5 fs steps of 300 K MD (water_deq_96: the same, labelled with its size;
# water_deq_768: 5 of them replicated 2x2x2).
shipped_frames() {
  replicate=1 model=$1 label=$1
  case $1 in
    aspirin_*) dataset=data/aspirin_md500K_every_step.npz frames=200 ;;
    ethanol_*) dataset=data/ethanol.npz frames=200 ;;
    water_deq_96) dataset=data/water-box_every_step.npz frames=50 model=water_deq label="water_deq, 96 atoms" ;;
    water_deq_768) dataset=data/water-box_every_step.npz frames=5 replicate=2 model=water_deq label="water_deq, 768 atoms" ;;
    water_*) dataset=data/water-box_every_step.npz frames=50 ;;
  esac
}

compare_shipped() {  # compare_shipped SECTION TITLE CHANGE BEFORE_REV AFTER_REV NOTES_FILE|"" NAME...: shipped_frames
  local section=$1 title=$2 change=$3 before=$4 after=$5 notes=$6
  shift 6
  wanted "$section" || return 0
  rm -f "benchmarks/$section.json"
  local notes_args=()
  [[ -n $notes ]] && notes_args=(--notes-file "$notes")
  for name in "$@"; do
    shipped_frames "$name"
    $PY benchmarks/compare_exports.py --dataset "$dataset" --frames "$frames" --replicate "$replicate" \
      --label "$label" --section "$section" --title "$title" --change "$change" --json "benchmarks/$section.json" \
      "${notes_args[@]}" --before "git:$before:models/$model.pt" --after "git:$after:models/$model.pt"
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
  wanted compare_exports_flat_operator || break
  $PY benchmarks/compare_exports.py --dataset data/water-box.npz --replicate $n --frames 3 \
    --label "water_deq, $((96 * n * n * n)) atoms" --section compare_exports_flat_operator \
    --title "$FLAT_TITLE" --change "$FLAT_CHANGE" --json benchmarks/compare_exports_flat_operator.json \
    --before git:d367013:models/water_deq.pt --after git:65a839c:models/water_deq.pt
done

# 3. The per-edge operator built by two dense products per input block and split, not sliced (before:
# 26d450a's exports, after: those of the commit that re-exported them).
BUILD_TITLE="Cheaper conservative forces: the per-edge operator's build and its backward (issue #15: 2)"
BUILD_CHANGE="Change: the per-edge operator built per input block by two dense products (the spherical harmonics \
times a coupling matrix of the block's paths, then the paths' weights by a batched product) instead of an einsum, \
a broadcast and a concatenation per path, and split into its blocks instead of sliced (the backward of a slice \
fills a zero tensor the size of the whole operator); this shortens the final backward of conservative forces. \
Same checkpoints, results equal to round-off. Before: the shipped exports of commit 26d450a, after: those of \
b315959. Command: bash benchmarks/compare_exports.sh."
compare compare_exports_operator_build "$BUILD_TITLE" benchmarks/compare_exports_operator_build.json \
  "$BUILD_CHANGE" 26d450a b315959


# 4. Each equivariant linear map as one product with its dense matrix, fixed at export (before: a1b35bd's
# exports, after: those of 2f578ad, the commit that re-exported them).
DENSE_TITLE="Cheaper iterations: the linear maps as dense matrices fixed at export (issue #15: 2)"
DENSE_CHANGE="Change: every e3nn o3.Linear of the exported model (the block's message, feed-forward in and out \
maps, applied in every solver and adjoint iteration) replaced at export by one product with its dense matrix \
(deqff.export.dense; e3nn evaluates one as ~28 small operations). Same checkpoints, results equal to round-off. \
Before: the shipped exports of commit a1b35bd, after: those of 2f578ad. Command: bash benchmarks/compare_exports.sh."
compare compare_exports_dense_linear "$DENSE_TITLE" benchmarks/compare_exports_dense_linear.json \
  "$DENSE_CHANGE" a1b35bd 2f578ad

# 5. The per-edge terms as one tensor per piece instead of one flat tensor split in every application (before:
# 9892b93's exports, after: those of fff9a31, the commit that re-exported them).
TERMS_TITLE="Cheaper conservative forces: per-edge terms without split and concatenation (issue #15: 2)"
TERMS_CHANGE="Change: the block's per-edge terms (the tensor-product operator of each input block, the radial part of \
the attention) kept as separate tensors instead of one flat tensor split in every solver and adjoint iteration \
(the backward of the split concatenated the blocks' gradients into a tensor of the whole operator). Same \
checkpoints, results equal to round-off. Before: the shipped exports of commit 9892b93, after: those of fff9a31. \
Command: bash benchmarks/compare_exports.sh."
compare compare_exports_edge_terms "$TERMS_TITLE" benchmarks/compare_exports_edge_terms.json "$TERMS_CHANGE" \
  9892b93 fff9a31

# 6. Not another export but another model: the 12-epoch ethanol DEQ with embedding gains and twice the scalar
# channels (RESULTS.md "block ablations"; `make out/exports/NAME.pt` retrains it when runs/ is gone), exported with
# the shipped model's options, against the shipped ethanol DEQ: what an MD step of the wider block costs.
if wanted compare_exports_gains_wide; then
  make out/exports/ethanol_conservative_12ep_gains_wide.pt  # trained if missing; the shipped model's export options
  rm -f benchmarks/compare_exports_gains_wide.json
  $PY benchmarks/compare_exports.py --dataset data/ethanol.npz --before models/ethanol_conservative.pt \
    --after out/exports/ethanol_conservative_12ep_gains_wide.pt --label ethanol_conservative --frames 200 \
    --section compare_exports_gains_wide --json benchmarks/compare_exports_gains_wide.json \
    --title "MD steps of the wider block with embedding gains (issue #13)" \
    --change "Change: another model, not another export: the shipped ethanol DEQ (current block, 48 epochs) against \
the 12-epoch DEQ with embedding gains and twice the scalar channels (benchmarks/runs/ethanol_conservative_12ep_gains_wide, \
exported with the shipped model's options to out/exports/ethanol_conservative_12ep_gains_wide.pt). Energies and forces differ by what the \
models learned; the columns that matter are ms per call and iterations. Command: bash benchmarks/compare_exports.sh \
compare_exports_gains_wide."
fi

# 7. Conservative forces linearize f at the fixed point from the solver's last evaluation instead of evaluating
# it once more (before: 0c57a0b's exports, after: those of 21aff80, which re-exported the conservative DEQs).
LINEARIZE_TITLE="Cheaper conservative forces: the solver's last evaluation as the linearization (issue #15: 2)"
LINEARIZE_CHANGE="Change: the forward solve records the evaluation it expects to be its last (the residual \
extrapolated from the last two below the tolerance) with a graph, and conservative forces take it as the \
linearization at the fixed point instead of evaluating f there once more (deqff.deq.solver.FixedPointSolver.solve_linearized; \
a failed expectation falls back to the extra evaluation). Same checkpoints, results equal to round-off. Before: the \
shipped exports of commit 0c57a0b, after: those of 21aff80 (ethanol_explicit unchanged: a control). Command: bash \
benchmarks/compare_exports.sh compare_exports_linearized."
compare compare_exports_linearized "$LINEARIZE_TITLE" benchmarks/compare_exports_linearized.json \
  "$LINEARIZE_CHANGE" 0c57a0b 21aff80
# ... and aspirin on consecutive 0.5 fs MD steps (issue #15's setting: ~6 solver + 5 adjoint iterations per call).
if wanted compare_exports_linearized; then
  $PY benchmarks/compare_exports.py --dataset data/aspirin_md500K_every_step.npz --frames 200 \
    --label "aspirin_deq, consecutive 0.5 fs steps" --section compare_exports_linearized --title "$LINEARIZE_TITLE" \
    --change "$LINEARIZE_CHANGE" --json benchmarks/compare_exports_linearized.json \
    --before git:0c57a0b:models/aspirin_deq.pt --after git:21aff80:models/aspirin_deq.pt
fi

# 8. Not another export but other models: the aspirin candidates of the channel-wise block (the DEQ over 96
# epochs and its 4-layer explicit twin over 48; RESULTS.md "Peer: MACE, aspirin"; shipped since as aspirin_deq and
# aspirin_explicit), exported with the shipped models' options, against the aspirin_deq and aspirin_explicit shipped
# before them on consecutive 0.5 fs MD steps: what an MD step of each candidate costs.
if wanted compare_exports_candidates; then
  CANDIDATES_TITLE="MD steps of the channel-wise aspirin candidates (issue #13)"
  CANDIDATES_CHANGE="Change: other models, not another export: each aspirin model shipped before the channel-wise block (before: \
the exports of commits 21aff80 and fff9a31) against its successor of the channel-wise block with embedding gains and 32x0e + 16x1o + 8x2e (after; \
benchmarks/runs/aspirin_deq_96ep_gains_wide_chw_jac and aspirin_explicit_48ep_gains_wide_chw, exported with the shipped \
model's options to out/exports/NAME.pt), 200 consecutive 0.5 fs steps of 500 K xTB MD. Energies and forces differ by \
what the models learned; the columns that matter are ms per call and iterations. Command: bash \
benchmarks/compare_exports.sh compare_exports_candidates."
  rm -f benchmarks/compare_exports_candidates.json
  # shipped:candidate:the last commit of the shipped export (the candidates were shipped in their place since).
  for triple in aspirin_deq:aspirin_deq_96ep_gains_wide_chw_jac:21aff80 \
    aspirin_explicit:aspirin_explicit_48ep_gains_wide_chw:fff9a31; do
    IFS=: read -r shipped candidate revision <<< "$triple"
    make out/exports/"$candidate".pt  # trained if missing; the shipped model's export options
    $PY benchmarks/compare_exports.py --dataset data/aspirin_md500K_every_step.npz --frames 200 \
      --label "$shipped -> $candidate" --section compare_exports_candidates --title "$CANDIDATES_TITLE" \
      --change "$CANDIDATES_CHANGE" --json benchmarks/compare_exports_candidates.json \
      --before "git:$revision:models/$shipped.pt" --after out/exports/"$candidate".pt
  done
fi

# 9. Other models again: the shipped aspirin DEQ against the 12-epoch DEQ of the same block with the many-body
# product in its feed-forward (RESULTS.md "Jacobian penalty and many-body product"), exported with the shipped
# model's options: what the product adds to an MD step.
if wanted compare_exports_product; then
  PRODUCT_TITLE="MD steps of the aspirin DEQ with the many-body product (issue #13)"
  PRODUCT_CHANGE="Change: another model, not another export: the shipped aspirin DEQ (before: the export of commit \
997f027) against the 12-epoch DEQ of the same block with a many-body product of 16 channels in its feed-forward \
(after; benchmarks/runs/aspirin_deq_12ep_product16, exported with the shipped model's options to \
out/exports/aspirin_deq_12ep_product16.pt), 200 consecutive 0.5 fs steps of 500 K xTB MD. Energies and forces differ \
by what the models learned; the columns that matter are ms per call and iterations. Command: bash \
benchmarks/compare_exports.sh compare_exports_product."
  rm -f benchmarks/compare_exports_product.json
  make out/exports/aspirin_deq_12ep_product16.pt  # trained if missing; the shipped model's export options
  $PY benchmarks/compare_exports.py --dataset data/aspirin_md500K_every_step.npz --frames 200 \
    --label "aspirin_deq -> aspirin_deq_12ep_product16" --section compare_exports_product --title "$PRODUCT_TITLE" \
    --change "$PRODUCT_CHANGE" --json benchmarks/compare_exports_product.json \
    --before git:997f027:models/aspirin_deq.pt --after out/exports/aspirin_deq_12ep_product16.pt
fi

# 10. The attention's neighbor sums, one [E, M] sum per head (8a19eec), reordered after the sum (d50283a), exported:
# the shipped models re-exported with the same options (before: da7b232's exports, after: 33e10c8's), MD frames.
if wanted compare_exports_per_head_sums; then
  HEADS_TITLE="Cheaper iterations: per-head neighbor sums, reordered after the sum (issue #15: 2)"
  HEADS_CHANGE="Change: the attention's neighbor sums (2 heads) as one sum of [E, M] messages per head instead of one \
sum of their broadcast product with the heads' weights [E, H, M] (deqff.nn.attention, 8a19eec), and the messages' \
components reordered into the linear's order after the sum over neighbors instead of before it, on N rows instead of \
E (d50283a); same checkpoints and export options, results equal to round-off. Before: the shipped exports of commit \
da7b232, after: those of 33e10c8. \
Command: bash benchmarks/compare_exports.sh compare_exports_per_head_sums."
  rm -f benchmarks/compare_exports_per_head_sums.json
  for entry in aspirin_deq:data/aspirin_md500K_every_step.npz ethanol_conservative:data/ethanol.npz \
    water_deq:data/water-box_every_step.npz; do
    name=${entry%%:*}
    $PY benchmarks/compare_exports.py --dataset "${entry#*:}" --frames 150 --label "$name" \
      --section compare_exports_per_head_sums --title "$HEADS_TITLE" --change "$HEADS_CHANGE" \
      --json benchmarks/compare_exports_per_head_sums.json \
      --before "git:da7b232:models/$name.pt" --after "git:33e10c8:models/$name.pt"
  done
fi

# 11. Other models again: the aspirin pair shipped before the many-body product block (3635d51's exports) against
# the pair with it (6ac6234's), consecutive 0.5 fs MD steps: what an MD step of each shipped model costs now.
if wanted compare_exports_shipped_product; then
  SHIPPED_TITLE="MD steps of the shipped aspirin pair with the many-body product (issue #13)"
  SHIPPED_CHANGE="Change: other models, not another export: each aspirin model shipped before the many-body product \
block (before: the exports of commit 3635d51) against its successor with the product (after: those of 6ac6234; \
benchmarks/runs/aspirin_deq_96ep_product16 and aspirin_explicit_48ep_product16), both with the shipped export options, \
200 consecutive 0.5 fs steps of 500 K xTB MD. Energies and forces differ by what the models learned; the columns that \
matter are ms per call and iterations. Command: bash benchmarks/compare_exports.sh compare_exports_shipped_product."
  rm -f benchmarks/compare_exports_shipped_product.json
  for name in aspirin_deq aspirin_explicit; do
    $PY benchmarks/compare_exports.py --dataset data/aspirin_md500K_every_step.npz --frames 200 --label "$name" \
      --section compare_exports_shipped_product --title "$SHIPPED_TITLE" --change "$SHIPPED_CHANGE" \
      --json benchmarks/compare_exports_shipped_product.json \
      --before "git:3635d51:models/$name.pt" --after "git:6ac6234:models/$name.pt"
  done
fi

if wanted compare_exports_water_chw; then
  WATER_TITLE="MD steps of the water model with the channel-wise edge embedding (issue #13)"
  WATER_CHANGE="Change: another model, not another export: the water model shipped before (before: the export of commit \
c936d02, the full edge embedding, configs/water_deq_full.yaml, 58,008 parameters, 12 epochs trained in 2.03 h) against its successor with the \
channel-wise edge embedding (after: that of 9aa43b6, configs/water_deq.yaml, 34,152 parameters, 12 epochs in 15.6 min; each beside other jobs), both with the \
shipped export options, 100 consecutive 0.5 fs steps of 300 K MD of the 32-water box (96 atoms, periodic) and the \
same frames replicated 2x2x2 (768 atoms). Energies and forces differ by what the models learned; the columns that \
matter are ms per call and iterations. Command: bash benchmarks/compare_exports.sh compare_exports_water_chw."
  rm -f benchmarks/compare_exports_water_chw.json
  for replicate in 1 2; do
    frames=$([ "$replicate" = 1 ] && echo 100 || echo 5)
    $PY benchmarks/compare_exports.py --dataset data/water-box_every_step.npz --replicate "$replicate" \
      --frames "$frames" --label "water_deq, $((96 * replicate ** 3)) atoms" \
      --section compare_exports_water_chw --title "$WATER_TITLE" --change "$WATER_CHANGE" \
      --json benchmarks/compare_exports_water_chw.json \
      --before "git:c936d02:models/water_deq.pt" --after "git:9aa43b6:models/water_deq.pt"
  done
fi

# 12. The shipped models exported float32 instead of float64 (before: the exports of dcecf2d; after: those of
# dafbeef, the commit that shipped them), consecutive MD steps of each model's molecule or box.
FLOAT32_REV=dafbeef
if wanted compare_exports_float32; then
  F32_TITLE="Shipped exports in float32 (issue #15)"
  F32_CHANGE="Change: the shipped models exported in float32 instead of float64 (Makefile EXPORT_OPTIONS), same \
checkpoints and other options. Before: the exports of commit dcecf2d, after: those of $(git rev-parse --short "$FLOAT32_REV"). \
aspirin models: 200 consecutive 0.5 fs steps of 500 K xTB MD; ethanol models: 200 frames of data/ethanol.npz (500 K MD \
frames 1 ps apart, so warm starts help less); water: 50 consecutive 0.5 fs steps of 300 K MD of the 32-water box. \
Differences are what float32 rounding changes. Command: bash benchmarks/compare_exports.sh compare_exports_float32."
  compare_shipped compare_exports_float32 "$F32_TITLE" "$F32_CHANGE" dcecf2d "$(git rev-parse --short "$FLOAT32_REV")" "" \
    aspirin_deq aspirin_explicit ethanol_conservative ethanol_explicit water_deq
fi

# 13. The per-edge operator factorized into a geometric part shared by the channels and a per-channel weight (one
# bmm of [u, d] x [d, K'] per edge and input block instead of u of [1, d] x [d, K]); before: the exports of bd98189,
# after: those of the commit that re-exported them (FACTORED_REV). Every shipped model with this block, each on its
# MD-like frames; the water box also replicated 2x2x2 (768 atoms).
FACTORED_REV=53347c3
if wanted compare_exports_factored_operator; then
  FACTORED_TITLE="Cheaper iterations: the per-edge operator as a shared geometric part and per-channel weights (issue #15: 2)"
  FACTORED_CHANGE="Change: the attention's per-edge operator kept as G [E, d, K'] (the spherical harmonics contracted \
with the Wigner 3j symbols, shared by the channels; zero columns so that ATen's CPU bmm takes BLAS) and W [E, u K] (each \
channel's path weight) instead of their product per channel, [E u, d, K]: one bmm of [u, d] x [d, K'] matrices per edge \
and input block instead of u bmm rows of [1, d] x [d, K], and u times fewer bytes per geometry (deqff.nn.edge_operator). \
Same checkpoints and export options, the same function (tests/models/test_fast_block.py); energies and forces differ by \
float32 round-off and by warm starts drifting apart along the frames. Before: the exports of commit bd98189, after: \
those of $(git rev-parse --short "$FACTORED_REV"). aspirin models: 200 consecutive 0.5 fs steps of 500 K xTB MD; \
ethanol models: 200 frames of data/ethanol.npz; water: 50 consecutive 0.5 fs steps of the 32-water box (96 atoms) and \
5 of the box replicated 2x2x2 (768 atoms). Command: bash benchmarks/compare_exports.sh compare_exports_factored_operator."
  compare_shipped compare_exports_factored_operator "$FACTORED_TITLE" "$FACTORED_CHANGE" bd98189 \
    "$(git rev-parse --short "$FACTORED_REV")" benchmarks/compare_exports_factored_operator_notes.md \
    aspirin_deq aspirin_explicit ethanol_conservative ethanol_explicit water_deq_96 water_deq_768
fi

# 14. The solver's bookkeeping of a single segment (an MD call) on host scalars (before: the exports of 53347c3,
# after: those of a67948d); the shipped DEQs (the explicit stacks run no solver), each on its MD-like frames.
if wanted compare_exports_one_segment; then
  ONE_TITLE="Cheaper iterations: solver bookkeeping of a single segment (issue #15: 2)"
  ONE_CHANGE="Change: the fixed-point and adjoint solves of a single segment (every MD call) take their per-iteration \
decisions (residuals below tolerance, best iterate, finiteness, the Anderson restart safeguard) on host scalars instead \
of per-segment tensor masks built for batches of samples: about 55 fewer tensor operations per iteration (126 -> 72 in \
the solver, eager count), the same iterates (tests/deq/test_deq_solvers.py: one segment solves as the same sample in \
a batch). Same checkpoints and export options. Before: the exports of commit 53347c3, after: those of a67948d. aspirin: \
200 consecutive 0.5 fs steps of 500 K xTB MD; ethanol: 200 frames of data/ethanol.npz; water: 50 consecutive 0.5 fs \
steps of the 32-water box. Command: bash benchmarks/compare_exports.sh compare_exports_one_segment."
  compare_shipped compare_exports_one_segment "$ONE_TITLE" "$ONE_CHANGE" 53347c3 a67948d \
    benchmarks/compare_exports_one_segment_notes.md aspirin_deq ethanol_conservative water_deq
fi

# Export CHECKPOINT with the code of revision REV to OUT (the package from `git archive`, first on the path).
export_at() {  # export_at REV CHECKPOINT OUT EXPORT_ARGS...
  local rev=$1 checkpoint=$2 out=$3
  shift 3
  local tree
  tree=$(mktemp -d)
  git archive --format=tar "$rev" python | tar -x -C "$tree"
  PYTHONPATH="$tree/python" $PY -m deqff.cli export "$checkpoint" -o "$out" "$@" > /dev/null
  rm -rf "$tree"
}

# The shipped water model's export options (Makefile EXPORT_water_deq) without its short-range prior, whose fit
# needs the MD frames of its data.
WATER_EXPORT_OPTIONS=(--dtype float32 --tol 1e-4 --adjoint-tol 1e-4 --predictor-order 2 --secant-memory 40)

# 15. The attention's neighbor sums recorded for a backward (the linearization of conservative forces, hence every
# adjoint iteration) as one batched product over padded neighbor lists (after: 4c85de9) against one scatter sum per
# head (before: c1a688f). The shipped files predate it: the shipped DEQ checkpoints exported at both revisions with
# the shipped options (the water model without its short-range prior, whose fit needs the MD frames of its data).
if wanted compare_exports_padded_sums; then
  PADDED_TITLE="Cheaper conservative forces: the attention's neighbor sums as one batched product (issue #15: 2)"
  PADDED_CHANGE="Change: the attention's weighted neighbor sums (two heads), when recorded for a backward (the \
linearization at the fixed point, whose transpose every adjoint iteration applies), as one batched product over each \
atom's neighbors padded to the largest neighbor count (deqff.nn.scatter.weighted_neighbor_sums) instead of one \
weighting and scatter sum of the [E, M] messages per head; the solver's iterations (no autograd) unchanged. The shipped \
checkpoints exported with the shipped options by the code of commit c1a688f (before) and 4c85de9 (after); the water \
model without the short-range prior on both sides. aspirin: 200 consecutive 0.5 fs steps of 500 K xTB MD; water: 20 \
frames of data/water-box.npz (independent samples of the 32-water box, so warm starts help little). Command: bash \
benchmarks/compare_exports.sh compare_exports_padded_sums."
  rm -f benchmarks/compare_exports_padded_sums.json
  mkdir -p out/bench
  for rev in c1a688f 4c85de9; do
    export_at "$rev" models/aspirin_deq.ckpt "out/bench/aspirin_deq_$rev.pt" --dtype float32 --tol 1e-4 \
      --adjoint-tol 1e-4 --predictor-order 2 --repulsion zbl --repulsion-data data/aspirin.npz
    export_at "$rev" models/water_deq.ckpt "out/bench/water_deq_$rev.pt" "${WATER_EXPORT_OPTIONS[@]}"
  done
  $PY benchmarks/compare_exports.py --dataset data/aspirin_md500K_every_step.npz --frames 200 --label aspirin_deq \
    --section compare_exports_padded_sums --title "$PADDED_TITLE" --change "$PADDED_CHANGE" \
    --json benchmarks/compare_exports_padded_sums.json \
    --before out/bench/aspirin_deq_c1a688f.pt --after out/bench/aspirin_deq_4c85de9.pt \
    --notes-file benchmarks/compare_exports_padded_sums_notes.md
  $PY benchmarks/compare_exports.py --dataset data/water-box.npz --frames 20 --label "water_deq, 96 atoms" \
    --section compare_exports_padded_sums --title "$PADDED_TITLE" --change "$PADDED_CHANGE" \
    --json benchmarks/compare_exports_padded_sums.json \
    --before out/bench/water_deq_c1a688f.pt --after out/bench/water_deq_4c85de9.pt \
    --notes-file benchmarks/compare_exports_padded_sums_notes.md
fi

# 16. LAMMPS: the stages update the local atoms only (4391cab) instead of every row, ghosts included, together with
# the day's other changes to what a stage computes (the padded neighbor sums of 4c85de9, without the ghosts' rows
# since 6fe0883), against the code before them (c1a688f). The shipped water checkpoint exported by both revisions'
# code with the shipped options, without the short-range prior (whose fit needs the MD frames of its data), NVE in
# LAMMPS on one rank.
if wanted compare_lammps_local_rows; then
  LOCAL_TITLE="LAMMPS: stages that update the local atoms only (issue #14)"
  LOCAL_CHANGE="Change: in the host-driven (LAMMPS) evaluation each stage of the layer updates the local atoms only \
(deqff.export.graph_step passes their count to the block: the attention sums messages into them, the norms and the \
feed-forward run on their rows) instead of every row, the ghost atoms' included, whose results were discarded; the ghosts \
still send their messages. With it the attention's neighbor sums as one batched product when recorded for a backward \
(the adjoint's transposes), padded over the local atoms only. Before: the water checkpoint exported by the code of \
commit c1a688f, after: by 4391cab; the same options, without the short-range prior. Command: bash \
benchmarks/compare_exports.sh compare_lammps_local_rows."
  rm -f benchmarks/compare_lammps_local_rows.json
  mkdir -p out/bench
  for rev in c1a688f 4391cab; do
    export_at "$rev" models/water_deq.ckpt "out/bench/water_deq_$rev.pt" "${WATER_EXPORT_OPTIONS[@]}"
  done
  for waters in 32 256; do
    steps=20 repeats=3
    [[ $waters == 256 ]] && steps=5 repeats=2
    LD_LIBRARY_PATH="$PWD/.venv/lib:${LD_LIBRARY_PATH:-}" $PY benchmarks/compare_lammps_exports.py \
      --before out/bench/water_deq_c1a688f.pt --after out/bench/water_deq_4391cab.pt --structure "water-box:$waters" \
      --steps "$steps" --repeats "$repeats" --label "water_deq, $((3 * waters)) atoms" \
      --section compare_lammps_local_rows --title "$LOCAL_TITLE" --change "$LOCAL_CHANGE" \
      --notes-file benchmarks/compare_lammps_local_rows_notes.md
  done
fi

# 17. The shipped water model re-exported (REEXPORT_REV) from the same checkpoint and options by the code with the
# local-rows LAMMPS stages and the padded neighbor sums, its prior's radii from the previous file (d8bba20): the
# Python module on independent frames of the box and LAMMPS NVE on one rank.
REEXPORT_REV=455e946
if wanted compare_water_reexport; then
  REEXPORT_TITLE="The shipped water model re-exported by the code of 2026-12-07 (issues #14, #15)"
  REEXPORT_CHANGE="Change: models/water_deq.pt re-exported from the same checkpoint with the same options by the code \
of commit $REEXPORT_REV (LAMMPS stages that update the local atoms only; the attention's neighbor sums as one batched \
product where autograd records them), the short-range prior's radii taken from the file before \
(\`deqff export --repulsion-from\`; metadata identical). Before: the file of commit d8bba20. Python: 20 frames of \
data/water-box.npz (independent samples, so warm starts help little); LAMMPS: NVE on one rank. Command: bash \
benchmarks/compare_exports.sh compare_water_reexport."
  rm -f benchmarks/compare_water_reexport.json
  mkdir -p out/bench
  git show "d8bba20:models/water_deq.pt" > out/bench/water_deq_shipped_d8bba20.pt
  git show "$REEXPORT_REV:models/water_deq.pt" > "out/bench/water_deq_shipped_$REEXPORT_REV.pt"
  $PY benchmarks/compare_exports.py --dataset data/water-box.npz --frames 20 --label "water_deq, Python module" \
    --section compare_water_reexport --title "$REEXPORT_TITLE" --change "$REEXPORT_CHANGE" \
    --json benchmarks/compare_water_reexport.json \
    --before out/bench/water_deq_shipped_d8bba20.pt --after "out/bench/water_deq_shipped_$REEXPORT_REV.pt"
  LD_LIBRARY_PATH="$PWD/.venv/lib:${LD_LIBRARY_PATH:-}" $PY benchmarks/compare_lammps_exports.py \
    --before out/bench/water_deq_shipped_d8bba20.pt --after "out/bench/water_deq_shipped_$REEXPORT_REV.pt" \
    --structure water-box:32 --steps 20 --repeats 3 --label "water_deq, LAMMPS, 96 atoms" \
    --section compare_water_reexport_lammps --title "$REEXPORT_TITLE: LAMMPS" --change "$REEXPORT_CHANGE"
fi
