"""The stateful exported model: a deqff force field that keeps its last fixed point between calls.

`DeqffPotential` wraps a runner (`deqff.export.runner`) with everything an MD engine needs:

* the system's atoms: `set_atomic_numbers(z [N] (, indices [N]))` validates the elements against the
  model, stores the species and resets the state. The exported file is generic; engines call this
  once per system before use (openmm-torch: on the module object before `TorchForce(module)`, so
  every Context's clone carries it). `indices` selects the model's atoms out of all particles
  (mixed ML/MM systems); the other particles get zero force.
* the warm-start state: buffers `z_state` (fixed point [N, D]) and `g_state` (adjoint [N, D],
  conservative mode), written only after a successful call, under no_grad (they survive
  `torch.jit.freeze`). With `predictor_order` p > 0 (export option) the module also keeps the p
  previous states (`z_history`, `g_history` [p, N, D], lab frame) and starts each solve from their
  polynomial extrapolation (`extrapolate`: exact for fixed points moving as polynomials of degree
  <= p in the step index), under the same rule as a plain warm start (worse than cold: discarded).
  A cold solve (first call, rejected start, jump) clears the history. `set_atomic_numbers` (a new
  system, e.g. another atom count), `reset()` and `set_warm_start(False)` give cold starts; a state
  of the wrong shape is never used; a warm start worse than a cold one falls back to cold
  (`deqff.export.runner`).
* an explicit, pure core: `_step_graph(positions, species, edge_index, shifts, state, ...)` ->
  (energy, forces, state_out, stats, error, virial) takes and returns the state, so a host that owns it
  (a future torch.export artifact) can reuse it; it is not exported (no host calls it).
* engine calls: `forward` in the OpenMM convention (nm, kJ/mol; see `DeqffPotential.forward` and
  `DeqffEnergyPotential.forward`) and `compute(positions Å, cell Å)` -> (energy eV, forces eV/Å);
  `compute_virial(positions Å, cell Å)` -> (energy, forces, virial W = -dE/d(strain) [3, 3] eV) for
  models whose forces are energy gradients (the stress -W / V of ASE's cell filters and NPT).
* repeats: a call at bitwise the same positions (and box) as the previous one (OpenMM evaluates
  again after `getState`) returns the cached energy and forces without solving (energy convention:
  re-evaluated from the kept fixed point, no solve); it counts in `totals()["repeats"]`, not in
  `totals()["total_iterations"]`, so that total is one solve per configuration, and leaves the state
  as it was.
* MD-ET options (`deqff.export.mdet`, export flags, default off): net force / torque removal and a
  random rotation of every call, with the warm-start state rotated by the Wigner-D matrices of its
  irreps; applied in `_evaluate` (the engine calls), not in `_step_graph` nor in the `lammps_*`
  calls: LAMMPS applies them itself (cpp/runtime mdet.h; `lammps_wigner` gives D(R)).
* errors: bad input (NaN, overlapping atoms, unknown elements, a box narrower than 2 * cutoff, a
  wrong atom count) raises ValueError, a solve that fails even cold raises RuntimeError; the state is
  then kept as it was. Checks run in free functions called by each entry point (deqff.export.inputs
  explains why: frozen modules).
* statistics: `last_stats()` (the last call, deqff.export.runner.STAT_NAMES) and `totals()` (running
  totals, TOTAL_NAMES). Under openmm-torch the module lives inside the C++ Context; pass a global
  parameter (`deqff.md.openmm.STATS_PARAMETER`) as `probe` and request its energy derivative: the
  derivative is the running total of solver iterations, while the energy is unchanged.

The contract with the hosts. Everything static (elements, cutoff, dtype, force mode, feature size and
stages, solver and adjoint settings, warm starts, predictor order, MD-ET options, prior, min_distance,
format version) is in the metadata JSON (deqff.export.metadata; `host_settings` for the solve), which
hosts read once at load time. The module exports only what a host calls (EXPORTED_METHODS; a test
keeps the list exact):

    method                     called by
    forward                    OpenMM TorchForce (openmm-torch; deqff.md.openmm, openmm-ml factory)
    set_atomic_numbers         OpenMM (deqff.md.openmm.torch_force), ASE calculator, PythonForce and
                               the bench evaluator (deqff.export.export.set_atoms)
    compute                    ASE calculator (deqff.md.ase), PythonForce (deqff.md.python_force),
                               bench evaluator, warm_up_potential
    reset                      ASE `reset_solver_state`, warm_up_potential, C++ Model::reset
    set_warm_start             deqff.md.simulate (warm vs cold runs), bench evaluator (always cold)
    get_state, set_state       benchmarks/bench_predictor.py (explicit state in and out)
    last_stats, totals         ASE `solver_stats`, the OpenMM reporter (PythonForce), benchmarks
    reset_stats                warm_up_potential, benchmarks/compare_exports.py
    last_iterations,           benchmarks/bench_engines.py, bench_tolerance.py (the same numbers as
    last_adjoint_iterations    last_stats()["iterations" / "adjoint_iterations"])
    metadata                   C++ runtime (Model: parse_metadata), deqff.md.openmm and the bench
                               evaluator for a module given as an object
    lammps_embed, lammps_iterate, lammps_readout, lammps_prior
                               C++ DeqSolver / pair_style deq: the host-driven solve on local + ghost
                               atoms (deqff.export.graph_step)
    lammps_energy_grad, lammps_stage_graph, lammps_iterate_vjp, lammps_position_grad
                               C++ DeqSolver::evaluate_gradients: the adjoint's pieces
                               (lammps_iterate_vjp when DEQFF_STAGE_GRAPH=0)
    lammps_embed_graph, lammps_position_grad_graphs
                               C++ DeqSolver::evaluate_gradients, conservative DEQs: the embedding
                               and stages recorded once with graphs to the positions, the position
                               gradient taken from them (older files: lammps_position_grad)
    lammps_wigner              pair_style deq with random rotations (MD-ET)
    lammps_step_graph          pair_style deq, phantom forces on one rank (prior included)

Positions from OpenMM arrive in nm as float64; unit factors come from `deqff.units`.
(No `from __future__ import annotations` here: TorchScript must see real class annotations.)
"""

import torch
from torch import Tensor, nn

from deqff.data.validate import check_elements, check_particle_indices
from deqff.export.graph_step import GraphStep, check_host_solver
from deqff.export.inputs import scatter_forces, split_inputs, validated_graph, zero_with_unit_gradient
from deqff.export.mdet import InferenceTransforms
from deqff.export.options import MAX_PREDICTOR_ORDER
from deqff.export.runner import ExplicitRunner, new_stats
from deqff.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

#: The module's exported methods besides `forward` (see the module docstring for who calls each).
EXPORTED_METHODS = (
    "set_atomic_numbers",
    "compute",
    "compute_virial",
    "reset",
    "set_warm_start",
    "get_state",
    "set_state",
    "last_stats",
    "totals",
    "reset_stats",
    "last_iterations",
    "last_adjoint_iterations",
    "metadata",
    "lammps_embed",
    "lammps_iterate",
    "lammps_readout",
    "lammps_prior",
    "lammps_energy_grad",
    "lammps_stage_graph",
    "lammps_iterate_vjp",
    "lammps_position_grad",
    "lammps_embed_graph",
    "lammps_position_grad_graphs",
    "lammps_wigner",
    "lammps_step_graph",
)

#: Buffers of the carried secant pairs, in the order of RunOutput.secants.
SECANT_BUFFERS = (
    "secant_dy",
    "secant_dg",
    "secant_gram",
    "adjoint_secant_dy",
    "adjoint_secant_dg",
    "adjoint_secant_gram",
)

#: Running totals kept by the module (`totals()` keys). A *repeat* is a call at exactly the positions
#: (and box) of the previous call, as OpenMM makes when `getState` precedes a step: with forces it is
#: served from a cache without solving; its iterations (energy convention) count as repeat_iterations.
TOTAL_NAMES = (
    "calls",
    "repeats",
    "total_iterations",
    "repeat_iterations",
    "total_adjoint_iterations",
    "cold_starts",
    "rejected",
    "retried",
    "linearized",
)


def new_totals() -> dict[str, float]:
    return {
        "calls": 0.0,
        "repeats": 0.0,
        "total_iterations": 0.0,
        "repeat_iterations": 0.0,
        "total_adjoint_iterations": 0.0,
        "cold_starts": 0.0,
        "rejected": 0.0,
        "retried": 0.0,
        "linearized": 0.0,
    }


def extrapolation_weights(order: int) -> list[float]:
    """Weights of s_t, s_{t-1}, ..., s_{t-order} in the value at t + 1 of the polynomial of degree
    `order` through them (equal steps): (-1)^j C(order + 1, j + 1), e.g. [2, -1], [3, -3, 1]."""
    weights: list[float] = []
    binomial = 1.0  # C(order + 1, j + 1), updated in the loop
    for j in range(order + 1):
        binomial = binomial * (order + 1 - j) / (j + 1)
        weights.append(binomial if j % 2 == 0 else -binomial)
    return weights


def extrapolate(current: Tensor, history: Tensor) -> Tensor:
    """current [N, D] (step t) and history [H, N, D] (steps t-1, t-2, ... newest first) -> the
    polynomial extrapolation to step t + 1 over all of them ([N, D]); `current` itself when the
    history is empty or of another shape."""
    if current.shape[0] == 0 or history.shape[0] == 0 or history.shape[1:] != current.shape:
        return current
    weights = extrapolation_weights(history.shape[0])
    out = current * weights[0]
    for j in range(history.shape[0]):
        out = out + history[j] * weights[j + 1]
    return out


def pushed(state: Tensor, history: Tensor, depth: int) -> Tensor:
    """history [H, N, D] with `state` [N, D] put in front, cut to `depth` entries (restarted when the
    shapes differ: another system)."""
    if history.shape[0] == 0 or history.shape[1:] != state.shape:
        return state.unsqueeze(0).clone()
    return torch.cat([state.unsqueeze(0), history], dim=0)[:depth].clone()


class DeqffPotential(nn.Module):
    """Stateful deqff model; `forward` follows the "openmm" convention (energy and forces)."""

    _metadata: dict[str, str]
    elements: list[str]
    known_numbers: list[int]
    _last: dict[str, float]
    _totals: dict[str, float]

    def __init__(
        self,
        runner: ExplicitRunner,
        elements: list[str],
        known_numbers: list[int],
        cutoff: float,
        dtype: torch.dtype,
        metadata: dict[str, str],
        warm_start: bool = True,
        min_distance: float = 0.1,
        transforms: InferenceTransforms | None = None,
        predictor_order: int = 0,
    ) -> None:
        super().__init__()
        self.runner = runner
        # MD-ET options (deqff.export.mdet): random rotations, net force / torque removal; off by default.
        if transforms is None:
            transforms = InferenceTransforms(runner.model.config.irreps_node)
        self.transforms = transforms
        self.elements = list(elements)
        self.known_numbers = list(known_numbers)
        self.cutoff = float(cutoff)
        self.min_distance = float(min_distance)
        self.warm_start = warm_start
        if predictor_order < 0 or predictor_order > MAX_PREDICTOR_ORDER:
            raise ValueError(
                f"predictor_order={predictor_order}: use 0 (the last fixed point) to {MAX_PREDICTOR_ORDER}"
            )
        self.predictor_order = predictor_order
        self.feature_dim: int = runner.feature_dim
        check_host_solver(runner.model)
        self.graph = GraphStep(runner.model, dtype)
        self.angstrom_per_nm = NM_TO_ANGSTROM
        self.kj_per_mol_per_ev = EV_TO_KJ_PER_MOL
        self._metadata = dict(metadata)
        self._last = new_stats()
        self._totals = new_totals()
        table = torch.full((119,), -1, dtype=torch.long)
        for index, number in enumerate(known_numbers):
            table[number] = index
        self.register_buffer("species_table", table)
        self.register_buffer("like", torch.zeros(0, dtype=dtype))
        self.register_buffer("atomic_numbers", torch.zeros(0, dtype=torch.long))
        self.register_buffer("species", torch.zeros(0, dtype=torch.long))
        self.register_buffer("atom_indices", torch.zeros(0, dtype=torch.long))
        self.register_buffer("z_state", torch.zeros((0, self.feature_dim), dtype=dtype))
        self.register_buffer("g_state", torch.zeros((0, self.feature_dim), dtype=dtype))
        self.register_buffer("z_history", torch.zeros((0, 0, self.feature_dim), dtype=dtype))
        self.register_buffer("g_history", torch.zeros((0, 0, self.feature_dim), dtype=dtype))
        # Secant pairs of the last call's solves (export option --secant-memory; deqff.export.runner):
        # forward dY, dG [K, N, D] and their Gram matrix [K * K] (K = 0: none), then the adjoint's; kept
        # like the state (deqff.deq.anderson.anderson_carry).
        for name in SECANT_BUFFERS:
            shape = (0,) if name.endswith("gram") else (0, 0, self.feature_dim)
            self.register_buffer(name, torch.zeros(shape, dtype=dtype))
        # The last call's inputs and results (Å, eV, float64) for repeats; empty = nothing cached.
        self.register_buffer("cache_positions", torch.zeros((0, 3), dtype=torch.float64))
        self.register_buffer("cache_cell", torch.zeros((0, 3), dtype=torch.float64))
        self.register_buffer("cache_energy", torch.zeros((), dtype=torch.float64))
        self.register_buffer("cache_forces", torch.zeros((0, 3), dtype=torch.float64))

    # -- system setup ---------------------------------------------------------------------------------
    @torch.jit.export
    def set_atomic_numbers(self, numbers: Tensor, indices: Tensor | None = None) -> None:
        """Atoms of the system: atomic numbers [N]; optional particle indices [N] of these atoms among
        all particles passed to `forward`/`compute` (default: all particles, in order). Resets the state."""
        if numbers.dim() != 1:
            raise ValueError("atomic numbers must be a 1-D tensor [N]")
        if numbers.shape[0] == 0:
            raise ValueError(
                "deqff model: the system is empty (no atoms given); pass the atomic numbers of at least "
                "one atom (for a mixed system, a non-empty list of the model's atoms)"
            )
        device = self.species_table.device  # the module's device (after `module.to(device)`)
        numbers = numbers.to(device=device, dtype=torch.long)
        check_elements(numbers, self.known_numbers)
        selected = torch.zeros(0, dtype=torch.long, device=device)
        if indices is not None:
            if indices.dim() != 1 or indices.shape[0] != numbers.shape[0]:
                raise ValueError("indices must be a 1-D tensor with one particle index per atomic number")
            check_particle_indices(indices)
            selected = indices.to(device=device, dtype=torch.long)
        with torch.no_grad():
            self.atomic_numbers = numbers.clone()
            self.species = self.species_table[numbers]
            self.atom_indices = selected.clone()
        self.reset()

    @torch.jit.export
    def reset(self) -> None:
        """Forget the warm-start state (and the cached last result): the next call starts cold."""
        device = self.like.device
        with torch.no_grad():
            self.z_state = torch.zeros((0, self.feature_dim), dtype=self.like.dtype, device=device)
            self.g_state = torch.zeros((0, self.feature_dim), dtype=self.like.dtype, device=device)
            self.cache_positions = torch.zeros((0, 3), dtype=torch.float64, device=device)
            self.cache_forces = torch.zeros((0, 3), dtype=torch.float64, device=device)
        self._clear_history()
        self._clear_secants()

    def _clear_secants(self) -> None:
        """Forget the last solves' secant pairs (the next solve starts its Anderson history empty)."""
        empty = torch.zeros((0, 0, self.feature_dim), dtype=self.like.dtype, device=self.like.device)
        with torch.no_grad():
            self.secant_dy = empty
            self.secant_dg = empty
            self.secant_gram = empty.reshape(-1)
            self.adjoint_secant_dy = empty
            self.adjoint_secant_dg = empty
            self.adjoint_secant_gram = empty.reshape(-1)

    def _clear_history(self) -> None:
        """Forget the states before the current one (the predictor starts again from plain warm starts)."""
        device = self.like.device
        with torch.no_grad():
            self.z_history = torch.zeros((0, 0, self.feature_dim), dtype=self.like.dtype, device=device)
            self.g_history = torch.zeros((0, 0, self.feature_dim), dtype=self.like.dtype, device=device)

    @torch.jit.export
    def set_warm_start(self, enabled: bool) -> None:
        """Reuse the previous fixed point (True, default) or start every call cold (False)."""
        self.warm_start = enabled
        self.reset()

    @torch.jit.export
    def get_state(self) -> list[Tensor]:
        """Copies of the warm-start state [z [N, D], g [N, D]] ([0, D] when absent)."""
        with torch.no_grad():
            state = [self.z_state.clone(), self.g_state.clone()]
        return state

    @torch.jit.export
    def set_state(self, state: list[Tensor]) -> None:
        """Install a warm-start state from `get_state`/`step` (checked against the next input anyway).
        Drops the cached last result (the next call solves even at the previous call's positions) and
        the predictor's history (the next start is this state itself)."""
        device = self.like.device
        with torch.no_grad():
            self.z_state = state[0].to(device=device, dtype=self.like.dtype).clone()
            self.g_state = state[1].to(device=device, dtype=self.like.dtype).clone()
            self.cache_positions = torch.zeros((0, 3), dtype=torch.float64, device=device)
            self.cache_forces = torch.zeros((0, 3), dtype=torch.float64, device=device)
        self._clear_history()
        self._clear_secants()

    def _start_state(self, repeat: bool) -> list[Tensor]:
        """The next solve's start [z, g, secant pairs (6, see SECANT_BUFFERS)]: the last state, or with a
        predictor its extrapolation over the kept history (as far back as the history reaches; not for
        a repeat of the last positions, whose fixed point is the last state); [0, D] tensors start cold."""
        secants = [
            self.secant_dy,
            self.secant_dg,
            self.secant_gram,
            self.adjoint_secant_dy,
            self.adjoint_secant_dg,
            self.adjoint_secant_gram,
        ]
        state = [self.z_state, self.g_state]
        if not self.warm_start:
            state = [self.z_state[:0], self.g_state[:0]]
        elif self.predictor_order > 0 and not repeat:
            with torch.no_grad():
                state = [extrapolate(self.z_state, self.z_history), extrapolate(self.g_state, self.g_history)]
        return state + secants

    def _push_history(self, cold: bool) -> None:
        """Before the state is replaced: keep it in the history (newest first, at most predictor_order),
        or clear the history after a cold solve (the states before it belong to another trajectory)."""
        if self.predictor_order > 0:
            if cold or self.z_state.shape[0] == 0:
                self._clear_history()
            else:
                with torch.no_grad():
                    self.z_history = pushed(self.z_state, self.z_history, self.predictor_order)
                    self.g_history = pushed(self.g_state, self.g_history, self.predictor_order)

    # -- pure evaluation ------------------------------------------------------------------------------
    def _step_graph(
        self,
        positions: Tensor,
        species: Tensor,
        edge_index: Tensor,
        shift_vectors: Tensor,
        state: list[Tensor],
        forces: bool,
        trust_state: bool,
        virial: bool = False,
    ) -> tuple[Tensor, Tensor, list[Tensor], dict[str, float], str, Tensor]:
        """`step_graph` that returns a failed solve's message ("" on success) instead of raising;
        `trust_state`: state[0] is already the fixed point of this input (a repeat), no solve; `virial`:
        also W = -dE/d(strain) [3, 3] eV (energy-gradient force modes; else [0, 3, 3])."""
        x = positions.to(self.like.dtype)
        shifts = shift_vectors.to(self.like.dtype)
        if self.runner.force_mode == "direct":
            with torch.no_grad():
                out = self.runner.run(
                    x, species, edge_index, shifts, state[0], state[1], forces, trust_state, state[2:]
                )
        else:
            enabled = torch.is_grad_enabled()
            torch.set_grad_enabled(True)  # forces need autograd even when called under no_grad
            if not x.requires_grad:
                x = x.clone().requires_grad_(True)
            if virial:
                shifts = shifts.clone().requires_grad_(True)
            out = self.runner.run(
                x, species, edge_index, shifts, state[0], state[1], forces, trust_state, state[2:], virial
            )
            torch.set_grad_enabled(enabled)
        with torch.no_grad():
            # (the secant pairs are new tensors of the solves, or the buffers themselves: no copy)
            state_out = [out.z.clone(), out.g.clone()] + out.secants  # noqa: RUF005 (TorchScript)
        return out.energy, out.forces, state_out, out.stats, out.error, out.virial

    # -- stateful calls -------------------------------------------------------------------------------
    # Each engine entry point checks its input with `validated_graph` itself and raises a failed
    # solve's error itself: see deqff.export.inputs for why (frozen modules).
    def _commit(self, state: list[Tensor], stats: dict[str, float], repeat: bool) -> None:
        """Keep the new state and count the call (only after a successful evaluation). A repeat keeps
        the state it started from, so the warm-start sequence does not depend on re-evaluations."""
        if self.warm_start and not repeat:
            self._push_history(stats["cold"] > 0.0)
            with torch.no_grad():
                self.z_state = state[0]
                self.g_state = state[1]
                if len(state) == 8:
                    self.secant_dy = state[2]
                    self.secant_dg = state[3]
                    self.secant_gram = state[4]
                    self.adjoint_secant_dy = state[5]
                    self.adjoint_secant_dg = state[6]
                    self.adjoint_secant_gram = state[7]
        totals = dict(self._totals)
        totals["calls"] += 1.0
        if repeat:
            totals["repeats"] += 1.0
            totals["repeat_iterations"] += stats["iterations"]
        else:
            totals["total_iterations"] += stats["iterations"]
        totals["total_adjoint_iterations"] += stats["adjoint_iterations"]
        totals["cold_starts"] += stats["cold"]
        totals["rejected"] += stats["rejected"]
        totals["retried"] += stats["retried"]
        totals["linearized"] += stats["linearized"]
        self._totals = totals
        self._last = stats

    def _is_repeat(self, positions: Tensor, cell: Tensor | None) -> bool:
        """True if positions [M, 3] and cell (Å) are bitwise those of the previous call."""
        if self.cache_positions.shape != positions.shape:
            return False
        if not torch.equal(self.cache_positions, positions.to(torch.float64)):
            return False
        if cell is None:
            return self.cache_cell.shape[0] == 0
        return self.cache_cell.shape == cell.shape and torch.equal(self.cache_cell, cell.to(torch.float64))

    def _cached(self, positions: Tensor, cell: Tensor | None, forces: bool) -> bool:
        """A repeat whose energy and forces are cached (only calls with forces are cached)."""
        return (
            forces and self.cache_forces.shape[0] == positions.shape[0] and self._is_repeat(positions, cell)
        )

    def _remember(self, positions: Tensor, cell: Tensor | None, energy: Tensor, forces: Tensor) -> None:
        """Cache this call's inputs and (when computed) results."""
        with torch.no_grad():
            self.cache_positions = positions.to(torch.float64).clone()
            if cell is None:
                self.cache_cell = torch.zeros((0, 3), dtype=torch.float64, device=positions.device)
            else:
                self.cache_cell = cell.to(torch.float64).clone()
            self.cache_energy = energy.to(torch.float64).clone()
            self.cache_forces = forces.to(torch.float64).clone()

    def _recall(self) -> tuple[Tensor, Tensor]:
        """The cached (energy, forces) of a repeat, counted as a call without iterations."""
        totals = dict(self._totals)
        totals["calls"] += 1.0
        totals["repeats"] += 1.0
        self._totals = totals
        with torch.no_grad():
            energy = self.cache_energy.clone()
            forces = self.cache_forces.clone()
        return energy, forces

    def _evaluate(
        self,
        positions: Tensor,
        cell: Tensor | None,
        atoms: Tensor,
        edge_index: Tensor,
        shift_vectors: Tensor,
        forces: bool,
        virial: bool = False,
    ) -> tuple[Tensor, Tensor, str, Tensor]:
        """Stateful evaluation in Å / eV of checked input (all particles [M, 3], the model's atoms and
        their graph): (energy [], forces [M, 3] or [0, 3], error, virial [3, 3] eV in the lab frame when
        `virial`, else [0, 3, 3]). State is kept only on success."""
        repeat = self._is_repeat(positions, cell)
        state = self._start_state(repeat)
        lab_atoms, rotation = atoms, self.transforms.draw(atoms.device)
        atoms, shift_vectors, state = self.transforms.enter(rotation, atoms, shift_vectors, state)
        energy, atom_forces, state_out, stats, error, w = self._step_graph(
            atoms, self.species, edge_index, shift_vectors, state, forces, repeat, virial
        )
        atom_forces, state_out, error = self.transforms.leave(
            rotation, atom_forces, state_out, lab_atoms, cell, error
        )
        if w.shape[0] > 0:  # W of the frame rotated by R (positions x R^T) -> lab frame: R^T W R
            r = rotation.to(w.dtype)
            w = r.T @ w @ r
        force_out = scatter_forces(atom_forces, self.atom_indices, positions.shape[0])
        if error == "":
            self._commit(state_out, stats, repeat)
            self._remember(positions, cell, energy, force_out)
        return energy, force_out, error, w

    def _reject_inference_mode(self, positions: Tensor) -> None:
        """A clear error for a conservative model called under torch.inference_mode() (its forces need
        autograd; a frozen module would crash there). The check allocates from the input, so freezing cannot
        fold it into a constant."""
        if self.runner.force_mode != "direct" and positions.new_empty([0]).is_inference():
            raise RuntimeError(
                "deqff model: conservative forces are -dE/dx by autograd, which torch.inference_mode() "
                "turns off; call the model outside inference mode (under torch.no_grad() it works: it "
                "enables gradients for its forces itself)"
            )

    @torch.jit.export
    def compute(self, positions: Tensor, cell: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """positions [M, 3] Å, cell [3, 3] Å or None -> (energy [] eV, forces [M, 3] eV/Å), float64."""
        self._reject_inference_mode(positions)
        if self._cached(positions, cell, True):
            energy, forces = self._recall()
        else:
            atoms, edge_index, shift_vectors = validated_graph(
                positions,
                cell,
                self.atom_indices,
                self.species,
                self.atomic_numbers,
                self.cutoff,
                self.min_distance,
            )
            energy, forces, error, _ = self._evaluate(positions, cell, atoms, edge_index, shift_vectors, True)
            if error != "":
                raise RuntimeError(error)
        with torch.no_grad():
            energy_out = energy.to(torch.float64).clone()
            forces_out = forces.to(torch.float64).clone()
        return energy_out, forces_out

    @torch.jit.export
    def compute_virial(self, positions: Tensor, cell: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """positions [M, 3] Å, cell [3, 3] Å or None -> (energy [] eV, forces [M, 3] eV/Å, virial W =
        -dE/d(strain) [3, 3] eV), float64: one evaluation (a repeat of the last call's positions solves
        nothing). The stress is -W / V. Models whose forces are energy gradients only."""
        self._reject_inference_mode(positions)
        if self.runner.force_mode == "direct":
            raise RuntimeError(
                "deqff: this model's forces come from a direct head, not from an energy gradient, so it has "
                "no virial or stress; use a model exported with conservative forces"
            )
        atoms, edge_index, shift_vectors = validated_graph(
            positions,
            cell,
            self.atom_indices,
            self.species,
            self.atomic_numbers,
            self.cutoff,
            self.min_distance,
        )
        energy, forces, error, w = self._evaluate(
            positions, cell, atoms, edge_index, shift_vectors, True, True
        )
        if error != "":
            raise RuntimeError(error)
        with torch.no_grad():
            energy_out = energy.to(torch.float64).clone()
            forces_out = forces.to(torch.float64).clone()
            virial_out = w.to(torch.float64).clone()
        return energy_out, forces_out, virial_out

    def _probe_term(self, probe: Tensor | None) -> Tensor:
        """probe' * (running total of iterations), zero in value: its derivative is the statistic."""
        term = torch.zeros((), dtype=torch.float64, device=self.like.device)
        if probe is not None:
            term = zero_with_unit_gradient(probe) * self._totals["total_iterations"]
        return term

    def forward(
        self, positions: Tensor, box: Tensor | None = None, probe: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """OpenMM convention: positions [M, 3] nm, box [3, 3] nm (rows = box vectors) or None, probe []
        optional -> (energy [] kJ/mol, forces [M, 3] kJ/mol/nm), float64, for
        `TorchForce.setOutputsForces(True)`."""
        self._reject_inference_mode(positions)
        box, probe = split_inputs(box, probe)
        cell: Tensor | None = None
        if box is not None:
            cell = box * self.angstrom_per_nm
        x = positions * self.angstrom_per_nm
        if self._cached(x, cell, True):
            energy, forces = self._recall()
        else:
            atoms, edge_index, shift_vectors = validated_graph(
                x, cell, self.atom_indices, self.species, self.atomic_numbers, self.cutoff, self.min_distance
            )
            energy, forces, error, _ = self._evaluate(x, cell, atoms, edge_index, shift_vectors, True)
            if error != "":
                raise RuntimeError(error)
        with torch.no_grad():
            energy_out = energy.to(torch.float64) * self.kj_per_mol_per_ev
            forces_out = forces.to(torch.float64) * (self.kj_per_mol_per_ev * self.angstrom_per_nm)
        return energy_out + self._probe_term(probe), forces_out

    # -- host-driven evaluation (LAMMPS; see deqff.export.graph_step) ---------------------------------
    @torch.jit.export
    def lammps_embed(
        self, positions: Tensor, species: Tensor, edges: Tensor, n_local: int
    ) -> tuple[Tensor, list[Tensor]]:
        """positions [n_all, 3] Å, species [n_all], edges [2, E] (row 0 local i, row 1 neighbor j) ->
        (injection [n_local, D], edge features for `lammps_iterate`)."""
        return self.graph.embed(positions, species, edges, n_local)

    @torch.jit.export
    def lammps_iterate(
        self, h: Tensor, injection: Tensor, features: list[Tensor], n_local: int, stage: int
    ) -> Tensor:
        """One stage of f: h [n_all, D] and injection [n_all, D] (ghost rows filled by the host) ->
        [n_local, D]."""
        return self.graph.iterate(h, injection, features, n_local, stage)

    @torch.jit.export
    def lammps_readout(self, z: Tensor, species: Tensor) -> tuple[Tensor, Tensor]:
        """z [n_local, D], species [n_local] -> (atom energies [n_local] eV, direct forces
        [n_local, 3] eV/Å; zeros unless the force mode is direct)."""
        return self.graph.readout(z, species)

    @torch.jit.export
    def lammps_energy_grad(self, s: Tensor, species: Tensor) -> tuple[Tensor, Tensor]:
        """Conservative DEQs: s = f(z*) [n_local, D], species [n_local] -> (atom energies [n_local] eV,
        dE/ds [n_local, D]), the adjoint's right-hand side (deqff.export.graph_step)."""
        return self.graph.energy_grad(s, species)

    @torch.jit.export
    def lammps_iterate_vjp(
        self,
        h: Tensor,
        injection: Tensor,
        features: list[Tensor],
        n_local: int,
        stage: int,
        cotangent: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Transpose of one stage of f at h [n_all, D]: cotangent [n_local, D] of its output ->
        (d/dh [n_all, D], d/dinjection [n_all, D]); the host reverse-communicates ghost rows."""
        return self.graph.iterate_vjp(h, injection, features, n_local, stage, cotangent)

    @torch.jit.export
    def lammps_stage_graph(
        self, h: Tensor, injection: Tensor, features: list[Tensor], n_local: int, stage: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One stage of f recorded with its autograd graph: (x, u, out) with leaves x = h, u = injection
        [n_all, D] and out [n_local, D] (model dtype); the host takes each adjoint iteration's transpose
        as autograd.grad(out, [x, u], cotangent, retain_graph) (graph_step.stage_graph)."""
        return self.graph.stage_graph(h, injection, features, n_local, stage)

    @torch.jit.export
    def lammps_position_grad(
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
        """Gradient [n_all, 3] eV/Å of the converged adjoint's objective (and the prior) with respect
        to local and ghost positions, and the prior's atom energies [n_local] eV (graph_step)."""
        return self.graph.position_grad(
            positions, species, edges, n_local, stage_inputs, injection, cotangents, injection_cotangent
        )

    @torch.jit.export
    def lammps_embed_graph(
        self, positions: Tensor, species: Tensor, edges: Tensor, n_local: int
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """`lammps_embed` with autograd graphs: (x, own, features), x the positions leaf [n_all, 3]
        (model dtype), own the local injection [n_local, D] and features the edge features, both with
        graphs to x; stages recorded on these features by `lammps_stage_graph` reach x
        (graph_step.embed_graph)."""
        return self.graph.embed_graph(positions, species, edges, n_local)

    @torch.jit.export
    def lammps_position_grad_graphs(
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
        """`lammps_position_grad` from the graphs of `lammps_embed_graph` and the recorded stages' outputs
        outs [S] with their cotangents [S] of [n_local, D]; injection_cotangent [n_local, D] of the local
        injection (its transposes' own rows plus what other ranks sent). Returns (prior atom energies
        [n_local] eV, gradient [n_all, 3] eV/Å) (graph_step.position_grad_graphs)."""
        return self.graph.position_grad_graphs(
            x, species, edges, n_local, outs, cotangents, own, injection_cotangent
        )

    @torch.jit.export
    def lammps_prior(
        self, positions: Tensor, species: Tensor, edges: Tensor, n_local: int
    ) -> tuple[Tensor, Tensor]:
        """The short-range prior (metadata "repulsion") of the local atoms from a FULL neighbor list:
        positions [n_all, 3] Å, species [n_all], edges [2, E] (row 0 local i, row 1 neighbor j) ->
        (atom energies [n_local] eV, forces [n_local, 3] eV/Å), zeros without a prior; add them to
        `lammps_readout`'s. Needs no ghost forces (deqff.export.graph_step)."""
        return self.graph.prior(positions, species, edges, n_local)

    @torch.jit.export
    def lammps_wigner(self, rotation: Tensor) -> Tensor:
        """rotation [3, 3] -> D(R) [D, D] float64, the block-diagonal Wigner-D matrix of the state's
        irreps: a host that rotates the model's input by R rotates a state z [N, D] as z @ D^T
        (LAMMPS's random rotations, deqff.export.mdet)."""
        return self.transforms.wigner.matrix(rotation.to(torch.float64))

    @torch.jit.export
    def lammps_step_graph(
        self,
        positions: Tensor,
        species: Tensor,
        edges: Tensor,
        shift_vectors: Tensor,
        state: list[Tensor],
    ) -> tuple[Tensor, Tensor, Tensor, list[Tensor], dict[str, float]]:
        """Any force mode on one rank: positions [N, 3] Å of the rank's own atoms, species [N], edges
        [2, E] (row 0 atom i, row 1 atom j, periodic neighbors mapped to their owner), shift_vectors
        [E, 3] Å (image of j minus j), state [z, g] warm starts ([0, D]: cold). Returns (energy [] eV,
        forces [N, 3] eV/Å, atom energies [N] eV read out from z* (they sum to the energy to solver
        tolerance), state_out [z, g], stats). Raises RuntimeError if the solve fails even cold."""
        edge_index = torch.stack([edges[1], edges[0]])
        energy, forces, state_out, stats, error, _ = self._step_graph(
            positions, species, edge_index, shift_vectors, state, True, False
        )
        if error != "":
            raise RuntimeError(error)
        atom_energy = torch.zeros(0, dtype=torch.float64, device=positions.device)
        if state_out[0].shape[0] == positions.shape[0]:
            atom_energy = self.graph.readout(state_out[0], species)[0]
            if self.runner.has_prior:
                x = positions.to(self.like.dtype)
                shifts = shift_vectors.to(self.like.dtype)
                with torch.no_grad():
                    prior = self.runner.model.prior_energy(x, species, edge_index, shifts, False)[0]
                atom_energy = atom_energy + prior.to(torch.float64)
        with torch.no_grad():
            energy_out = energy.to(torch.float64).clone()
            forces_out = forces.to(torch.float64).clone()
        return energy_out, forces_out, atom_energy, state_out[:2], stats

    # -- statistics and metadata ----------------------------------------------------------------------
    @torch.jit.export
    def last_iterations(self) -> int:
        """Forward-solve iterations (evaluations of f) of the last call."""
        return int(self._last["iterations"])

    @torch.jit.export
    def last_adjoint_iterations(self) -> int:
        return int(self._last["adjoint_iterations"])

    @torch.jit.export
    def last_stats(self) -> dict[str, float]:
        """Every statistic of the last call (see deqff.export.runner.STAT_NAMES)."""
        return dict(self._last)

    @torch.jit.export
    def totals(self) -> dict[str, float]:
        """Running totals since creation or `reset_stats()` (keys: TOTAL_NAMES)."""
        return dict(self._totals)

    @torch.jit.export
    def reset_stats(self) -> None:
        self._totals = new_totals()
        self._last = new_stats()

    @torch.jit.export
    def metadata(self) -> dict[str, str]:
        return self._metadata


class DeqffEnergyPotential(DeqffPotential):
    """The same model; `forward` follows the "openmm-energy" convention (energy only)."""

    def forward(self, positions: Tensor, box: Tensor | None = None, probe: Tensor | None = None) -> Tensor:
        """positions [M, 3] nm, box [3, 3] nm or None, probe [] optional -> energy [] kJ/mol with a graph
        to `positions` (openmm-torch backpropagates it for the forces; `setOutputsForces(False)`)."""
        self._reject_inference_mode(positions)
        box, probe = split_inputs(box, probe)
        cell: Tensor | None = None
        if box is not None:
            cell = box * self.angstrom_per_nm
        x = positions * self.angstrom_per_nm
        atoms, edge_index, shift_vectors = validated_graph(
            x, cell, self.atom_indices, self.species, self.atomic_numbers, self.cutoff, self.min_distance
        )
        energy, _, error, _ = self._evaluate(x, cell, atoms, edge_index, shift_vectors, False)
        if error != "":
            raise RuntimeError(error)
        return energy.to(torch.float64) * self.kj_per_mol_per_ev + self._probe_term(probe)
