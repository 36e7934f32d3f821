"""The DEQ split into host-driven steps, for hosts that run the solver loop themselves (LAMMPS).

A domain-decomposed host (LAMMPS on several MPI ranks) owns *local* atoms and sees copies of nearby
atoms owned by other ranks or periodic images (*ghosts*). One fixed-point iteration z -> f(z) of the
DEQ needs the current features of the ghosts, which change every iteration, so the host drives the
solve: it evaluates the pieces below on its local atoms, refreshes the ghosts' rows by communication
between pieces, reduces residuals over ranks, and keeps the warm-start state per atom.

Edge convention of these calls (LAMMPS's): `edges` [2, E] has row 0 = a LOCAL atom i (the receiver
of messages), row 1 = its neighbor j (local or ghost), positions of ghosts are their image positions
(no shift vectors). deqff's own graphs are the other way round (row 0 sender j, row 1 receiver i);
`GraphStep.edge_inputs` is the one place that converts.

Calls (all float64 in and out; the model computes in its own dtype):

* `info()` -> feature_dim D, stages per iteration, implicit (1/0) and the inference solver settings;
* `embed(positions [n_all, 3] Å, species [n_all], edges, n_local)` -> (injection [n_local, D] of the
  local atoms, edge features [edge_index, edge_sh, edge_radial, per-stage edge terms] to pass to
  `iterate`). The host obtains the ghosts' injection rows by communication (not recomputed: they
  depend on the ghosts' own neighbors);
* `iterate(h [n_all, D], injection [n_all, D], edge features, n_local, stage)` -> [n_local, D]. One
  application of f is `stages` calls (one per equivariant block; the input injection is applied in
  the layer's first block); the host refreshes the ghost rows of the output between the calls. An
  explicit (stacked) model is one pass of depth * blocks stages from z = 0, no solve;
* `readout(z [n_local, D], species [n_local])` -> (atom energies [n_local] eV, direct forces
  [n_local, 3] eV/Å; zeros [n_local, 3] unless the force mode is "direct"). Per atom, so no ghost
  contribution and no reverse communication;
* `prior(positions [n_all, 3] Å, species [n_all], edges, n_local)` -> (atom energies [n_local] eV,
  forces [n_local, 3] eV/Å) of the short-range prior (ModelConfig.repulsion; zeros without one), to add
  to `readout`'s. `edges` must be a FULL list (every neighbor j of every local i): atom i gets half of
  each of its pair energies (the ranks' sums add up to the total) and the whole force -dE_pair/dx_i
  of each pair, so no ghost forces and no reverse communication are needed.

Conservative and phantom forces need gradients through the ghosts' features; this split does not
provide them (the LAMMPS plugin runs those models on one rank through `DeqffPotential.step_graph`).

(No `from __future__ import annotations` here: TorchScript must see real annotations.)
"""

import torch
from torch import Tensor, nn

from deqff.models.force_field import EquivariantForceField
from deqff.models.layer import inject


def solver_info(model: EquivariantForceField, fallback_max_iter: int, warm_start: bool) -> dict[str, float]:
    """The numbers a host needs to run the solve (eager; stored in the module as floats).

    feature_dim, stages (calls of `iterate` per application of f, or per pass of an explicit model),
    implicit (1: solve to a fixed point, 0: one pass), warm_start (1/0), and for implicit models the
    inference solver: tol, max_iter, fallback_max_iter, stop_rel (1: relative residual, 0: absolute),
    anderson (1: Anderson, 0: damped fixed-point iteration), m, beta, lam, damping, return_best.
    """
    config = model.config
    info = {
        "feature_dim": float(model.feature_dim),
        "stages": float(config.blocks_per_layer),
        "implicit": 1.0 if config.model_type == "deq" else 0.0,
        "warm_start": 1.0 if warm_start else 0.0,
    }
    if config.model_type != "deq":
        info["stages"] = float(config.blocks_per_layer * config.depth)
        return info
    solver = config.solver_inference
    if solver.method == "broyden":
        raise ValueError(
            "deqff: the model's inference solver is Broyden, which exported models do not run (the "
            "LAMMPS host-driven solve implements Anderson and fixed-point iteration only); export with "
            "`deqff export --solver anderson` (or ExportOptions(solver='anderson') for the ASE calculator "
            "and PythonForce): the fixed point, and so the energy and forces, stay the same"
        )
    info.update(
        {
            "tol": float(solver.tol),
            "max_iter": float(solver.max_iter),
            "fallback_max_iter": float(fallback_max_iter),
            "stop_rel": 1.0 if solver.stop_mode == "rel" else 0.0,
            "anderson": 1.0 if solver.method == "anderson" else 0.0,
            "m": float(solver.m),
            "beta": float(solver.beta),
            "lam": float(solver.lam),
            "damping": float(solver.damping),
            "return_best": 1.0 if solver.return_best else 0.0,
        }
    )
    return info


class GraphStep(nn.Module):
    """Host-driven pieces of a deqff model (see the module docstring). Shares the model's modules."""

    _info: dict[str, float]

    def __init__(self, model: EquivariantForceField, info: dict[str, float], dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.direct: bool = model.force_mode == "direct"
        self.blocks_per_layer: int = model.config.blocks_per_layer
        if model.config.model_type == "deq":
            self.layers = nn.ModuleList([model.core.solver.func])
        else:
            self.layers = nn.ModuleList(list(model.core.layers))
        self._info = dict(info)
        self.register_buffer("like", torch.zeros(0, dtype=dtype))

    def info(self) -> dict[str, float]:
        return dict(self._info)

    def edge_inputs(self, positions: Tensor, edges: Tensor) -> list[Tensor]:
        """[edge_index (deqff: sender, receiver) [2, E], edge_sh [E, S], edge_radial [E, K], then the
        per-edge terms of every stage (block) in stage order] from positions [n_all, 3] (model
        dtype) and LAMMPS edges [2, E] (local i, neighbor j). Computed once per geometry."""
        edge_index = torch.stack([edges[1], edges[0]])
        shifts = torch.zeros((edges.shape[1], 3), dtype=positions.dtype, device=positions.device)
        edge_sh, edge_radial = self.model.edge_features(positions, edge_index, shifts)
        features = [edge_index, edge_sh, edge_radial]
        for layer in self.layers:
            for block in layer.blocks:
                features.append(block.edge_terms(edge_radial, edge_sh))
        return features

    def embed(
        self, positions: Tensor, species: Tensor, edges: Tensor, n_local: int
    ) -> tuple[Tensor, list[Tensor]]:
        with torch.no_grad():
            x = positions.to(self.like.dtype)
            features = self.edge_inputs(x, edges)
            injection = self.model.embed(species, features[0], features[1], features[2])
            out = injection[:n_local].to(torch.float64)
        return out, features

    def iterate(
        self, h: Tensor, injection: Tensor, features: list[Tensor], n_local: int, stage: int
    ) -> Tensor:
        layer_index = stage // self.blocks_per_layer
        block_index = stage % self.blocks_per_layer
        out = h[:n_local]
        with torch.no_grad():
            x = h.to(self.like.dtype)
            for i, layer in enumerate(self.layers):
                if i == layer_index:
                    for k, block in enumerate(layer.blocks):
                        if k == block_index:
                            if k == 0:
                                x = inject(x, injection.to(self.like.dtype))
                            out = block(x, features[0], features[1], features[3 + stage])[:n_local]
        if stage < 0 or stage >= len(self.layers) * self.blocks_per_layer:
            raise ValueError("deqff: iterate() stage " + str(stage) + " out of range")
        return out.to(torch.float64)

    def readout(self, z: Tensor, species: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            x = z.to(self.like.dtype)
            atom_energy = self.model.atom_energies(x, species)
            if self.direct:
                forces = self.model.force_head(x, species)
            else:
                forces = torch.zeros((z.shape[0], 3), dtype=x.dtype, device=x.device)
        return atom_energy.to(torch.float64), forces.to(torch.float64)

    def prior(self, positions: Tensor, species: Tensor, edges: Tensor, n_local: int) -> tuple[Tensor, Tensor]:
        repulsion = self.model.repulsion
        if repulsion is None:
            zeros = torch.zeros((n_local, 3), dtype=torch.float64, device=positions.device)
            return zeros[:, 0], zeros
        enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)
        x = positions.to(self.like.dtype)
        # Only the local (receiver) positions are differentiated: each pair energy's derivative with
        # respect to x_i is the whole force on i from that pair (the neighbor's half included).
        local = x[:n_local].clone().requires_grad_(True)
        lengths = torch.linalg.norm(x[edges[1]] - local[edges[0]], dim=-1)
        pair = repulsion.pair_energy(lengths, species[edges[0]], species[edges[1]])
        grad = torch.autograd.grad([pair.sum()], [local], allow_unused=True)[0]
        torch.set_grad_enabled(False)  # results without graph (no `with` block after an early return)
        forces = torch.zeros_like(local) if grad is None else -grad
        atom_energy = torch.zeros(n_local, dtype=pair.dtype, device=pair.device)
        atom_energy = atom_energy.index_add(0, edges[0], 0.5 * pair)
        torch.set_grad_enabled(enabled)
        return atom_energy.to(torch.float64), forces.to(torch.float64)
