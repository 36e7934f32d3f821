"""Every ```python block of README.md runs as a script from the repository root and exits with 0.

The README promises that each block is a complete, copy-paste-runnable script (imports included,
tiny step counts); this test holds it to that: each block is written to its own file and run with
this interpreter (the venv's) in a subprocess, one torch thread, with a timeout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
TIMEOUT_S = 300  # one block takes 10-20 s on 2 idle cores
MIN_BLOCKS = 4  # the README's Python section has at least this many; fewer means blocks were lost

# A fence line "```python" (optionally indented), the block, and the closing fence "```".
BLOCK = re.compile(r"^[ \t]*```python[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, code) of every ```python block of a Markdown text."""
    return [(text.count("\n", 0, match.start()) + 1, match.group(1)) for match in BLOCK.finditer(text)]


def block_id(index: int, line: int, code: str) -> str:
    first = next((row.strip() for row in code.splitlines() if row.strip()), "")
    first = "".join(char if char.isascii() else "?" for char in first[:60])  # pytest escapes the rest
    return f"{index}-L{line}-{first}"


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_readme_has_python_examples():
    assert len(BLOCKS) >= MIN_BLOCKS, f"README.md has {len(BLOCKS)} python blocks, expected >= {MIN_BLOCKS}"


def test_block_extraction():
    text = "intro\n```python\nprint(1)\n```\n\n```bash\nls\n```\n  ```python\nx = 2\nprint(x)\n  ```\n"
    assert python_blocks(text) == [(2, "print(1)\n"), (9, "x = 2\nprint(x)\n")]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("line", "code"),
    [pytest.param(line, code, id=block_id(index, line, code)) for index, (line, code) in enumerate(BLOCKS)],
)
def test_readme_block_runs(line: int, code: str, tmp_path: Path):
    script = tmp_path / f"readme_block_L{line}.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(
            f"README.md block at line {line} did not finish in {TIMEOUT_S} s\n"
            f"--- stdout ---\n{error.stdout}\n--- stderr ---\n{error.stderr}"
        )
    if result.returncode != 0:
        pytest.fail(
            f"README.md block at line {line} exited with {result.returncode}\n--- code ---\n{code}"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
