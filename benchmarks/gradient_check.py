"""How exact are the parameter gradients a conservative DEQ trains with? (issue #13: DEQ vs explicit)

A conservative DEQ's force is F = -dE/dx through the fixed point z* = f(z*, x). Training on forces
needs d loss(F) / d theta, a second derivative through the fixed point. Modes: "ift" (exact second
order, deqff.deq.second_order), "ift-fixed" (the adjoint and z* held fixed in the double backward),
"ift-tight"/"ift-fixed-tight" (both with all solves to 1e-7), "bpttK", "phantomK". This script
compares, on real training batches, the parameter gradient of each loss term under a gradient mode
against a reference: backpropagation through `--unroll` plain iterations from zero (exact for the
unrolled map, which equals the fixed-point map once the iteration has converged; the script prints
the final residual). One torch thread.

    python benchmarks/gradient_check.py --checkpoint runs/ethanol_conservative/checkpoints/best.pt

Prints per batch and loss term: cosine similarity and relative error |g - g_ref| / |g_ref|.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def parameter_gradient(model, inputs, targets, weights) -> tuple[torch.Tensor, float]:
    """Flat d loss / d theta [P] of one batch, and the training solve's largest relative residual."""
    from deqff.train.losses import compute_loss

    model.train()
    model.zero_grad(set_to_none=True)
    output = model(*inputs)
    loss = compute_loss(model, output, inputs, targets, weights)
    loss.total.backward()
    flat = torch.cat([
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in model.parameters()
    ])  # fmt: skip
    return flat, float(output.residual.max())


def with_grad_mode(model, **changes):
    """The model's core trains with changed config fields (grad_mode, solver_train, ...)."""
    config = dataclasses.replace(model.core.config, **changes)
    model.core.config = config
    model.exact_force_training = config.grad_mode == "ift" and config.force_training == "exact"
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--weights", default="ema", choices=("ema", "model"))
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--unroll", type=int, default=100, help="plain iterations of the reference")
    parser.add_argument("--tau", type=float, default=1.0, help="damping of the reference iteration")
    parser.add_argument("--init", action="store_true", help="use freshly initialized weights")
    parser.add_argument(
        "--modes", default="ift,ift-fixed,bptt40", help="modes to compare: ift, phantomK (K steps)"
    )
    parser.add_argument("--results", type=Path, default=None, help="write the table to this RESULTS.md")
    args = parser.parse_args(argv)

    from deqff.data.collate import collate
    from deqff.data.formats import read
    from deqff.deq import SolverConfig
    from deqff.models.species import SpeciesMap
    from deqff.train.checkpoint import load_checkpoint
    from deqff.train.inputs import batch_targets, batch_to_model_inputs
    from deqff.train.losses import LossWeights

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, checkpoint = load_checkpoint(args.checkpoint, args.weights)
    if args.init:
        for module in model.modules():
            if hasattr(module, "reset_parameters") and module is not model:
                module.reset_parameters()
    config = model.core.config
    frames = read(checkpoint["run_config"]["data"]["path"])
    train = checkpoint["splits"]["train"]
    species = SpeciesMap(list(config.elements))
    dtype = next(model.parameters()).dtype
    terms = {"energy": LossWeights(1.0, 0.0), "forces": LossWeights(0.0, 1.0)}
    reference = SolverConfig(method="fixed_point", max_iter=args.unroll, tol=0.0)
    print(f"{args.checkpoint} ({'initialized' if args.init else args.weights} weights), "
          f"reference: BPTT through {args.unroll} plain steps (tau {args.tau})")  # fmt: skip
    rng = torch.Generator().manual_seed(0)
    modes = args.modes.split(",")
    table = [
        "| batch | loss term | reference residual | "
        + " | ".join(f"{m}: cos / rel. error" for m in modes)
        + " |",
        "|---|---|---|" + "---|" * len(modes),
    ]
    for b in range(args.batches):
        picks = train[torch.randperm(len(train), generator=rng)[: args.batch_size].numpy()]
        batch = collate([frames[int(i)] for i in picks], config.cutoff, dtype)
        inputs = batch_to_model_inputs(batch, species)
        targets = batch_targets(batch)
        for term, weights in terms.items():
            with_grad_mode(model, grad_mode="bptt", solver_train=reference, phantom_tau=args.tau)
            g_ref, res = parameter_gradient(model, inputs, targets, weights)
            row = [f"batch {b} {term:7s} ref residual {res:.1e}"]
            cells = [str(b), term, f"{res:.1e}"]
            for mode in modes:
                if mode.startswith("ift"):
                    # "ift": exact second order; "ift-fixed": adjoint held fixed; "-tight": solves to 1e-7
                    tight = mode.endswith("-tight")
                    training = "fixed_adjoint" if "fixed" in mode else "exact"
                    with_grad_mode(
                        model, grad_mode="ift", phantom_tau=1.0, force_training=training,
                        solver_train=config.solver_train.replace(tol=1e-7, max_iter=100) if tight
                        else config.solver_train,
                        solver_backward=config.solver_backward.replace(tol=1e-7, max_iter=100) if tight
                        else config.solver_backward,
                    )  # fmt: skip
                elif mode.startswith("bptt"):  # "bpttK": backpropagation through K plain steps from zero
                    steps = int(mode.removeprefix("bptt"))
                    with_grad_mode(
                        model,
                        grad_mode="bptt",
                        phantom_tau=1.0,
                        solver_train=reference.replace(max_iter=steps),
                    )
                else:
                    steps = int(mode.removeprefix("phantom"))
                    with_grad_mode(
                        model, grad_mode="phantom", phantom_steps=steps, solver_train=config.solver_train,
                        phantom_tau=1.0,
                    )  # fmt: skip
                g, _ = parameter_gradient(model, inputs, targets, weights)
                cos = float(torch.nn.functional.cosine_similarity(g, g_ref, dim=0))
                rel = float((g - g_ref).norm() / g_ref.norm())
                row.append(f"{mode}: cos {cos:.3f} rel {rel:.2f}")
                cells.append(f"{cos:.3f} / {rel:.2f}")
            print(" | ".join(row), flush=True)
            table.append("| " + " | ".join(cells) + " |")
    if args.results:
        from results_file import machine_line, write_section

        command = "python benchmarks/gradient_check.py " + shlex.join(
            argv if argv is not None else sys.argv[1:]
        )
        lines = [
            f"Command: `{command}`",
            "",
            machine_line(),
            "",
            f"Parameter gradient of each loss term on training batches of {args.batch_size} frames "
            f"({'initialized' if args.init else args.weights} weights of `{args.checkpoint}`), against "
            f"backpropagation through {args.unroll} plain iterations from zero: cosine similarity and "
            "|g - g_ref| / |g_ref|. ift = exact second order (model.force_training: exact), ift-fixed = "
            "the adjoint and fixed point held fixed in the double backward; -tight = every solve to 1e-7 "
            "instead of the config's training tolerances.",
            "",
            *table,
        ]
        write_section(args.results, "gradients", "Exactness of the training gradients (issue #13)", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
