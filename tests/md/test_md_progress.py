"""Progress of MD runs: status lines when the output is not a terminal, a tqdm bar when it is; the
demo shows both engines' progress and writes its summary lines to `<out>/summary.md`."""

from __future__ import annotations

import io
import re

from deqff.cli import main
from deqff.md.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(total=4, description="NVT MD, warm start", interval=0.0, stream=stream) as progress:
        for _ in range(4):
            progress.update()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0] == "NVT MD, warm start: 0/4 steps"
    status = r"NVT MD, warm start: 1/4 steps \(25%\), \d+ s, [\d.]+ steps/s, ~\d+ s left"
    assert re.fullmatch(status, lines[1])
    assert len(lines) == 5  # start, after steps 1-3, the end
    assert re.fullmatch(r"NVT MD, warm start: 4/4 steps \(100%\) in \d+ s, [\d.]+ steps/s", lines[-1])


def test_status_lines_are_spaced_by_the_interval() -> None:
    stream = io.StringIO()
    with Progress(total=1000, description="run", interval=3600.0, stream=stream) as progress:
        for _ in range(1000):
            progress.update()
    counts = [line.split(":")[1].split()[0] for line in stream.getvalue().splitlines()]
    assert counts == ["0/1000", "1000/1000"]


def test_unfinished_run_writes_no_final_line() -> None:
    stream = io.StringIO()
    with Progress(total=10, description="run", stream=stream) as progress:
        progress.update(3)
    assert stream.getvalue().splitlines() == ["run: 0/10 steps"]


def test_bar_on_a_terminal() -> None:
    stream = Terminal()
    with Progress(total=4, description="LAMMPS NVE, warm start", stream=stream) as progress:
        progress.update(4)
    text = stream.getvalue()
    assert "\r" in text and "4/4" in text and "LAMMPS NVE, warm start" in text
    assert "0/4 steps\n" not in text  # no status lines


def test_demo_shows_progress_and_writes_its_summary(models, lammps_plugin, tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--model", str(models("direct")), "--steps", "3", "--out", str(out)]
    # No jit_optimized() here (the fixture turns optimization off): deqff's MD switches it on to
    # create Contexts (freezing needs it) and off for the model calls by itself.
    assert main([*argv, "--build-dir", str(lammps_plugin.parent)]) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    runs = ("NVT MD, warm start", "NVT MD, cold start", "LAMMPS NVE, warm start", "LAMMPS NVE, cold start")
    for run in runs:
        assert f"{run}: 0/3 steps" in err
        assert any(line.startswith(f"{run}: 3/3 steps (100%)") for line in err), run
    text = (out / "summary.md").read_text()
    assert f"summary written to {out / 'summary.md'}" in captured.out
    assert f"Command: `deqff demo --steps 3 --model {models('direct')}" in text
    summary = text.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    lammps = r" +[\d.]+ ms/step, +[\d.]+ solver iterations per step, total-energy drift [+-][\d.]+ eV"
    patterns = [
        r"OpenMM TorchForce, .+\.pt on ethanol:",
        r"3 steps of 0\.5 fs, NVT at 300\.0 K, 9 atoms, OpenMM CPU platform",
        r"  warm start: +[\d.]+ ns/day, +[\d.]+ solver iterations per step \([\d.]+ s\)",
        r"  cold start: +[\d.]+ ns/day, +[\d.]+ solver iterations per step \([\d.]+ s\)",
        r"  warm/cold: [\d.]+x the iterations, [\d.]+x the speed",
        r"  outputs in .+openmm",
        r"LAMMPS pair_style deq, .+\.pt on ethanol \(3 NVE steps of 0\.5 fs, metal\):",
        r"  warm start:" + lammps,
        r"  cold start:" + lammps,
        r"  warm/cold: [\d.]+x the iterations, [\d.]+x the speed",
    ]
    assert len(summary) == len(patterns)
    for line, pattern in zip(summary, patterns, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    printed = captured.out.splitlines()
    assert all(line in printed for line in summary)  # the file holds what the demo printed
