#!/usr/bin/env bash
# GPU check (issue #16: 6). Where torch sees a CUDA device: the tests of the GPU paths (pytest -m cuda:
# the exported model moved to CUDA, the ASE calculator with device="cuda", `deqff simulate --platform
# CUDA`, LAMMPS `pair_style deq ... device cuda`), then a short timing of each engine on the GPU and on
# the CPU with the shipped aspirin model. Elsewhere it says so and exits 0.
#   bash benchmarks/gpu_check.sh            (after `make build`; DEQFF_BUILD_DIR picks another build)
# Outputs in out/gpu_check/ (OUT=...). One torch thread on the CPU side, as every deqff benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
OUT=${OUT:-out/gpu_check}
STEPS=${STEPS:-200}
MODEL=${MODEL:-models/aspirin_deq.pt}
export DEQFF_BUILD_DIR=${DEQFF_BUILD_DIR:-$PWD/build}
export LD_LIBRARY_PATH=$PWD/.venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

if [[ $($PY -c 'import torch; print(torch.cuda.is_available())') != True ]]; then
  echo "gpu_check: no CUDA device visible to torch (torch.cuda.is_available() is False): nothing to check"
  exit 0
fi
mkdir -p "$OUT"
$PY -c 'import torch; print(f"gpu_check: torch {torch.__version__} (CUDA {torch.version.cuda}) on {torch.cuda.get_device_name(0)}")'
if [[ ! -f $DEQFF_BUILD_DIR/libdeqff_lammps.so ]]; then
  echo "gpu_check: no LAMMPS plugin in $DEQFF_BUILD_DIR: run \`make build\` first (or set DEQFF_BUILD_DIR)" >&2
  exit 1
fi

# 1. The GPU tests (each also runs on the CPU for its reference).
$PY -m pytest -m cuda tests -q -rs

# 2. Timing: $STEPS steps of the shipped aspirin model per engine, on the CPU and on the GPU.
if $PY -c 'from deqff.md.devices import check_platform; check_platform("CUDA")'; then
  for platform in CPU CUDA; do
    $PY -m deqff.cli simulate --model "$MODEL" --structure aspirin --steps "$STEPS" --no-cold \
      --platform "$platform" --out "$OUT/simulate_$platform" | tee "$OUT/simulate_$platform.txt"
  done
else
  echo "gpu_check: OpenMM cannot run a TorchForce on CUDA here (message above): OpenMM timing skipped"
fi

$PY - "$MODEL" "$STEPS" "$DEQFF_BUILD_DIR/libdeqff_lammps.so" cpu cuda <<'PYTHON' | tee "$OUT/timing.txt"
"""ms per step of the ASE calculator (velocity Verlet) and of LAMMPS NVE, the model on each device."""
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet

from deqff.md.ase import DeqffCalculator
from deqff.md.lammps import run_nve
from deqff.md.structure import load_structure

model, steps, plugin, devices = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
torch.set_num_threads(1)
structure = load_structure("aspirin")
print(f"{Path(model).name}, aspirin ({len(structure.atomic_numbers)} atoms), {steps} steps of 0.5 fs")
for device in devices:
    atoms = Atoms(numbers=structure.atomic_numbers, positions=structure.positions * 10.0)  # nm -> Å
    atoms.calc = DeqffCalculator(model, device=device)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    dynamics.run(3)  # first calls: TorchScript warm-up, CUDA context
    began = time.perf_counter()
    dynamics.run(steps)
    ms = 1e3 * (time.perf_counter() - began) / steps
    stats = atoms.calc.solver_stats()
    per_call = stats["total_iterations"] / stats["calls"]
    print(f"  ASE calculator,        device {device:4s}: {ms:8.2f} ms/step ({per_call:.1f} iterations/call)")
for device in devices:
    run = run_nve(plugin, Path(model), structure, steps, device=device)
    print(
        f"  LAMMPS pair_style deq, device {device:4s}: {run.ms_per_step:8.2f} ms/step "
        f"({run.mean_iterations:.1f} iterations/step)"
    )
PYTHON
echo "gpu_check: done; outputs in $OUT"
