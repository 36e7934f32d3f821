"""Is a trained DEQ layer a contraction? (issue #13: a run whose solves stopped converging)

A DEQ's fixed point is well defined, and found by the solver, when the layer z -> f(z, x) contracts:
the spectral radius rho of its Jacobian J_f at the fixed point is below 1. For each checkpoint
(EMA weights) and a few frames of its run's validation split, this script reports

- the relative residual |f(z) - z| / |f(z)| of plain iteration z <- f(z) from zero after 10, 30
  and 100 steps (no Anderson mixing: the iteration's own rate, ~rho^k),
- a power-iteration estimate of rho at the last iterate (60 steps of v <- J_f^T v / |J_f^T v|),
- the range of the blocks' LayerScale factors and, with model.embedding_gains, of the branch gains
  over the frames' atoms (the factors that scale the branches, and with them rho).

    python benchmarks/layer_contraction.py --checkpoint runs/NAME/checkpoints/best.pt [...] \
        --results benchmarks/RESULTS.md

One torch thread; float64 (the checkpoint's weights cast) so residuals are the layer's, not round-off.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

RESIDUAL_STEPS = (10, 30, 100)
POWER_STEPS = 60


def plain_iteration(
    layer, inputs: dict[str, torch.Tensor], steps: int
) -> tuple[torch.Tensor, dict[int, float]]:
    """z after `steps` plain iterations from zero, and the relative residual after each of RESIDUAL_STEPS."""
    z = torch.zeros_like(inputs["injection"])
    residuals = {}
    with torch.no_grad():
        for k in range(1, steps + 1):
            fz = layer(z, inputs)
            if k in RESIDUAL_STEPS:
                residuals[k] = float((fz - z).norm() / fz.norm().clamp_min(1e-300))
            z = fz
    return z, residuals


def spectral_radius_estimate(layer, inputs: dict[str, torch.Tensor], z: torch.Tensor, steps: int) -> float:
    """|J_f^T v| after `steps` normalized power iterations v <- J_f^T v at z [N, D] (VJPs)."""
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        fz = layer(z, inputs)
        v = torch.randn(z.shape, dtype=z.dtype, generator=torch.Generator().manual_seed(0))
        v = v / v.norm()
        norm = 0.0
        for _ in range(steps):
            (jv,) = torch.autograd.grad(fz, z, v, retain_graph=True)
            norm = float(jv.norm())
            v = jv / max(norm, 1e-300)
    return norm


def factor_ranges(model, inputs: dict[str, torch.Tensor]) -> tuple[str, str]:
    """('min..max' of the LayerScale factors, 'min..max' of the branch gains or '-') over all blocks."""
    scales, gains = [], []
    for block in model.core.solver.func.blocks:
        scales += [block.attention_scale.scale.detach(), block.feed_forward_scale.scale.detach()]
        if block.gains is not None:
            gains += [g.detach() for g in block.gains(inputs["injection"])]
    scale = torch.cat(scales)
    text = f"{float(scale.min()):.2f}..{float(scale.max()):.2f}"
    if not gains:
        return text, "-"
    gain = torch.cat([g.reshape(-1) for g in gains])
    return text, f"{float(gain.min()):.1f}..{float(gain.max()):.1f}"


def measure(path: str, frames_per_run: int) -> list[str]:
    """Table rows (one per frame) of checkpoint `path`."""
    from deqff.data.collate import collate
    from deqff.data.formats import read
    from deqff.models.species import SpeciesMap
    from deqff.train.checkpoint import load_checkpoint
    from deqff.train.inputs import batch_to_model_inputs

    model, checkpoint = load_checkpoint(path)
    model = model.to(torch.float64).eval()
    if model.config.model_type != "deq":
        raise SystemExit(f"{path}: an explicit model has no fixed point to check")
    frames = read(checkpoint["run_config"]["data"]["path"])
    val = np.asarray(checkpoint["splits"]["val"])
    picks = val[np.linspace(0, len(val) - 1, frames_per_run).astype(int)]
    species = SpeciesMap(list(model.config.elements))
    layer = model.core.solver.func
    rows = []
    for index in picks:
        batch = collate([frames[int(index)]], model.config.cutoff, torch.float64)
        inputs = batch_to_model_inputs(batch, species)
        layer_inputs = model.layer_inputs(
            inputs.positions, inputs.species, inputs.edge_index, inputs.shift_vectors
        )
        z, residuals = plain_iteration(layer, layer_inputs, max(RESIDUAL_STEPS))
        rho = spectral_radius_estimate(layer, layer_inputs, z, POWER_STEPS)
        scales, gains = factor_ranges(model, layer_inputs)
        cells = [path, str(int(index))] + [f"{residuals[k]:.1e}" for k in RESIDUAL_STEPS]
        rows.append("| " + " | ".join([*cells, f"{rho:.3f}", scales, gains]) + " |")
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", nargs="+", required=True, help="DEQ training checkpoints")
    parser.add_argument("--frames", type=int, default=3, help="validation frames per checkpoint")
    parser.add_argument("--results", type=Path, default=None, help="write the section to this RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from results_file import machine_line, without_options, write_section

    header = [
        "| checkpoint | val frame | "
        + " | ".join(f"residual after {k}" for k in RESIDUAL_STEPS)
        + " | spectral radius (est.) | LayerScale | branch gains |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [row for path in args.checkpoint for row in measure(path, args.frames)]
    arguments = without_options(sys.argv[1:] if argv is None else argv, ("--results",))
    lines = [
        f"Command: `python benchmarks/layer_contraction.py {shlex.join(arguments)}`  ",
        machine_line(),
        "",
        "Plain iteration z <- f(z) from zero (no Anderson mixing), float64, EMA weights; the spectral radius "
        f"of J_f at the 100th iterate estimated by {POWER_STEPS} power iterations of its transpose (VJPs). "
        "A layer with an estimate near 1 has no reliable fixed point: its solves stop converging and its "
        "errors are those of an iterate.",
        "",
        *header,
        *rows,
    ]
    print("\n".join(lines))
    if args.results is not None:
        title = "Is the trained DEQ layer a contraction? (issue #13)"
        write_section(args.results, "layer_contraction", title, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
