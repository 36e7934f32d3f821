"""MD stability as time to failure over seeds (`deqff bench stability`): each model runs --seeds NVT
runs of --ps ps at --temperature (Langevin, 0.5 fs, from the dataset's first frame), --jobs at a time
in one-thread processes; the per-seed table (time to the first broken bond or model stop, h(r)
difference) and the aggregate (median time to failure, survival) go into RESULTS.md, each model's
JSON, table, plot and runs into benchmarks/stability/<model name>/.

    python benchmarks/bench_stability.py --model models/ethanol_conservative.pt \\
        --dataset data/ethanol.npz --seeds 5 --ps 50 --temperature 500 --jobs 2
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from results_file import machine_line, repository_path, write_section

HERE = Path(__file__).resolve().parent
TITLE = "MD stability over seeds (time to failure)"
DEQFF = [sys.executable, "-m", "deqff.cli"]


def run_child(argv: list[str]) -> None:
    """Run argv to its end; a SIGTERM of this script terminates it too (and waits for it). Without
    this, killing this script left the `deqff bench stability` child running and writing pieces."""
    child = subprocess.Popen(argv)

    def stop(signum: int, frame: object) -> None:
        child.terminate()  # waited for below: the interrupted child.wait() holds the lock a wait here needs
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if child.wait() != 0:
            raise subprocess.CalledProcessError(child.returncode, argv)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:  # stopped by SIGTERM or an exception (e.g. Ctrl-C) while waiting
            child.terminate()
            child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", nargs="+", default=["models/ethanol_conservative.pt"])
    parser.add_argument(
        "--dataset",
        nargs="+",
        default=["data/ethanol.npz"],
        help="reference frames of h(r) and bonds: one for every model, or one for all",
    )
    parser.add_argument(
        "--piece-ps",
        type=float,
        help="each run in pieces of this many ps, so that --resume loses at most one piece",
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ps", type=float, default=50.0)
    parser.add_argument("--temperature", type=float, default=500.0)
    parser.add_argument("--timestep", type=float, default=0.5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--report-interval",
        type=int,
        default=20,
        help="steps between analysed frames: 20 (500 frames per 5 ps) keeps the h(r) difference's noise "
        "floor near 0.065 on ethanol; 100 frames per 5 ps put it at 0.14",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep seeds finished earlier with the same model and settings: a run longer than a session "
        "is done in pieces (stop it any time; the finished seeds' directories are kept in the repo)",
    )
    parser.add_argument("--out", default=str(HERE / "stability"))
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()

    arguments = shlex.join(a for a in sys.argv[1:] if a != "--resume")  # a piece's command: the whole run's
    pieces = " (run in pieces with --resume)" if args.resume else ""
    lines = [
        f"Command: `python benchmarks/bench_stability.py {arguments}`{pieces}  ",
        machine_line() + "  ",
        "",
    ]
    if len(args.dataset) not in (1, len(args.model)):
        parser.error(f"--dataset: give one for every model ({len(args.model)}) or one for all")
    datasets = args.dataset * len(args.model) if len(args.dataset) == 1 else args.dataset
    for model, dataset in zip(args.model, datasets, strict=True):
        out = Path(args.out) / Path(model).stem
        piece_option = ["--piece-ps", f"{args.piece_ps:g}"] if args.piece_ps else []
        run_child(
            [*DEQFF, "bench", "stability", "--model", model, "--dataset", dataset, *piece_option,
             "--seeds", str(args.seeds), "--ps", f"{args.ps:g}", "--temperature", f"{args.temperature:g}",
             "--timestep", f"{args.timestep:g}", "--jobs", str(args.jobs), "--out", str(out),
             "--report-interval", str(args.report_interval), *(["--resume"] if args.resume else [])]
        )  # fmt: skip
        figure = repository_path(out / "stability.png")
        lines += [
            f"**{Path(model).name}** (plot: `{figure}`):",
            "",
            *(out / "stability.md").read_text().splitlines(),
        ]
        lines.append("")
        # after every model: a later model's runs may take sessions (--resume), this one's are done
        write_section(Path(args.results), "bench_stability", TITLE, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
