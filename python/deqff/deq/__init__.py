"""deqff.deq: the model-agnostic implicit-layer engine (scriptable solvers, implicit gradients, stabilizers).

State layout: z [N, D] (rows = atoms of all samples), segment [N] int64 sample index, B samples.

    SolverConfig(method, max_iter, tol, stop_mode, m, beta, lam, damping, return_best, on_nonfinite)
        .to_dict() / SolverConfig.from_dict(d)
    FixedPointSolver(func, config)(z0, inputs, segment=None, num_segments=1, record=None) -> SolverResult
    AdjointSolver(func, config)(z_star, inputs, grad, segment, num_segments, g0) -> SolverResult (g)
        .linearize(z_star, inputs) -> (fz, z);  .solve_graph(fz, z, grad, segment, num_segments, g0)
        .attach(energy, fz, z, segment, num_segments, g0) -> (energy with implicit gradient, result)
    SolverResult(z, iterations, nstep[B], abs_res[B], rel_res[B], converged[B], finite[B], trace, states)
    DEQ(func, forward_config, backward_config, grad_mode="ift"|"phantom"|"bptt", phantom_steps, tau,
        n_states, indices)(z0, inputs, segment, num_segments) -> (states, SolverResult)
        .attach(fz, z, segment, num_segments) -> fz with the implicit gradient of a fixed point z
        correction_indices(max_iter, n_states, indices) -> iteration numbers of the returned states
    implicit_state(deq, z0, inputs, readout, segment, num_segments) -> ImplicitState(z, g, energy, ...):
        fixed point and adjoint with exact parameter gradients (training on -dE/dx, second order)
    apply_norm(module, "weight_norm"|"spectral_norm", names, **kw); prepare_norms / detach_norms /
        remove_norms(root); VariationalDropout(p); reset_stabilizers(func)
    jacobian_reg(func, z, inputs, n_samples) -> Tensor;  correction_loss(losses, gamma) -> Tensor
    segment_sum / segment_norm(x, segment, num_segments)

A function f is any nn.Module with forward(z: Tensor, inputs: Dict[str, Tensor]) -> Tensor that does not
couple different segments (DEQFunction is the matching TorchScript interface).
"""

from .adjoint import AdjointSolver
from .config import SolverConfig
from .dropout import VariationalDropout
from .function import DEQFunction
from .layer import DEQ, correction_indices
from .norms import SpectralNorm, WeightNorm, apply_norm, detach_norms, prepare_norms, remove_norms
from .regularizers import correction_loss, jacobian_reg
from .second_order import ImplicitState, implicit_state
from .segments import segment_norm, segment_sum
from .solver import FixedPointSolver
from .stabilizers import reset_stabilizers
from .stats import SolverResult

__all__ = [
    "DEQ",
    "AdjointSolver",
    "DEQFunction",
    "FixedPointSolver",
    "ImplicitState",
    "SolverConfig",
    "SolverResult",
    "SpectralNorm",
    "VariationalDropout",
    "WeightNorm",
    "apply_norm",
    "correction_indices",
    "correction_loss",
    "detach_norms",
    "implicit_state",
    "jacobian_reg",
    "prepare_norms",
    "remove_norms",
    "reset_stabilizers",
    "segment_norm",
    "segment_sum",
]
