"""benchmarks/layer_contraction.py tells a contracting DEQ layer from one that is not."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from deqff.export.testing import tiny_model, write_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def checkpoint_with_split(path: Path, model, dataset: Path) -> Path:
    """A tiny training checkpoint with the run config's dataset and a validation split (what the
    script reads)."""
    return write_checkpoint(
        path, model, run_config={"data": {"path": str(dataset)}}, splits={"val": list(range(12))}
    )


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_contraction_estimate_separates_small_and_large_branches(tmp_path: Path, dataset: Path) -> None:
    from layer_contraction import measure

    model = tiny_model(force_mode="conservative")
    contracting = measure(str(checkpoint_with_split(tmp_path / "small.ckpt", model, dataset)), 2)
    with torch.no_grad():  # branches 40x larger: the layer no longer contracts
        for block in model.core.solver.func.blocks:
            block.attention_scale.scale.mul_(40.0)
            block.feed_forward_scale.scale.mul_(40.0)
    expanding = measure(str(checkpoint_with_split(tmp_path / "large.ckpt", model, dataset)), 2)
    for row in contracting:
        residual_100, rho = float(cells(row)[4]), float(cells(row)[5])
        assert residual_100 < 1e-10 and rho < 0.9
    for row in expanding:
        residual_100, rho = float(cells(row)[4]), float(cells(row)[5])
        assert residual_100 > 1e-2 and rho > 0.8  # no fixed point reached: rho is that of an iterate
