"""README's most visible numbers come from files a command wrote (issue #16: 3): the shipped-models table
equals the model cards (`make models` writes them), and the demo's numbers quoted in README are in the
summary `make demo` wrote (benchmarks/demo_summary.md). A re-trained model or a new demo run whose
numbers README does not follow fails here, not in a reader's hands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
TABLE_ROW = re.compile(
    r"^\| `(\w+)` \| [^|]+ \| ([\d.]+) \| ([\d.]+) \| ([\d,]+) \| `models/(\w+)\.md` \|$", re.M
)


def card_numbers(name: str) -> tuple[str, str, str]:
    """(force MAE meV/Å, energy MAE meV, parameters) as a model card states them."""
    card = (REPO_ROOT / "models" / f"{name}.md").read_text(encoding="utf-8")
    force = re.search(r"Force MAE \*\*([\d.]+) meV/Å\*\*", card)
    energy = re.search(r"Energy MAE \*\*([\d.]+) meV\*\*", card)
    parameters = re.search(r"^- ([\d,]+) parameters;", card, re.M)
    assert force and energy and parameters, f"models/{name}.md lacks its accuracy or parameter lines"
    return force.group(1), energy.group(1), parameters.group(1)


ROWS = TABLE_ROW.findall(README)


def test_the_table_lists_every_shipped_model():
    shipped = {path.stem for path in (REPO_ROOT / "models").glob("*.pt")}
    assert {row[0] for row in ROWS} == shipped


@pytest.mark.parametrize("row", ROWS, ids=[row[0] for row in ROWS])
def test_a_table_row_equals_its_card(row):
    name, force, energy, parameters, card = row
    assert card == name
    assert (force, energy, parameters) == card_numbers(name)


def numbers_in(text: str) -> list[str]:
    return re.findall(r"(?<![\w.])[-+]?\d+\.\d+", text)


def test_the_demo_numbers_quoted_in_readme_are_the_demo_summary():
    """Every decimal number of README's demo measurement sentence is one the summary prints (or that
    number rounded to the digits README shows)."""
    start = README.index("Measured with the current default model")
    quoted = README[start : README.index("NVE run.", start)]
    summary = (REPO_ROOT / "benchmarks" / "demo_summary.md").read_text(encoding="utf-8")
    printed = [float(n) for n in numbers_in(summary)]
    for number in numbers_in(quoted):
        decimals = len(number.split(".")[1])
        assert any(round(abs(p), decimals) == round(abs(float(number)), decimals) for p in printed), (
            f"README quotes {number} for the demo; benchmarks/demo_summary.md has no such number"
        )


#: Decimal numbers of README prose that are not measurements (versions).
NOT_MEASURED = {"2.9.1", "2.10"}
FENCED = re.compile(r"^[ \t]*```.*?^[ \t]*```[ \t]*$", re.M | re.S)


def test_every_number_in_readme_prose_is_in_a_written_file():
    """Each decimal number of README's prose (code blocks aside) is printed by a command's output file:
    benchmarks/RESULTS.md, a model card, the demo summary or the notes the RESULTS sections include.
    (Loose: the number may appear anywhere there. It catches a number left behind by a re-measurement.)"""
    prose = FENCED.sub("", README)
    for version in NOT_MEASURED:
        prose = prose.replace(version, "")
    files = [
        REPO_ROOT / "benchmarks" / "RESULTS.md",
        REPO_ROOT / "benchmarks" / "demo_summary.md",
        REPO_ROOT / "benchmarks" / "recipe_notes.md",
        REPO_ROOT / "benchmarks" / "architecture_notes.md",
        *sorted((REPO_ROOT / "models").glob("*.md")),
    ]
    written = [float(n) for path in files for n in numbers_in(path.read_text(encoding="utf-8"))]
    missing = []
    for number in re.findall(r"(?<![\w.\-])\d+\.\d+(?![\d.])", prose):
        decimals = len(number.split(".")[1])
        if not any(round(abs(w), decimals) == round(float(number), decimals) for w in written):
            missing.append(number)
    assert not missing, f"README quotes numbers no results file has: {missing}"
