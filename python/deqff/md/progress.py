"""Progress of long MD runs that reads well in a terminal and in a log.

    with Progress(total=1000, description="NVT MD, warm start") as progress:
        ...
        progress.update(10)

On a terminal (the stream is a TTY) this is a tqdm bar. Otherwise (CI logs, `> run.log 2>&1`,
`make demo | tee`) tqdm's carriage-return redraws would pile up on one line, so plain status lines
are written instead: one at the start, one every `interval` seconds and one at the end, e.g.

    NVT MD, warm start: 0/1000 steps
    NVT MD, warm start: 240/1000 steps (24%), 10 s, 24.0 steps/s, ~32 s left
    NVT MD, warm start: 1000/1000 steps (100%) in 41 s, 24.4 steps/s
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

#: Seconds between status lines when the output is not a terminal.
LOG_INTERVAL_S = 10.0


def is_terminal(stream: IO[str]) -> bool:
    """Whether `stream` is an interactive terminal."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


class Progress:
    """A tqdm bar on a terminal, status lines every `interval` seconds otherwise (see the module).
    `stream`: where to write (default: sys.stderr at construction, like tqdm); `leave`: keep the bar
    on the terminal when done (status lines always stay)."""

    def __init__(
        self,
        total: int,
        description: str,
        unit: str = "step",
        interval: float = LOG_INTERVAL_S,
        stream: IO[str] | None = None,
        leave: bool = True,
    ) -> None:
        self.total = total
        self.description = description
        self.unit = unit
        self.interval = interval
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self.began = time.perf_counter()
        self.last_line = self.began
        self.bar: Any = None
        if is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, desc=description, unit=unit, file=self.stream, leave=leave, dynamic_ncols=True
            )
        else:
            self._write(f"{description}: 0/{total} {unit}s")

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def update(self, n: int = 1) -> None:
        """`n` more units done."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last_line >= self.interval and self.done < self.total:
            self.last_line = now
            elapsed = now - self.began
            rate = self.done / elapsed
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            self._write(
                f"{self.description}: {self.done}/{self.total} {self.unit}s "
                f"({100 * self.done / self.total:.0f}%), {elapsed:.0f} s, {rate:.1f} {self.unit}s/s, "
                f"~{left:.0f} s left"
            )

    def close(self) -> None:
        """End the bar, or write the final status line (only when all units are done)."""
        if self.bar is not None:
            self.bar.close()
            return
        if self.done >= self.total:
            elapsed = time.perf_counter() - self.began
            self._write(
                f"{self.description}: {self.done}/{self.total} {self.unit}s (100%) in {elapsed:.0f} s, "
                f"{self.done / max(elapsed, 1e-9):.1f} {self.unit}s/s"
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def note(message: str, stream: IO[str] | None = None) -> None:
    """One status line (e.g. what a slow set-up is doing) where progress goes (stderr by default)."""
    print(message, file=sys.stderr if stream is None else stream, flush=True)
