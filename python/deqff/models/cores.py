"""Cores of the force field: how the shared layer is applied to the input embedding.

* `ExplicitCore`: z_{k+1} = layer_k(z_k, inputs) for k < depth, z_0 = 0 (untied copies of the layer).
* `ImplicitCore`: z* = layer(z*, inputs), solved by the deqff.deq engine from z0 (warm start) or 0.
With tied weights and a plain fixed-point solver, L iterations of the DEQ from zero are exactly the
explicit stack of L copies of its layer.
"""

from collections.abc import Callable
from typing import NamedTuple

import torch
from e3nn import o3
from torch import Tensor

from deqff.deq import DEQ, AdjointSolver, FixedPointSolver, ImplicitState, implicit_state
from deqff.models.config import ModelConfig
from deqff.models.layer import InjectedLayer
from deqff.nn.block import EquivariantBlock


class CoreOutput(NamedTuple):
    """z [N, D] state to read out (with a graph when gradients are needed); iterations of the solve;
    residual [B] (relative); converged [B]; states: fixed-point-correction states (training);
    leaf [N, D]: the detached solution z* that `z` = f(z*) was computed from, for the implicit
    gradient (`attach`); empty when unused."""

    z: Tensor
    iterations: int
    residual: Tensor
    converged: Tensor
    states: list[Tensor]
    leaf: Tensor


def make_layer(config: ModelConfig) -> InjectedLayer:
    """One layer: input injection followed by `blocks_per_layer` equivariant blocks."""
    irreps_sh = o3.Irreps.spherical_harmonics(config.lmax_sh)
    blocks = [
        EquivariantBlock(
            o3.Irreps(config.irreps_node),
            irreps_sh,
            config.num_basis,
            radial_hidden=config.radial_hidden,
            num_heads=config.num_heads,
            avg_num_neighbors=config.avg_num_neighbors,
            branch_scale=config.branch_scale,
            product_channels=config.product_channels,
            feed_forward_width=config.feed_forward_width,
            aggregation=config.aggregation,
            radial_layers=config.radial_layers,
            embedding_gains=config.embedding_gains,
        )
        for _ in range(config.blocks_per_layer)
    ]
    return InjectedLayer(torch.nn.ModuleList(blocks))


class ExplicitCore(torch.nn.Module):
    """A stack of layers applied once each from z = 0 (a warm start does not apply and is ignored)."""

    def __init__(self, layers: torch.nn.ModuleList) -> None:
        super().__init__()
        self.layers = layers

    def prepare(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Unchanged: every layer of the stack prepares its own per-edge terms when applied."""
        return inputs

    def stack(self, inputs: dict[str, Tensor]) -> Tensor:
        """The layers applied in turn from z = 0: [N, D] (inputs as `InjectedLayer` takes them)."""
        z = torch.zeros_like(inputs["injection"])
        for layer in self.layers:
            z = layer(z, layer.prepare(inputs))
        return z

    def forward(
        self,
        inputs: dict[str, Tensor],
        batch: Tensor,
        num_graphs: int,
        z0: Tensor | None = None,
        position_grad: bool = False,
    ) -> CoreOutput:
        z = self.stack(inputs)
        residual = torch.zeros(num_graphs, dtype=z.dtype, device=z.device)
        converged = torch.ones(num_graphs, dtype=torch.bool, device=z.device)
        return CoreOutput(z, 0, residual, converged, [], z[:0])

    def attach(
        self, energy: Tensor, out: CoreOutput, batch: Tensor, num_graphs: int, g0: Tensor | None = None
    ) -> tuple[Tensor, Tensor, int]:
        """Nothing to do: autograd through the stack is exact. Returns (energy, no adjoint, 0)."""
        return energy, out.leaf, 0


class ImplicitCore(torch.nn.Module):
    """The DEQ: z* = layer(z*, inputs).

    Evaluation (scriptable): solve without gradients (`solver_inference`, from z0 or 0); with
    position gradients, either `phantom_steps` damped steps from z* (force mode "phantom") or one
    linearized step whose energy `attach` makes exactly differentiable (force mode "conservative").
    Training (eager only): the deqff.deq `DEQ` wrapper with `solver_train`, `solver_backward`,
    `grad_mode` and fixed-point-correction states.
    """

    __jit_ignored_attributes__ = ("config",)

    def __init__(self, layer: InjectedLayer, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.solver = FixedPointSolver(layer, config.solver_inference)
        self.adjoint = AdjointSolver(layer, config.solver_backward)
        self.force_mode = config.force_mode
        self.phantom_steps = config.phantom_steps
        self.phantom_tau = config.phantom_tau

    def prepare(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The layer's inputs with its per-edge terms added, once per geometry (see InjectedLayer)."""
        return self.solver.func.prepare(inputs)

    def phantom(self, z: Tensor, inputs: dict[str, Tensor]) -> Tensor:
        """k damped steps z <- (1 - tau) z + tau f(z) with gradients, from the solution z (detached)."""
        with torch.no_grad():
            z = z.clone()
        for _ in range(self.phantom_steps):
            z = (1.0 - self.phantom_tau) * z + self.phantom_tau * self.solver.func(z, inputs)
        return z

    def forward(
        self,
        inputs: dict[str, Tensor],
        batch: Tensor,
        num_graphs: int,
        z0: Tensor | None = None,
        position_grad: bool = False,
    ) -> CoreOutput:
        if self.training:
            return self.train_forward(inputs, batch, num_graphs, z0)
        start = z0 if z0 is not None else torch.zeros_like(inputs["injection"])
        if position_grad and self.force_mode != "phantom":
            # The linearization at z* (conservative forces), from the solve's last evaluation if it
            # recorded one (FixedPointSolver.solve_linearized), else evaluated once more.
            result, z, leaf = self.solver.solve_linearized(start, inputs, batch, num_graphs)
            if leaf.shape[0] == 0:
                z, leaf = self.adjoint.linearize(result.z, inputs)
            return CoreOutput(z, result.iterations, result.rel_res, result.converged, [], leaf)
        result = self.solver(start, inputs, batch, num_graphs)
        z = result.z
        if position_grad:
            z = self.phantom(z, inputs)
        return CoreOutput(z, result.iterations, result.rel_res, result.converged, [], z[:0])

    def attach(
        self, energy: Tensor, out: CoreOutput, batch: Tensor, num_graphs: int, g0: Tensor | None = None
    ) -> tuple[Tensor, Tensor, int]:
        """Make gradients of `energy` (computed from out.z = f(z*)) the exact implicit ones.

        Returns (energy with the same value, adjoint solution g [N, D] (for warm starts), adjoint
        iterations). Without a linearized step (no leaf) the energy is returned unchanged."""
        if out.leaf.shape[0] == 0:
            return energy, out.leaf, 0
        energy, result = self.adjoint.attach(energy, out.z, out.leaf, batch, num_graphs, g0)
        return energy, result.z, result.iterations

    @torch.jit.unused
    def training_deq(self) -> DEQ:
        """The eager training wrapper of the layer with the config's training settings."""
        config = self.config
        return DEQ(
            self.solver.func,
            config.solver_train,
            config.solver_backward,
            grad_mode=config.grad_mode,
            phantom_steps=config.phantom_steps,
            tau=config.phantom_tau,
            n_states=config.correction_states,
        )

    @torch.jit.unused
    def train_implicit_state(
        self,
        inputs: dict[str, Tensor],
        readout: Callable[[Tensor], Tensor],
        batch: Tensor,
        num_graphs: int,
        z0: Tensor | None,
        g0: Tensor | None = None,
    ) -> ImplicitState:
        """Training solve of z* and its adjoint for `readout`, both with exact parameter gradients
        (deqff.deq.second_order; `inputs` without a graph to the positions), from z0 and g0 [N, D]
        (warm starts) or cold."""
        start = z0 if z0 is not None else torch.zeros_like(inputs["injection"])
        return implicit_state(self.training_deq(), start, inputs, readout, batch, num_graphs, g0)

    @torch.jit.unused
    def train_forward(
        self, inputs: dict[str, Tensor], batch: Tensor, num_graphs: int, z0: Tensor | None
    ) -> CoreOutput:
        """Training solve with gradients through the fixed point (eager only)."""
        deq = self.training_deq()
        start = z0 if z0 is not None else torch.zeros_like(inputs["injection"])
        states, result = deq(start, inputs, batch, num_graphs)
        return CoreOutput(
            states[-1], result.iterations, result.rel_res, result.converged, states[:-1], states[-1][:0]
        )
