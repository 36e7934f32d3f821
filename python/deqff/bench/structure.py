"""`deqff bench structure`: stability and structure of an NVT run against the xTB reference data.

* h(r): the distribution of all interatomic distances r_ij (i < j) over the frames, a density in 1/Å
  on fixed bins (integrates to 1 over the range). The difference of two distributions is
  D = integral |h_run(r) - h_ref(r)| dr (0 for identical distributions, 2 for disjoint ones).
* bonds: pairs whose mean reference distance is below 1.2 x the sum of covalent radii (ASE's table)
  are bonded; a frame breaks a bond when a bonded pair is farther apart than `factor` (1.5) x its mean
  reference length. The run is stable if no frame breaks a bond and the model does not stop it (atoms
  collapsing onto each other, a solve failing even cold): such a stop is recorded (`stopped`, with the
  model's message, and `simulated_ps`) and the frames up to it are analysed.

The trajectory is a run made here (NVT, Langevin, from the dataset's first frame so the atom order
matches) or an existing one (`--trajectory trajectory.dcd --topology topology.pdb` from `deqff
simulate`, or a dataset file); its atoms must be in the reference's order.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from deqff.bench.frames import pair_distances, pair_indices

HELP = "NVT stability (broken bonds) and h(r) against the reference dataset, with a plot"
#: Bonded if the mean reference distance is below BOND_SCALE x (sum of covalent radii).
BOND_SCALE = 1.2


def distance_histogram(positions: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """h(r) [B] in 1/Å on bins `edges` [B + 1] Å from positions [F, N, 3] Å (all pairs, all frames)."""
    counts, _ = np.histogram(pair_distances(positions).ravel(), bins=edges)
    return counts / max(counts.sum(), 1) / np.diff(edges)


def histogram_difference(h_a: np.ndarray, h_b: np.ndarray, edges: np.ndarray) -> float:
    """integral |h_a - h_b| dr over the bins (0 identical ... 2 disjoint)."""
    return float(np.sum(np.abs(h_a - h_b) * np.diff(edges)))


def reference_floor(reference: np.ndarray, frames: int, window: int, edges: np.ndarray) -> float | None:
    """The h(r) difference the reference itself scores at a run's sampling: `frames` evenly spaced
    frames from each non-overlapping window of `window` consecutive reference frames [G, N, 3] Å (a run's
    length in reference frames), against all reference frames; the mean over windows. A run cannot be
    told from the reference below this noise floor. None if the reference is shorter than one window
    or `frames` < 1."""
    window = max(int(window), frames)
    if frames < 1 or reference.shape[0] < window:
        return None
    h_ref = distance_histogram(reference, edges)
    differences = []
    for start in range(0, reference.shape[0] - window + 1, window):
        picked = start + np.linspace(0, window - 1, frames).round().astype(int)
        differences.append(histogram_difference(distance_histogram(reference[picked], edges), h_ref, edges))
    return float(np.mean(differences))


def bonded_pairs(
    numbers: np.ndarray, reference: np.ndarray, scale: float = BOND_SCALE
) -> tuple[np.ndarray, np.ndarray]:
    """(pairs [B, 2], mean reference lengths [B] Å) of the bonded pairs of reference frames [F, N, 3]."""
    from ase.data import covalent_radii

    i, j = pair_indices(len(numbers))
    mean = pair_distances(reference).mean(axis=0)
    radii = covalent_radii[np.asarray(numbers)]
    bonded = mean < scale * (radii[i] + radii[j])
    return np.stack([i[bonded], j[bonded]], axis=1), mean[bonded]


def broken_bonds(
    positions: np.ndarray, pairs: np.ndarray, lengths: np.ndarray, factor: float = 1.5
) -> np.ndarray:
    """Broken bonds per frame [F]: bonded pairs (pairs [B, 2], lengths [B] Å) longer than factor x length."""
    distances = np.linalg.norm(positions[:, pairs[:, 0]] - positions[:, pairs[:, 1]], axis=-1)
    return (distances > factor * lengths).sum(axis=1)


def compare_structure(
    numbers: np.ndarray,
    positions: np.ndarray,
    reference: np.ndarray,
    r_max: float = 8.0,
    bins: int = 400,
    factor: float = 1.5,
) -> dict[str, Any]:
    """Compare a run's frames [F, N, 3] Å with reference frames [G, N, 3] Å (same atoms, same order):
    h(r) of both on `bins` bins up to r_max Å, their difference (None without frames: a run the model
    stopped before its first frame), broken bonds per frame."""
    edges = np.linspace(0.0, r_max, bins + 1)
    h_run = distance_histogram(positions, edges)
    h_ref = distance_histogram(reference, edges)
    pairs, lengths = bonded_pairs(numbers, reference)
    broken = broken_bonds(positions, pairs, lengths, factor)
    first = int(np.argmax(broken > 0)) if broken.any() else -1
    return {
        "edges": edges,
        "h_run": h_run,
        "h_ref": h_ref,
        "broken_per_frame": broken,
        "summary": {
            "h_r_difference": histogram_difference(h_run, h_ref, edges) if len(positions) else None,
            "bonds": len(pairs),
            "frames": int(positions.shape[0]),
            "reference_frames": int(reference.shape[0]),
            "frames_with_broken_bonds": int((broken > 0).sum()),
            "first_broken_frame": first,
            "stable": bool(not broken.any()),
            "bond_factor": factor,
        },
    }


def load_trajectory(path: str | Path, topology: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(atomic numbers [N], positions [F, N, 3] Å) of a trajectory (mdtraj: DCD/XTC with a topology
    PDB) or a dataset file (npz / extxyz)."""
    path = Path(path)
    if path.suffix in (".npz", ".xyz", ".extxyz"):
        from deqff.bench.frames import load_frames

        return load_frames(path)
    import mdtraj

    trajectory = mdtraj.load(str(path), top=None if topology is None else str(topology))
    numbers = np.array([atom.element.atomic_number for atom in trajectory.topology.atoms])
    return numbers, trajectory.xyz.astype(np.float64) * 10.0  # nm -> Å


def run_until_model_error(settings: Any, run_md: Any) -> str | None:
    """Run the MD; a model error that stops it (atoms collapsing onto each other, a solve that fails
    even cold) is a result of a stability test, not a crash: returns its message (None if the run
    completed). The log and trajectory hold the run up to that point."""
    import openmm

    from deqff.export.export import script_error

    try:
        run_md(settings, trajectory=True)
    except openmm.OpenMMException as error:
        message = str(script_error(error))
        print(f"the run stopped: {message}")
        return message
    return None


def run_extent(log: Path, stopped: str | None) -> dict[str, Any]:
    """Simulated time (ps, from the last log row) and why the run stopped early (None: it completed);
    a stopped run is not stable."""
    from deqff.bench.nve import read_log

    rows = read_log(log)
    extent: dict[str, Any] = {"simulated_ps": rows[-1]["time_ps"] if rows else 0.0, "stopped": stopped}
    if stopped:
        extent["stable"] = False
    return extent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from deqff.bench.md import add_md_arguments

    add_md_arguments(parser, steps=200000, temperature=500.0, ensemble_help="NVT (Langevin) at --temperature")
    parser.add_argument("--trajectory", help="analyse this trajectory (DCD/XTC + --topology, or npz) instead")
    parser.add_argument(
        "--topology", help="topology PDB of --trajectory (deqff simulate writes topology.pdb)"
    )
    parser.add_argument("--r-max", type=float, default=8.0, help="largest distance of h(r), Å")
    parser.add_argument("--bins", type=int, default=400)
    parser.add_argument(
        "--bond-factor", type=float, default=1.5, help="broken beyond this x reference length"
    )
    parser.add_argument(
        "--skip", type=int, default=0, help="discard this many leading frames (equilibration)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run NVT (or read --trajectory) and compare with the dataset; write structure.json, h_r.csv,
    broken_bonds.csv and h_r.png to args.out."""
    from deqff.bench.frames import load_frames
    from deqff.bench.output import write_rows, write_summary
    from deqff.bench.plots import plot_h_r

    out = Path(args.out)
    numbers_ref, reference = load_frames(args.dataset)
    if args.trajectory:
        numbers, positions = load_trajectory(args.trajectory, args.topology)
    else:
        from deqff.bench.md import first_frame_structure, md_settings, run_md

        structure = args.structure or first_frame_structure(args.dataset, out)
        (out / "trajectory.dcd").unlink(missing_ok=True)  # a previous run's frames are not this run's
        stopped = run_until_model_error(md_settings(args, "nvt", structure), run_md)
        if (out / "trajectory.dcd").is_file():
            numbers, positions = load_trajectory(out / "trajectory.dcd", out / "topology.pdb")
        else:  # stopped before the first frame (the reporter creates the file with it)
            numbers, positions = numbers_ref, np.empty((0, *reference.shape[1:]))
    if not np.array_equal(numbers, numbers_ref):
        raise ValueError(
            "the trajectory's atoms differ from the dataset's (elements or order); start the run from a "
            "dataset frame (the default) so that bonds can be compared atom by atom"
        )
    positions = positions[args.skip :]
    result = compare_structure(numbers, positions, reference, args.r_max, args.bins, args.bond_factor)
    summary = {"model": str(args.model), "dataset": str(args.dataset), **result["summary"]}
    if not args.trajectory:
        summary.update(run_extent(out / "log.csv", stopped))
    edges = result["edges"]
    centres = 0.5 * (edges[1:] + edges[:-1])
    write_rows(
        out / "h_r.csv",
        [
            {"r": r, "h_run": a, "h_ref": b}
            for r, a, b in zip(centres, result["h_run"], result["h_ref"], strict=True)
        ],
    )
    write_rows(
        out / "broken_bonds.csv",
        [{"frame": f, "broken": int(n)} for f, n in enumerate(result["broken_per_frame"])],
    )
    write_summary(out / "structure.json", summary)
    verdict = "stable" if summary["stable"] else "BONDS BROKEN"
    if summary.get("stopped"):
        verdict = f"STOPPED at {summary['simulated_ps']:.1f} ps"
    difference = "n/a" if summary["h_r_difference"] is None else f"{summary['h_r_difference']:.4f}"
    title = f"∫|Δh| dr = {difference}; {verdict}"
    plot_h_r(centres, {"run": result["h_run"], "reference (xTB)": result["h_ref"]}, title, out / "h_r.png")
    print(
        f"h(r) difference {difference}; {summary['bonds']} bonds, "
        f"{summary['frames_with_broken_bonds']} of {summary['frames']} frames with broken bonds; "
        f"outputs in {out}"
    )
    return summary
