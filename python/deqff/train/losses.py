"""Training losses: energy + force (+ virial) MSE, the fixed-point correction loss, Jacobian regularization.

Energies are compared per atom (eV/atom) so molecules of different sizes weigh alike; forces per
Cartesian component (eV/Å); virials (periodic frames with a stress) per atom and component (eV/atom).
All losses are means, i.e. in eV² and (eV/Å)².
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from deqff.deq import correction_loss, jacobian_reg
from deqff.models.force_field import EquivariantForceField, ForceFieldOutput
from deqff.train.inputs import ModelInputs, Targets


class LossWeights(NamedTuple):
    """Weights of the loss terms; fpc_gamma is the decay of the fixed-point correction weights."""

    energy: float = 1.0
    forces: float = 10.0
    fpc: float = 0.0
    fpc_gamma: float = 0.8
    jacobian: float = 0.0
    stress: float = 0.0


class LossTerms(NamedTuple):
    """total (with grad); the parts (detached): energy and force MSE, fixed-point correction, Jacobian,
    virial MSE per atom (zero without a stress term)."""

    total: Tensor
    energy: Tensor
    forces: Tensor
    fpc: Tensor
    jacobian: Tensor
    stress: Tensor


def energy_force_mse(energy: Tensor, forces: Tensor, targets: Targets) -> tuple[Tensor, Tensor]:
    """(MSE of energy per atom [eV²], MSE of force components [(eV/Å)²])."""
    atoms = targets.num_atoms.to(energy.dtype)
    energy_mse = torch.mean(((energy - targets.energy) / atoms) ** 2)
    force_mse = torch.mean((forces - targets.forces) ** 2)
    return energy_mse, force_mse


def virial_mse(virial: Tensor, targets: Targets) -> Tensor:
    """MSE of the virial components per atom [eV²] of B frames: virial [B, 3, 3] eV against
    targets.virial."""
    if targets.virial is None:
        raise ValueError("the batch has no stresses to compare virials with")
    atoms = targets.num_atoms.to(virial.dtype)[:, None, None]
    return torch.mean(((virial - targets.virial) / atoms) ** 2)


def wants_virial(weights: LossWeights, targets: Targets) -> bool:
    """Whether the loss has a stress term for this batch (a weight and reference stresses)."""
    return weights.stress > 0 and targets.virial is not None


def fixed_point_correction(
    model: EquivariantForceField,
    states: list[Tensor],
    inputs: ModelInputs,
    targets: Targets,
    weights: LossWeights,
) -> Tensor:
    """Σ_i gamma^(n-i) L_i over the n intermediate solver states z_i [N, D] (ascending iteration), with
    L_i = we * MSE(E_i/atom) + wf * MSE(F_i), E_i from the energy head and F_i from the direct force
    head (an auxiliary head for conservative/phantom models, whose forces are -dE/dx)."""
    if not states:
        return torch.zeros((), dtype=targets.energy.dtype, device=targets.energy.device)
    losses = []
    for z in states:
        energy, _ = model.readout(z, inputs.species, inputs.batch, inputs.num_graphs)
        forces = model.force_head(z, inputs.species)
        e_mse, f_mse = energy_force_mse(energy, forces, targets)
        losses.append(weights.energy * e_mse + weights.forces * f_mse)
    return weights.fpc_gamma * correction_loss(losses, weights.fpc_gamma)


def jacobian_penalty(model: EquivariantForceField, layer_inputs: dict[str, Tensor], z_star: Tensor) -> Tensor:
    """Hutchinson estimate of ||J_f(z*)||_F² / (N D) for the DEQ layer f at z* [N, D] (one probe), on the
    layer inputs the model's training forward solved on (`EquivariantForceField.evaluate`)."""
    return jacobian_reg(model.core.solver.func, z_star, layer_inputs, n_samples=1)


def compute_loss(
    model: EquivariantForceField,
    output: ForceFieldOutput,
    inputs: ModelInputs,
    targets: Targets,
    weights: LossWeights,
    jacobian: Tensor | None = None,
) -> LossTerms:
    """Weighted total loss of one batch. `jacobian` is the Jacobian-regularization term, if computed."""
    e_mse, f_mse = energy_force_mse(output.energy, output.forces, targets)
    total = weights.energy * e_mse + weights.forces * f_mse
    zero = torch.zeros((), dtype=total.dtype, device=total.device)
    fpc = zero
    if weights.fpc > 0:
        fpc = fixed_point_correction(model, output.states, inputs, targets, weights)
        total = total + weights.fpc * fpc
    jac = zero
    if weights.jacobian > 0 and jacobian is not None:
        jac = jacobian
        total = total + weights.jacobian * jac
    stress = zero
    if wants_virial(weights, targets):
        if output.virial.shape[0] == 0:
            raise ValueError(
                "the loss has a stress term but the model output has no virial: call it with virial=True"
            )
        stress = virial_mse(output.virial, targets)
        total = total + weights.stress * stress
    return LossTerms(total, e_mse.detach(), f_mse.detach(), fpc.detach(), jac.detach(), stress.detach())
