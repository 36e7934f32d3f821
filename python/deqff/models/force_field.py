"""Equivariant force fields: embedding -> core (DEQ fixed point or explicit stack) -> heads.

Both model types share every piece but the core, so a DEQ and its explicit twin differ only in how
the same layer is applied. Tensor-level API (Å, eV): engines and the trainer build the graph.
"""

import dataclasses
from typing import NamedTuple

import torch
from e3nn import o3
from torch import Tensor

from deqff.data.elements import atomic_number
from deqff.models.config import ModelConfig
from deqff.models.cores import ExplicitCore, ImplicitCore, make_layer
from deqff.models.features import EdgeFeatures
from deqff.models.repulsion import ZBLRepulsion, fallback_radii
from deqff.models.virial import virial_from_gradients
from deqff.nn.embedding import ChannelwiseEdgeEmbedding, EdgeDegreeEmbedding, SpeciesEmbedding
from deqff.nn.heads import AtomicEnergyHead, DirectForceHead, EnergyCorrectionHead
from deqff.nn.irreps_tools import scalar_dim
from deqff.nn.scatter import scatter_sum


class ForceFieldOutput(NamedTuple):
    """energy [B] eV; atom_energy [N] eV; forces [N, 3] eV/Å; z [N, D] final state (no grad);
    iterations of the solve (0 for explicit); residual [B] relative; converged [B];
    states: intermediate states with grad for the fixed-point correction loss (training);
    adjoint [N, D]: the adjoint g of a conservative DEQ's energy, g = g J + dE/dz (no grad; empty
    for other models and modes), a warm start for the next solve of the same system (`g0`);
    virial [B, 3, 3] eV: W = -dE/d(strain) (`deqff.models.virial`) when asked for, else [0, 3, 3]."""

    energy: Tensor
    atom_energy: Tensor
    forces: Tensor
    z: Tensor
    iterations: int
    residual: Tensor
    converged: Tensor
    states: list[Tensor]
    adjoint: Tensor
    virial: Tensor


class EquivariantForceField(torch.nn.Module):
    """The deqff model. See `ModelConfig` for the settings."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        irreps_node = o3.Irreps(config.irreps_node)
        if scalar_dim(irreps_node) == 0:
            raise ValueError(f"irreps_node {irreps_node} must start with scalars (0e)")
        self.feature_dim = irreps_node.dim
        self.num_scalars = scalar_dim(irreps_node)
        self.force_mode = config.force_mode
        num_species = len(config.elements)
        self.edge_features = EdgeFeatures(config.lmax_sh, config.cutoff, config.num_basis)
        irreps_scalars = o3.Irreps(f"{self.num_scalars}x0e")
        self.species_embedding = SpeciesEmbedding(num_species, self.num_scalars)
        embedding_args = (
            irreps_scalars,
            self.edge_features.irreps_sh,
            irreps_node,
            config.num_basis,
            config.radial_hidden,
            config.avg_num_neighbors,
            config.radial_layers,
        )
        self.edge_degree: EdgeDegreeEmbedding | ChannelwiseEdgeEmbedding = (
            ChannelwiseEdgeEmbedding(*embedding_args, rank=num_species)
            if config.edge_embedding == "channelwise"
            else EdgeDegreeEmbedding(*embedding_args)
        )
        # Explicit layers between the embedding and the implicit layer (config.encoder_layers).
        self.encoder: ExplicitCore | None = None
        if config.encoder_layers > 0:
            encoder_config = dataclasses.replace(
                config, radial_hidden=config.encoder_radial_hidden or config.radial_hidden
            )
            self.encoder = ExplicitCore(
                torch.nn.ModuleList([make_layer(encoder_config) for _ in range(config.encoder_layers)])
            )
        if config.model_type == "deq":
            self.core = ImplicitCore(make_layer(config), config)
        else:
            self.core = ExplicitCore(torch.nn.ModuleList([make_layer(config) for _ in range(config.depth)]))
        self.energy_head = AtomicEnergyHead(irreps_node, num_species, config.radial_hidden)
        self.energy_correction: EnergyCorrectionHead | None = None
        if config.energy_readout == "joint+detached":
            self.energy_correction = EnergyCorrectionHead(irreps_node, num_species, config.radial_hidden)
        self.force_head = DirectForceHead(irreps_node, num_species)
        # Conservative DEQs trained by IFT get exact second-order gradients (deqff.deq.second_order).
        self.exact_force_training: bool = (
            config.model_type == "deq"
            and config.force_mode == "conservative"
            and config.grad_mode == "ift"
            and config.force_training == "exact"
        )
        # Short-range prior (config.repulsion); its r_outer table starts at the fallback radii and is
        # fitted on the training data (deqff.train.repulsion).
        self.repulsion: ZBLRepulsion | None = None
        if config.repulsion == "zbl":
            numbers = [atomic_number(symbol) for symbol in config.elements]
            self.repulsion = ZBLRepulsion(numbers, fallback_radii(numbers, config.cutoff), config.cutoff)

    def embed(self, species: Tensor, edge_index: Tensor, edge_sh: Tensor, edge_radial: Tensor) -> Tensor:
        """Input embedding x [N, D]: species scalars plus the edge-degree embedding (all orders), then the
        encoder's layers when the model has them (config.encoder_layers): the core's injection."""
        scalars = self.species_embedding(species)
        x = self.edge_degree(scalars, edge_index, edge_sh, edge_radial)
        padding = torch.zeros(x.shape[0], self.feature_dim - self.num_scalars, dtype=x.dtype, device=x.device)
        x = x + torch.cat([scalars.to(x.dtype), padding], dim=-1)
        encoder = self.encoder
        if encoder is None:
            return x
        inputs = {"injection": x, "edge_index": edge_index, "edge_sh": edge_sh, "edge_radial": edge_radial}
        return encoder.stack(inputs)

    def layer_inputs(
        self, positions: Tensor, species: Tensor, edge_index: Tensor, shift_vectors: Tensor
    ) -> dict[str, Tensor]:
        """The inputs of the layer f(z, inputs): injection [N, D], edge_index, edge_sh, edge_radial,
        and the core's per-edge terms (computed once here, reused by every application of f)."""
        edge_sh, edge_radial = self.edge_features(positions, edge_index, shift_vectors)
        inputs = {
            "injection": self.embed(species, edge_index, edge_sh, edge_radial),
            "edge_index": edge_index,
            "edge_sh": edge_sh,
            "edge_radial": edge_radial,
        }
        return self.core.prepare(inputs)

    def readout(self, z: Tensor, species: Tensor, batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
        """(energy [B], atom_energy [N]) in eV from a state z [N, D]."""
        atom_energy = self.atom_energies(z, species)
        return scatter_sum(atom_energy, batch, num_graphs), atom_energy

    def atom_energies(self, z: Tensor, species: Tensor) -> Tensor:
        """Per-atom energies [N] eV from a state z [N, D]: the joint head, plus the correction head
        when the config's energy_readout is "joint+detached" (fed z detached in training mode only)."""
        atom_energy = self.energy_head(z, species)
        correction = self.energy_correction
        if correction is not None:
            atom_energy = atom_energy + correction(z.detach() if self.training else z, species)
        return atom_energy

    def prior_energy(
        self, positions: Tensor, species: Tensor, edge_index: Tensor, shift_vectors: Tensor, forces: bool
    ) -> tuple[Tensor, Tensor]:
        """The short-range prior (config.repulsion) on a graph: (per-atom energies [N] eV, forces [N, 3]
        eV/Å = -dE_prior/dx by autograd on the prior alone when `forces`, else [0, 3]). Without
        `forces` the energies keep a graph to `positions` (when they require grad), to be
        differentiated with the rest of the energy; with `forces` they carry none. Zeros without a prior."""
        repulsion = self.repulsion
        if repulsion is None:
            zeros = torch.zeros(positions.shape[0], dtype=positions.dtype, device=positions.device)
            return zeros, torch.zeros_like(positions) if forces else positions[:0]
        if not forces:
            vectors = positions[edge_index[0]] - positions[edge_index[1]] + shift_vectors
            lengths = torch.linalg.norm(vectors, dim=-1)
            return repulsion.atom_energies(lengths, species, edge_index), positions[:0]
        enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)  # direct forces are also wanted under no_grad (inference)
        x = positions.clone().requires_grad_(True)
        vectors = x[edge_index[0]] - x[edge_index[1]] + shift_vectors
        atom_energy = repulsion.atom_energies(torch.linalg.norm(vectors, dim=-1), species, edge_index)
        grad = torch.autograd.grad([atom_energy.sum()], [x], allow_unused=True)[0]
        # A copy without the consumed graph (not .detach(), which freezing drops; no `with` block, which
        # TorchScript cannot compile after an early return).
        torch.set_grad_enabled(False)
        atom_energy = atom_energy.clone()
        torch.set_grad_enabled(enabled)
        prior_forces = -grad if grad is not None else torch.zeros_like(positions)
        return atom_energy, prior_forces

    def add_prior(
        self,
        energy: Tensor,
        atom_energy: Tensor,
        positions: Tensor,
        species: Tensor,
        edge_index: Tensor,
        shift_vectors: Tensor,
        batch: Tensor,
        num_graphs: int,
        forces: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(energy [B], atom_energy [N], prior forces) with the short-range prior's energies added
        (`prior_energy`; the prior forces are [N, 3] when `forces`, else [0, 3]). Unchanged without one."""
        if self.repulsion is None:
            return energy, atom_energy, positions[:0]
        prior_atoms, prior_forces = self.prior_energy(positions, species, edge_index, shift_vectors, forces)
        energy = energy + scatter_sum(prior_atoms, batch, num_graphs)
        return energy, atom_energy + prior_atoms, prior_forces

    def forward(
        self,
        positions: Tensor,
        species: Tensor,
        edge_index: Tensor,
        shift_vectors: Tensor,
        batch: Tensor,
        num_graphs: int,
        z0: Tensor | None = None,
        g0: Tensor | None = None,
        virial: bool = False,
    ) -> ForceFieldOutput:
        """positions [N, 3] Å; species [N]; edge_index [2, E] (sender, receiver); shift_vectors
        [E, 3] Å (periodic image offsets, zeros for molecules); batch [N]; z0 [N, D] warm start of
        the fixed point, g0 [N, D] of the adjoint (conservative DEQs), e.g. a previous call's
        output.z and output.adjoint for the same atoms; virial: also W = -dE/d(strain) (models whose
        forces are energy gradients)."""
        return self.evaluate(
            positions, species, edge_index, shift_vectors, batch, num_graphs, z0, g0, virial
        )[0]

    def evaluate(
        self,
        positions: Tensor,
        species: Tensor,
        edge_index: Tensor,
        shift_vectors: Tensor,
        batch: Tensor,
        num_graphs: int,
        z0: Tensor | None,
        g0: Tensor | None,
        virial: bool,
    ) -> tuple[ForceFieldOutput, dict[str, Tensor]]:
        """(`forward`'s output, the layer inputs the core ran on: `layer_inputs` at these positions with a
        graph to the parameters), for a regularizer of the layer at the same geometry (the Jacobian penalty
        of training) that would otherwise build them again; arguments as `forward`'s."""
        needs_position_grad = self.force_mode != "direct"
        if virial and not needs_position_grad:
            raise ValueError(
                "a virial (stress) is the strain derivative of the energy, which a direct-force model does "
                "not differentiate: use a model with force_mode 'conservative'"
            )
        if needs_position_grad and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        if virial:
            shift_vectors = shift_vectors.detach().requires_grad_(True)
        if self.training and self.exact_force_training:
            return self._train_exact_forces(
                positions, species, edge_index, shift_vectors, batch, num_graphs, z0, g0, virial
            )
        inputs = self.layer_inputs(positions, species, edge_index, shift_vectors)
        core = self.core(inputs, batch, num_graphs, z0, needs_position_grad)
        energy, atom_energy = self.readout(core.z, species, batch, num_graphs)
        adjoint = core.z[:0]
        if needs_position_grad:
            energy, adjoint, _ = self.core.attach(energy, core, batch, num_graphs, g0)
        # Direct forces get the prior's own -dE/dx, the others its energy (differentiated below).
        energy, atom_energy, prior_forces = self.add_prior(
            energy,
            atom_energy,
            positions,
            species,
            edge_index,
            shift_vectors,
            batch,
            num_graphs,
            not needs_position_grad,
        )
        virial_out = positions.new_zeros(0, 3, 3)
        if needs_position_grad:
            forces, virial_out = self._energy_gradients(
                energy.sum(), positions, edge_index, shift_vectors, batch, num_graphs, virial, self.training
            )
        else:
            forces = self.force_head(core.z, species)
            if self.repulsion is not None:
                forces = forces + prior_forces
        output = ForceFieldOutput(
            energy,
            atom_energy,
            forces,
            core.z.detach(),
            core.iterations,
            core.residual,
            core.converged,
            core.states,
            adjoint.detach(),
            virial_out,
        )
        return output, inputs

    def _energy_gradients(
        self,
        energy: Tensor,
        positions: Tensor,
        edge_index: Tensor,
        shift_vectors: Tensor,
        batch: Tensor,
        num_graphs: int,
        virial: bool,
        create_graph: bool,
    ) -> tuple[Tensor, Tensor]:
        """(forces -dE/dx [N, 3] eV/Å, virial [B, 3, 3] eV or [0, 3, 3]) of a scalar `energy` with a graph
        to `positions` (and to `shift_vectors` when `virial`)."""
        inputs = [positions, shift_vectors] if virial else [positions]
        grads = torch.autograd.grad([energy], inputs, create_graph=create_graph, allow_unused=True)
        position_grad = grads[0]
        if position_grad is None:
            position_grad = torch.zeros_like(positions)
        if not virial:
            return -position_grad, positions.new_zeros(0, 3, 3)
        shift_grad = grads[1]
        if shift_grad is None:
            shift_grad = torch.zeros_like(shift_vectors)
        w = virial_from_gradients(
            positions, position_grad, shift_vectors, shift_grad, batch, edge_index, num_graphs
        )
        return -position_grad, w

    @torch.jit.unused
    def _train_exact_forces(
        self,
        positions: Tensor,
        species: Tensor,
        edge_index: Tensor,
        shift_vectors: Tensor,
        batch: Tensor,
        num_graphs: int,
        z0: Tensor | None,
        g0: Tensor | None,
        virial: bool,
    ) -> tuple[ForceFieldOutput, dict[str, Tensor]]:
        """Training forward of a conservative DEQ whose forces have exact parameter gradients, and the
        layer inputs its solves ran on.

        The fixed point z and adjoint g are solved on layer inputs built from detached positions
        (graph to the parameters only); forces are then -d<g, f(z, x)>/dx at fixed z and g, from a
        second evaluation of f on inputs built from `positions` [N, 3] (requires grad), and the virial
        likewise from the image shifts (which require grad when `virial`)."""
        frozen = self.layer_inputs(positions.detach(), species, edge_index, shift_vectors.detach())

        def energy_of(z: Tensor) -> Tensor:
            return self.readout(z, species, batch, num_graphs)[0]

        state = self.core.train_implicit_state(frozen, energy_of, batch, num_graphs, z0, g0)
        live = self.layer_inputs(positions, species, edge_index, shift_vectors)
        layer = self.core.solver.func
        pairing = (state.g * layer(state.z, live)).sum()
        energy, atom_energy = self.readout(state.z, species, batch, num_graphs)
        if self.repulsion is not None:  # no parameters: differentiated with the pairing, its values constants
            prior_atoms = self.prior_energy(positions, species, edge_index, shift_vectors, False)[0]
            pairing = pairing + prior_atoms.sum()
            energy = energy + scatter_sum(prior_atoms.detach(), batch, num_graphs)
            atom_energy = atom_energy + prior_atoms.detach()
        forces, virial_out = self._energy_gradients(
            pairing, positions, edge_index, shift_vectors, batch, num_graphs, virial, True
        )
        solve = state.forward
        output = ForceFieldOutput(
            energy,
            atom_energy,
            forces,
            state.z.detach(),
            solve.iterations,
            solve.rel_res,
            solve.converged,
            [],
            state.adjoint.z,
            virial_out,
        )
        return output, frozen
