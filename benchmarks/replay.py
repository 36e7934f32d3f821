"""Shared pieces of the benchmarks that replay an MD trajectory through several exports side by side
(bench_adjoint_tolerance.py, bench_dtype.py): their common arguments, the frames, calls alternating
between modules frame by frame, and an NVE run of an export in OpenMM."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from bench_tolerance import Run
from deqff.bench.md import md_settings, run_md
from deqff.bench.nve import energy_drift
from deqff.data.formats import read
from deqff.export.export import export_checkpoint, model_from_checkpoint
from deqff.export.options import ExportOptions
from deqff.md.jit import model_calls
from deqff.models.force_field import EquivariantForceField
from results_file import add_notes_argument


def add_replay_arguments(parser: argparse.ArgumentParser, nve_steps: int, out: str) -> None:
    """The checkpoint, trajectory, NVE and output arguments both benchmarks take."""
    parser.add_argument("--checkpoint", default="models/aspirin_deq.ckpt")
    parser.add_argument("--trajectory", default="data/aspirin_md500K_every_step.npz")
    parser.add_argument("--structure", default="aspirin", help="start of the NVE runs")
    parser.add_argument("--steps", type=int, default=200, help="frames (MD steps) to replay")
    parser.add_argument("--predictor-order", type=int, default=2)
    parser.add_argument("--nve-steps", type=int, default=nve_steps, help="0: no NVE runs")
    parser.add_argument("--out", default=out, help="NVE runs' exports and logs")


def load_replay(
    args: argparse.Namespace,
) -> tuple[EquivariantForceField, np.ndarray, list[torch.Tensor], torch.Tensor | None]:
    """(model of args.checkpoint, atomic numbers [N], the first args.steps frames [N, 3] Å, float64, and
    the trajectory's periodic cell [3, 3] Å, or None for a molecule)."""
    data = read(args.trajectory)
    count = min(args.steps, len(data.R))
    frames = [torch.as_tensor(data.R[i], dtype=torch.float64) for i in range(count)]
    return model_from_checkpoint(args.checkpoint), np.asarray(data.z), frames, replay_cell(data, count)


def replay_cell(data: Any, count: int) -> torch.Tensor | None:
    """The cell [3, 3] Å of a periodic trajectory's first `count` frames (one box: NVT or NVE), or None."""
    if data.cell is None or not data.periodic:
        return None
    cells = np.asarray(data.cell)[:count]
    if not np.allclose(cells, cells[0]):
        raise ValueError(
            "replaying a trajectory whose box changes (NPT) is not supported: use NVT or NVE frames"
        )
    return torch.as_tensor(cells[0], dtype=torch.float64)


def alternate(
    modules: list[torch.jit.ScriptModule], frames: list[torch.Tensor], cell: torch.Tensor | None = None
) -> list[Run]:
    """Call every module once per frame (positions [N, 3] Å, in `cell` [3, 3] Å or none), in order of
    frames, the modules' order rotating each frame; one Run per module (with energies). The calls run as
    deqff's engine paths make them (deqff.md.jit.model_calls: TorchScript's optimizing executor off,
    unless DEQFF_JIT_OPTIMIZE=1)."""
    records: list[dict[str, list]] = [{"it": [], "adj": [], "s": [], "f": [], "e": []} for _ in modules]
    for n, positions in enumerate(tqdm(frames, desc="alternating calls", unit="frame")):
        for k in [(n + i) % len(modules) for i in range(len(modules))]:
            start = time.perf_counter()
            with model_calls():
                energy, forces = modules[k].compute(positions, cell)
            records[k]["s"].append(time.perf_counter() - start)
            records[k]["it"].append(modules[k].last_iterations())
            records[k]["adj"].append(modules[k].last_adjoint_iterations())
            records[k]["f"].append(forces.numpy())
            records[k]["e"].append(float(energy))
    return [
        Run(
            np.array(r["it"], float),
            np.array(r["adj"], float),
            np.array(r["s"]),
            np.stack(r["f"]),
            np.array(r["e"]),
        )
        for r in records
    ]


def plot_energy_traces(ax: Any, drifts: dict[str, dict], title: str) -> None:
    """On a matplotlib axis: total energy minus its start (kJ/mol) against time (ps) of `nve_drift`
    results, one line per label (empty results skipped)."""
    for label, drift in drifts.items():
        if drift:
            ax.plot(drift["time_ps"], drift["energy"] - drift["energy"][0], lw=0.8, label=label)
    ax.set(xlabel="time (ps)", ylabel="total energy - start (kJ/mol)", title=title)
    if any(drifts.values()):
        ax.legend(fontsize=8)


def read_metadata_line(path: str) -> str:
    """How a deqff dataset's frames were sampled, from its metadata: e.g. '500 K MD (xtb)'."""
    meta = read(path).metadata or {}
    temperature, sampler = meta.get("temperature_K"), meta.get("sampler")
    if temperature is None:
        return "MD frames"
    return f"{temperature:g} K MD" + (f" ({sampler})" if sampler else "")


def add_section_arguments(
    parser: argparse.ArgumentParser, plot: Path, section: str, plot_help: str | None = None
) -> None:
    """--plot, --section, --title and --notes-file of a replay benchmark, with its default plot and
    section."""
    parser.add_argument("--plot", default=str(plot), help=plot_help)
    parser.add_argument("--section", default=section, help="RESULTS.md section key")
    parser.add_argument("--title", default="", help="added to the section title, e.g. 'water box'")
    add_notes_argument(parser)


def section_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The command line's plot/section/title/notes arguments (`add_section_arguments`) when they are not
    the parser's defaults (for the command line its RESULTS.md section records)."""
    parts = []
    if Path(args.plot) != Path(parser.get_default("plot")):
        parts.append(f" --plot {args.plot}")
    if args.section != parser.get_default("section"):
        parts.append(f" --section {args.section}")
    if args.title:
        parts.append(f" --title {shlex.quote(args.title)}")
    if args.notes_file:
        parts.append(f" --notes-file {args.notes_file}")
    return "".join(parts)


def nve_drift(checkpoint: str, options: ExportOptions, args: argparse.Namespace, name: str) -> dict:
    """Export with `options`, run NVE in OpenMM (args.structure, args.nve_steps); the drift summary."""
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    model_file = export_checkpoint(checkpoint, out / "model.pt", options)
    settings = SimpleNamespace(
        model=model_file, out=out, steps=args.nve_steps, temperature=300.0, timestep=0.5,
        platform="CPU", report_interval=10, seed=0, threads=1, start_state=None,
    )  # fmt: skip
    rows, structure = run_md(md_settings(settings, "nve", args.structure))
    time_ps = np.array([row["time_ps"] for row in rows])
    energy = np.array([row["total_energy_kj_mol"] for row in rows])
    return {
        **energy_drift(time_ps, energy, len(structure.atomic_numbers)),
        "time_ps": time_ps,
        "energy": energy,
    }
