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

The host takes the static numbers of the solve (feature_dim D, stages per application of f, implicit,
the inference and adjoint solver settings, warm starts, predictor_order) from the model's metadata
(deqff.export.metadata.host_settings; C++: model.cpp), read once when it loads the file.

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

Conservative forces of a DEQ (forces = -dE/dx through the fixed point, E read out from s = f(z*) as in
`deqff.export.runner`) add three differentiable pieces, each a vector-Jacobian product by torch
autograd, so the host can solve the adjoint across ranks as it solves the fixed point:

* `energy_grad(s [n_local, D], species [n_local])` -> (atom energies [n_local] eV, v = dE/ds
  [n_local, D]): the right-hand side of the adjoint equation g = v + J^T g;
* `iterate_vjp(h, injection, edge features, n_local, stage, cotangent [n_local, D])` -> (dh
  [n_all, D], dinjection [n_all, D]; zeros unless stage 0): the transpose of one stage at its input h
  (ghost rows included). The host sums ghost rows into their owners (reverse communication) between
  stages; over all stages that gives J^T g. `stage_graph(h, injection, edge features, n_local,
  stage)` -> (x, u, out) records the stage once with its autograd graph, so a host that transposes
  it at one point many times (every adjoint iteration) only runs the backward pass each time;
* `position_grad(positions, species, edges, n_local, stage inputs [K * S] of [n_all, D], injection
  [n_all, D], cotangents [K * S] of [n_local, D], injection cotangent [n_local, D])` -> (prior atom
  energies [n_local] eV, dL/dpositions [n_all, 3] eV/Å) of L = sum_k <c_k, stage (k mod S) at input
  k> + <r, injection of the local atoms> + prior (half of each pair from the full list), where c_k
  are the stage cotangents (K = 1 for conservative forces: those of the converged adjoint) and r the
  injection cotangents the other ranks sent for the local atoms. Its gradient on ghost positions goes
  to their owners with the forces (LAMMPS `newton_pair on`), so the fdotr virial over local + ghost
  atoms is exact.

Conservative DEQs take that gradient from graphs recorded once per geometry (files that have both
calls; older files use `position_grad`): `embed_graph(positions, species, edges, n_local)` -> (x, own,
edge features) is `embed` with graphs to a positions leaf x; the host records the stages of s = f(z*)
with `stage_graph` on those features (so their graphs reach x), takes the adjoint's transposes from them
and passes their outputs to `position_grad_graphs(x, species, edges, n_local, outs [S], cotangents [S],
own, injection cotangent [n_local, D])`, whose injection cotangent also holds the local rows of the
stages' own transposes (the recorded stages took the injection as a leaf). That saves the embedding and
one application of f with graph per step.

Phantom forces (format >= 4) use the same pieces: from z_0 = z* the host takes K = phantom_steps
damped steps z_{k+1} = (1 - tau) z_k + tau f(z_k) (metadata solver "phantom"), reads the energy out of
z_K (`energy_grad`), carries its gradient back through the steps (`iterate_vjp` at each step's stage
inputs, reverse communication as for the adjoint; the cotangent of step k's f is tau times that of
z_{k+1}) and passes all K * S stage inputs and cotangents to `position_grad`.

(No `from __future__ import annotations` here: TorchScript must see real annotations.)
"""

import torch
from torch import Tensor, nn

from deqff.models.force_field import EquivariantForceField
from deqff.models.layer import inject


def check_host_solver(model: EquivariantForceField) -> None:
    """Raise ValueError unless a host can run the model's inference solver (Anderson or fixed-point
    iteration: what the LAMMPS loop implements). The settings themselves travel in the metadata
    (deqff.export.metadata.host_settings), not through a call of the model."""
    if model.config.model_type == "deq" and model.config.solver_inference.method == "broyden":
        raise ValueError(
            "deqff: the model's inference solver is Broyden, which exported models do not run (the "
            "LAMMPS host-driven solve implements Anderson and fixed-point iteration only); export with "
            "`deqff export --solver anderson` (or ExportOptions(solver='anderson') for the ASE calculator "
            "and PythonForce): the fixed point, and so the energy and forces, stay the same"
        )


class GraphStep(nn.Module):
    """Host-driven pieces of a deqff model (see the module docstring). Shares the model's modules."""

    def __init__(self, model: EquivariantForceField, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.direct: bool = model.force_mode == "direct"
        self.blocks_per_layer: int = model.config.blocks_per_layer
        if model.config.model_type == "deq":
            self.layers = nn.ModuleList([model.core.solver.func])
        else:
            self.layers = nn.ModuleList(list(model.core.layers))
        # Stage k's per-edge terms are features[term_start[k] : term_start[k] + term_count[k]].
        self.term_start: list[int] = []
        self.term_count: list[int] = []
        start = 3
        for layer in self.layers:
            for block in layer.blocks:
                self.term_start.append(start)
                self.term_count.append(block.num_edge_terms)
                start += block.num_edge_terms
        self.encoded: bool = model.encoder is not None
        self.register_buffer("like", torch.zeros(0, dtype=dtype))

    def injection(self, species: Tensor, features: list[Tensor]) -> Tensor:
        """The model's injection [n_all, D] from `edge_inputs` features; an error for a model with an
        encoder, whose injection of an atom needs its neighbors' embeddings (ghosts' included), which the
        host does not communicate."""
        if self.encoded:
            raise RuntimeError(
                "deqff: this model has an encoder (model.encoder_layers > 0): an atom's injection depends "
                "on its neighbors' embeddings, which the host-driven solve (LAMMPS) does not exchange "
                "between atoms yet. Run it in OpenMM, ASE or Python (deqff simulate), or use a model "
                "without an encoder"
            )
        return self.model.embed(species, features[0], features[1], features[2])

    def edge_inputs(self, positions: Tensor, edges: Tensor) -> list[Tensor]:
        """[edge_index (deqff: sender, receiver) [2, E], edge_sh [E, S], edge_radial [E, K], then the
        per-edge terms of every stage (block) in stage order, `term_count[k]` tensors for stage k] from
        positions [n_all, 3] (model dtype) and LAMMPS edges [2, E] (local i, neighbor j). Computed once
        per geometry."""
        edge_index = torch.stack([edges[1], edges[0]])
        shifts = torch.zeros((edges.shape[1], 3), dtype=positions.dtype, device=positions.device)
        edge_sh, edge_radial = self.model.edge_features(positions, edge_index, shifts)
        features = [edge_index, edge_sh, edge_radial]
        for layer in self.layers:
            for block in layer.blocks:
                features.extend(block.edge_terms(edge_radial, edge_sh))
        return features

    def embed(
        self, positions: Tensor, species: Tensor, edges: Tensor, n_local: int
    ) -> tuple[Tensor, list[Tensor]]:
        with torch.no_grad():
            x = positions.to(self.like.dtype)
            features = self.edge_inputs(x, edges)
            injection = self.injection(species, features)
            out = injection[:n_local].to(torch.float64)
        return out, features

    def stage_output(
        self, h: Tensor, injection: Tensor, features: list[Tensor], stage: int, n_local: int
    ) -> Tensor:
        """Stage `stage` of f for the local atoms: h, injection [n_all, D] (model dtype) -> [n_local, D] (the
        ghosts' rows, whose neighbors are not all present, are not computed)."""
        if stage < 0 or stage >= len(self.layers) * self.blocks_per_layer:
            raise ValueError("deqff: stage " + str(stage) + " out of range")
        layer_index = stage // self.blocks_per_layer
        block_index = stage % self.blocks_per_layer
        out = h[:n_local]
        for i, layer in enumerate(self.layers):
            if i == layer_index:
                for k, block in enumerate(layer.blocks):
                    if k == block_index:
                        x = inject(h, injection) if k == 0 else h
                        start = self.term_start[stage]
                        terms = features[start : start + self.term_count[stage]]
                        out = block(x, features[0], features[1], terms, injection, n_local)
        return out

    def iterate(
        self, h: Tensor, injection: Tensor, features: list[Tensor], n_local: int, stage: int
    ) -> Tensor:
        with torch.no_grad():
            out = self.stage_output(
                h.to(self.like.dtype), injection.to(self.like.dtype), features, stage, n_local
            )
        return out.to(torch.float64)

    def leaf(self, t: Tensor) -> Tensor:
        """A copy of t in the model dtype that requires grad: an autograd leaf made without
        `.detach()`, which torch.jit.freeze drops."""
        with torch.no_grad():
            x = t.to(self.like.dtype).clone()
        x.requires_grad_(True)
        return x

    def energy_grad(self, s: Tensor, species: Tensor) -> tuple[Tensor, Tensor]:
        enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)
        x = self.leaf(s)
        atom_energy = self.model.atom_energies(x, species)
        grad = torch.autograd.grad([atom_energy.sum()], [x], allow_unused=True)[0]
        torch.set_grad_enabled(False)
        v = torch.zeros_like(x) if grad is None else grad
        atom_energy = atom_energy.clone()
        torch.set_grad_enabled(enabled)
        return atom_energy.to(torch.float64), v.to(torch.float64)

    def stage_graph(
        self, h: Tensor, injection: Tensor, features: list[Tensor], n_local: int, stage: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(x, u, out): leaves x = h and u = injection [n_all, D] in the model dtype, requiring grad, and
        out = stage `stage` at (x, u), local rows [n_local, D], with its autograd graph (recorded
        whatever the caller's grad mode, which is restored). A host that takes many transposes at one
        point (the adjoint solve: every iteration at the same fixed point) keeps it and calls
        autograd.grad(out, [x, u], cotangent, retain_graph) per iteration instead of `iterate_vjp`,
        which runs the stage forward again each time."""
        enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)
        x = self.leaf(h)
        u = self.leaf(injection)
        out = self.stage_output(x, u, features, stage, n_local)
        torch.set_grad_enabled(enabled)
        return x, u, out

    def iterate_vjp(
        self,
        h: Tensor,
        injection: Tensor,
        features: list[Tensor],
        n_local: int,
        stage: int,
        cotangent: Tensor,
    ) -> tuple[Tensor, Tensor]:
        x, u, out = self.stage_graph(h, injection, features, n_local, stage)
        grad_out: list[Tensor | None] = [cotangent.to(out.dtype)]
        grads = torch.autograd.grad([out], [x, u], grad_out, allow_unused=True)
        dh = grads[0]
        du = grads[1]
        dh_out = torch.zeros_like(h) if dh is None else dh.to(torch.float64)
        du_out = torch.zeros_like(h) if du is None else du.to(torch.float64)
        return dh_out, du_out

    def gradient_with_prior(
        self, total: Tensor, x: Tensor, species: Tensor, edges: Tensor, n_local: int
    ) -> tuple[Tensor, Tensor]:
        """(prior atom energies [n_local] eV, d(total + prior)/dx [n_all, 3]), both float64 without
        graph, for a scalar `total` with a graph to the positions leaf x; the prior is half of each pair
        energy of the (full) edge list. Called with grad enabled; returns with it disabled."""
        prior_energy = torch.zeros(n_local, dtype=x.dtype, device=x.device)
        repulsion = self.model.repulsion
        if repulsion is not None:
            lengths = torch.linalg.norm(x[edges[1]] - x[edges[0]], dim=-1)
            pair = repulsion.pair_energy(lengths, species[edges[0]], species[edges[1]])
            total = total + 0.5 * pair.sum()
            prior_energy = prior_energy.index_add(0, edges[0], 0.5 * pair)
        grad = torch.autograd.grad([total], [x], allow_unused=True)[0]
        torch.set_grad_enabled(False)
        grad_out = torch.zeros_like(x) if grad is None else grad
        return prior_energy.clone().to(torch.float64), grad_out.to(torch.float64)

    def embed_graph(
        self, positions: Tensor, species: Tensor, edges: Tensor, n_local: int
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """`embed` with autograd graphs to the positions: (x, own, features) with the leaf x = positions
        [n_all, 3] (model dtype, requiring grad), the local injection own [n_local, D] and the edge
        features (what `iterate` and `stage_graph` take), both with graphs to x. Stages recorded by
        `stage_graph` on these features reach x, so `position_grad_graphs` differentiates them without
        evaluating the embedding and the stages again (recorded whatever the caller's grad mode)."""
        enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)
        x = self.leaf(positions)
        features = self.edge_inputs(x, edges)
        own = self.injection(species, features)[:n_local]
        torch.set_grad_enabled(enabled)
        return x, own, features

    def position_grad_graphs(
        self,
        x: Tensor,
        species: Tensor,
        edges: Tensor,
        n_local: int,
        outs: list[Tensor],
        cotangents: list[Tensor],
        own: Tensor,
        injection_cotangent: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """`position_grad` from recorded graphs: x and own from `embed_graph`, outs [S] the outputs of
        `stage_graph` at the stage inputs of s = f(z*) on its features, cotangents [S] of [n_local, D]
        their cotangents, injection_cotangent [n_local, D] that of the local injection: the stages' own
        transposes' injection rows of the local atoms plus what the other ranks sent (the recorded stages
        took the injection as a leaf, so its path to x is through `own` here). Returns (prior atom
        energies [n_local] eV, dL/dx [n_all, 3]) as `position_grad` does; frees the graphs."""
        enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)
        total = (own * injection_cotangent.to(own.dtype)).sum()
        for k in range(len(outs)):
            total = total + (outs[k] * cotangents[k].to(outs[k].dtype)).sum()
        prior, grad = self.gradient_with_prior(total, x, species, edges, n_local)
        torch.set_grad_enabled(enabled)
        return prior, grad

    def position_grad(
        self,
        positions: Tensor,
        species: Tensor,
        edges: Tensor,
        n_local: int,
        stage_inputs: list[Tensor],
        injection: Tensor,
        cotangents: list[Tensor],
        injection_cotangent: Tensor,
    ) -> tuple[Tensor, Tensor]:
        enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)
        x = self.leaf(positions)
        features = self.edge_inputs(x, edges)
        own = self.injection(species, features)[:n_local]
        u = torch.cat([own, injection[n_local:].to(own.dtype)], dim=0)
        total = (own * injection_cotangent.to(own.dtype)).sum()
        stages = len(self.layers) * self.blocks_per_layer
        for k in range(len(stage_inputs)):
            out = self.stage_output(stage_inputs[k].to(own.dtype), u, features, k % stages, n_local)
            total = total + (out * cotangents[k].to(out.dtype)).sum()
        prior, grad = self.gradient_with_prior(total, x, species, edges, n_local)
        torch.set_grad_enabled(enabled)
        return prior, grad

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
