"""Density of a periodic model at constant pressure: `deqff simulate --ensemble npt` over seeds.

Each seed is one NPT run (Langevin thermostat + OpenMM's Monte Carlo barostat) of a generated,
energy-minimized water box with an exported model, in its own directory `<out>/seed<k>`; a finished
run (its summary.json) is reused. The section reports per seed the density of the run's first report
and the mean and standard deviation over the reports of its second half with the mean's standard error
by block averaging (`block_standard_error`), the warm solver iterations
per step and the time per step (barostat energy evaluations included), the mean over seeds and its
standard error, and plots density against time for every seed.

    OMP_NUM_THREADS=1 python benchmarks/bench_npt.py --model models/water_deq.pt \\
        --structure water-box:32 --steps 14000 --seeds 0 1

A run longer than a working session is made in pieces (`--pieces N`: N runs of `--steps` per seed, each
continuing the last from its final state); finished pieces are reused when the command is run again with
the same model file and settings, so it continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
from pathlib import Path

from deqff.bench.nve import read_log
from deqff.data.fingerprint import file_sha256
from deqff.md.plots import plot_density
from deqff.md.simulate import density_summary
from results_file import add_notes_argument, machine_line, notes_lines, write_section

HERE = Path(__file__).resolve().parent
SECTION = "bench_npt"


#: Piece j > 0 of a seed's run draws its thermostat noise from seed + PIECE_SEED_STRIDE * j.
PIECE_SEED_STRIDE = 1000
#: Blocks of a seed's second half whose means give the standard error of its mean density.
DENSITY_BLOCKS = 4


def block_standard_error(values: list[float], blocks: int = DENSITY_BLOCKS) -> float:
    """Standard error of the mean of a correlated time series by block averaging: the series cut into
    `blocks` consecutive blocks of equal length (the remainder at the end dropped), the standard
    deviation of their means over sqrt(blocks). Consecutive reports of an MD run are correlated, so
    std / sqrt(n) understates the error; block means are independent once a block outlasts the
    correlation time (if it does not, this too is a lower bound). NaN for fewer values than blocks."""
    if blocks < 2:
        raise ValueError(f"blocks={blocks}: block averaging needs at least 2 blocks")
    length = len(values) // blocks
    if length == 0:
        return float("nan")
    means = [statistics.fmean(values[b * length : (b + 1) * length]) for b in range(blocks)]
    return statistics.stdev(means) / blocks**0.5


def piece_directory(args: argparse.Namespace, seed: int, piece: int) -> Path:
    """`<out>/seed<k>` for the first piece of a seed's run, `<out>/seed<k>/piece<j>` for the others."""
    directory = Path(args.out) / f"seed{seed}"
    return directory if piece == 0 else directory / f"piece{piece}"


def run_seed(args: argparse.Namespace, seed: int) -> list[Path]:
    """The directories of `seed`'s `args.pieces` pieces of `args.steps` steps each, after running those
    without a summary.json; piece j > 0 continues from piece j - 1's final_state.xml (positions,
    velocities, time, box), so a long run is made in pieces across sessions."""
    check_model(args, piece_directory(args, seed, 0))
    directories = []
    for piece in range(args.pieces):
        directory = piece_directory(args, seed, piece)
        directories.append(directory)
        if (directory / "summary.json").is_file():
            check_settings(args, directory)
            print(f"seed {seed}, piece {piece}: reusing {directory}")
            continue
        start_state = None
        if piece > 0:
            start_state = directories[-2] / "final_state.xml"
            if not start_state.is_file():
                raise SystemExit(
                    f"bench_npt: {directories[-2]} has no final_state.xml to continue from (a run made "
                    "before `deqff simulate` saved it); remove it to run the seed anew"
                )
        run_piece(args, seed + PIECE_SEED_STRIDE * piece, directory, start_state)
    return directories


#: Settings a finished piece must share with the command that reuses it.
PIECE_SETTINGS = (
    "structure",
    "steps",
    "temperature",
    "timestep",
    "pressure",
    "barostat_interval",
    "friction",
)


def check_model(args: argparse.Namespace, directory: Path) -> None:
    """Stop unless the seed's pieces in `directory` were made with the bytes of `args.model`
    (recorded in `<directory>/model.sha256` when the seed's first piece starts)."""
    digest = file_sha256(args.model)
    record = directory / "model.sha256"
    if record.is_file() and record.read_text().strip() != digest:
        raise SystemExit(
            f"bench_npt: the pieces in {directory} were made with another model file than {args.model} "
            "(a re-export has other bytes); give another --out, or remove them to run the seed anew"
        )
    directory.mkdir(parents=True, exist_ok=True)
    record.write_text(digest + "\n")


def check_settings(args: argparse.Namespace, directory: Path) -> None:
    """Stop unless the finished piece in `directory` ran with this command's settings."""
    settings = json.loads((directory / "summary.json").read_text())["settings"]
    differ = [name for name in PIECE_SETTINGS if settings[name] != getattr(args, name)]
    if differ:
        found = ", ".join(f"{name} {settings[name]} (asked: {getattr(args, name)})" for name in differ)
        raise SystemExit(
            f"bench_npt: the piece in {directory} ran with other settings: {found}; give another --out"
        )


def run_piece(args: argparse.Namespace, seed: int, directory: Path, start_state: Path | None) -> None:
    """One NPT run of `args.steps` steps into `directory`, from a minimized box or `start_state`."""
    import torch

    from deqff.md.simulate import SimulationSettings, format_summary, simulate

    torch.set_num_threads(1)
    settings = SimulationSettings(
        model=args.model,
        structure=args.structure,
        out=str(directory),
        steps=args.steps,
        temperature=args.temperature,
        timestep=args.timestep,
        ensemble="npt",
        pressure=args.pressure,
        barostat_interval=args.barostat_interval,
        friction=args.friction,
        report_interval=args.report_interval,
        seed=seed,
        cold_comparison=False,
        start_state=None if start_state is None else str(start_state),
        minimize=None if start_state is None else False,
    )
    print(format_summary(simulate(settings, progress=True)))


def seed_row(seed: int, directories: list[Path]) -> tuple[list[str], float, float, list[dict[str, float]]]:
    """Table cells of one seed's run (its pieces' logs joined), its second-half mean density and that
    mean's block standard error (g/cm³), and its log rows."""
    summaries = [json.loads((d / "summary.json").read_text()) for d in directories]
    rows = [row for d in directories for row in read_log(d / "log.csv")]
    density = density_summary(rows)
    steps = sum(s["settings"]["steps"] for s in summaries)
    ms_per_step = 1000.0 * sum(s["warm"]["seconds"] for s in summaries) / steps
    iterations = sum(s["warm"]["mean_iterations"] * s["settings"]["steps"] for s in summaries) / steps
    temperatures = [r["temperature_k"] for r in rows[len(rows) // 2 :]]
    error = block_standard_error([r["density_g_cm3"] for r in rows[len(rows) // 2 :]])
    cells = [
        str(seed),
        f"{rows[-1]['time_ps']:.1f}",
        f"{density['first_g_cm3']:.3f}",
        f"{density['mean_second_half_g_cm3']:.3f} ± {density['std_second_half_g_cm3']:.3f}",
        "-" if math.isnan(error) else f"{error:.3f}",
        f"{statistics.mean(temperatures):.1f} ({min(temperatures):.0f}-{max(temperatures):.0f})",
        f"{iterations:.2f}",
        f"{ms_per_step:.1f}",
    ]
    return cells, density["mean_second_half_g_cm3"], error, rows


def plot_link(plot: Path) -> str:
    """The plot's path as RESULTS.md (in benchmarks/) links it."""
    resolved = plot.resolve()
    return str(resolved.relative_to(HERE)) if resolved.is_relative_to(HERE) else str(plot)


def pieces_phrase(args: argparse.Namespace) -> str:
    """'14000 steps', or '4 pieces of 10000 steps (...)' for a run made in pieces."""
    if args.pieces == 1:
        return f"{args.steps} steps"
    return (
        f"{args.pieces} pieces of {args.steps} steps (each continuing the last from its final state, with "
        "thermostat noise of its own)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/water_deq.pt")
    parser.add_argument("--structure", default="water-box:32")
    parser.add_argument("--steps", type=int, default=14000)
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--pressure", type=float, default=1.0, help="bar")
    parser.add_argument("--barostat-interval", type=int, default=25)
    parser.add_argument(
        "--friction",
        type=float,
        default=5.0,
        help="Langevin friction (1/ps): a minimized box takes several ps at 1/ps to reach the temperature",
    )
    parser.add_argument("--report-interval", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--pieces", type=int, default=1, help="runs of --steps each per seed, each continuing the last"
    )
    parser.add_argument("--out", default="out/bench/npt")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--plot", type=Path, default=HERE / "npt_water.png")
    parser.add_argument("--title", default="Water density at constant pressure (issue #13: 6)")
    parser.add_argument("--section", default=SECTION, help="RESULTS.md section key")
    add_notes_argument(parser)
    args = parser.parse_args(argv)

    runs, cells, means, errors = {}, [], [], []
    for seed in args.seeds:
        row, mean, error, rows = seed_row(seed, run_seed(args, seed))
        cells.append(row)
        means.append(mean)
        errors.append(error)
        runs[seed] = rows
    title = f"{args.model}, {args.structure}, {args.temperature:g} K, {args.pressure:g} bar"
    plot_density({f"seed {seed}": rows for seed, rows in runs.items()}, args.plot, title)
    spread = statistics.stdev(means) / len(means) ** 0.5 if len(means) > 1 else float("nan")
    pooled = math.sqrt(sum(error**2 for error in errors)) / len(errors)  # of the mean of the seeds' means
    arguments = sys.argv[1:] if argv is None else argv
    command = "python benchmarks/bench_npt.py " + shlex.join(arguments)
    lines = [
        f"Command: `{command}`  ",
        machine_line(),
        "",
        f"`deqff simulate --ensemble npt` with `{args.model}` on a generated, energy-minimized"
        f" `{args.structure}`: {pieces_phrase(args)} of {args.timestep:g} fs per seed (Langevin thermostat at"
        f" {args.temperature:g} K, friction {args.friction:g}/ps; OpenMM's Monte Carlo barostat at"
        f" {args.pressure:g} bar every {args.barostat_interval} steps, scaling atom positions), warm-started"
        " solves, OpenMM CPU platform, one torch thread. Density: box mass over volume every"
        f" {args.report_interval} steps; the second half of each run is averaged (the first counted as"
        " equilibration); its standard error by block averaging (the second half cut into"
        f" {DENSITY_BLOCKS} consecutive blocks: the standard deviation of their means over"
        f" sqrt({DENSITY_BLOCKS})). ms per step includes the barostat's energy evaluations.",
        "",
        "| seed | simulated ps | first density (g/cm³) | second half: mean ± std (g/cm³) "
        f"| standard error of the mean ({DENSITY_BLOCKS} blocks) "
        "| second half T: mean (range), K | solver iterations / step | ms / step |",
        "|---|---|---|---|---|---|---|---|",
        *["| " + " | ".join(row) + " |" for row in cells],
        "",
        f"Mean density over seeds: **{statistics.mean(means):.3f} g/cm³**"
        + (
            f" (standard error {spread:.3f} from the spread of the seeds' means, {pooled:.3f} from their"
            " block errors)"
            if len(means) > 1
            else f" (one seed; block error {pooled:.3f})"
        )
        + "; experiment 0.997 g/cm³ at 298 K.",
    ]
    if args.notes_file:
        lines += ["", *notes_lines(args.notes_file)]
    lines += [
        "",
        f"![density vs time]({plot_link(args.plot)})",
    ]
    write_section(args.results, args.section, args.title, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
