"""Exact parameter gradients of a derivative through a fixed point (training conservative DEQ forces).

A conservative DEQ's energy E(x) = R(z*) with z* = f(z*, x) has dE/dx = <g, df/dx(z*, x)>, where the
adjoint g solves g = g J + dR/dz (J = df/dz at z*). Training on forces differentiates this once more,
w.r.t. the parameters theta, and both z* and g move with theta. Holding them fixed in the double
backward (the IFT wrapper's one differentiable adjoint step) leaves a gradient whose cosine with the
exact one is about 0.3 on ethanol (benchmarks/gradient_check.py). `implicit_state` instead returns z*
and g as tensors whose values are the solutions and whose first-order gradients are exact, each by its
own implicit solve in the backward pass:

* z: a = a J + dL/dz (VJPs of f);
* g: the fixed point of G(g) = g J(z) + dR/dz(z), linear in g; its adjoint b = b dG/dg + dL/dg is
  b = J b + dL/dg (VJPs of G, i.e. Jacobian-vector products of f by double backward).

A force is then an explicit function of them, -d<g, f(z, x)>/dx at fixed z and g, whose parameter
gradient autograd computes exactly (`DEQ.attach` does both implicit backward solves).
"""

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .layer import DEQ
from .stabilizers import reset_stabilizers
from .stats import SolverResult


class ImplicitState(NamedTuple):
    """z [N, D] fixed point and g [N, D] adjoint (values of the solves, exact first-order gradients),
    energy [B] = R(z) (with graph), and the statistics of the forward and adjoint solves."""

    z: Tensor
    g: Tensor
    energy: Tensor
    forward: SolverResult
    adjoint: SolverResult


def implicit_state(
    deq: DEQ,
    z0: Tensor,
    inputs: dict[str, Tensor],
    readout: Callable[[Tensor], Tensor],
    segment: Tensor,
    num_segments: int,
    g0: Tensor | None = None,
) -> ImplicitState:
    """Solve z* = f(z*, inputs) from z0 [N, D] and g = g J + dR/dz from g0 [N, D] (default dR/dz),
    and attach both (see module doc). The backward pass's two solves start cold.

    readout: z [N, D] -> energies [B] (per segment). `inputs` should carry a graph to the parameters
    but not to the quantity a derivative will be taken w.r.t. (e.g. positions): that derivative is
    taken from a separate evaluation of f at (z, g) fixed."""
    reset_stabilizers(deq.func)
    forward = deq.solver(z0, inputs, segment, num_segments)
    z_leaf = forward.z.clone().requires_grad_(True)
    fz_leaf = deq.func(z_leaf, inputs)
    z = deq.attach(fz_leaf, z_leaf, segment, num_segments)
    energy = readout(z)
    v = torch.autograd.grad([energy.sum()], [z], create_graph=True)[0]
    adjoint = deq.adjoint.solve_graph(fz_leaf, z_leaf, v.detach(), segment, num_segments, g0)
    g_leaf = adjoint.z.clone().requires_grad_(True)
    gz = torch.autograd.grad([deq.func(z, inputs)], [z], [g_leaf], create_graph=True)[0]
    g = deq.attach(gz + v, g_leaf, segment, num_segments)
    return ImplicitState(z, g, energy, forward, adjoint)
