"""Short-range repulsion prior: the Ziegler–Biersack–Littmark (ZBL) universal screened nuclear
repulsion, switched off smoothly before the shortest distances of the training data.

    E_pair(r) = k_e Z_i Z_j / r · φ(r / a) · s(r),   a = 0.46850 Å / (Z_i^0.23 + Z_j^0.23),
    φ(x) = 0.18175 e^{-3.19980 x} + 0.50986 e^{-0.94229 x} + 0.28022 e^{-0.40290 x} + 0.02817 e^{-0.20162 x},
    k_e = e² / (4π ε0) (deqff.units.COULOMB_EV_ANGSTROM), s = 1 below r_inner, 0 from r_outer on, and
    s = 1 - (10 t³ - 15 t⁴ + 6 t⁵), t = (r - r_inner) / (r_outer - r_inner) in between (quintic
    smoothstep: s, s' and s'' are continuous, so energy, forces and their derivative are too).

r_outer per element pair [S, S] is fitted as the shortest distance of that pair in the training data
(slightly rounded down, see deqff.train.repulsion), so the prior is exactly zero on every training
frame and changes neither training nor accuracy: it only acts where the data never went. r_inner =
INNER_FRACTION · r_outer. Both are buffers in the model's element order (state_dict, checkpoints).

Edges: deqff graphs list both directions of every pair (row 0 sender j, row 1 receiver i); each
directed edge gives half of its pair energy to its receiver, so each atom of a pair gets half and a
graph's sum is the sum over pairs. Only edges of the graph count: r_outer must be below the cutoff.

(No `from __future__ import annotations` here: TorchScript must see real annotations.)
"""

import torch
from torch import Tensor, nn

from deqff.units import COULOMB_EV_ANGSTROM

#: r_inner / r_outer. The switch spans the outer 40 % of r_outer: the full ZBL wall acts from 0.6 ×
#: the shortest distance seen in training (bonds in hot MD compress by far less before breaking), and
#: a wide switch keeps the switching force |d(s E)/dr| moderate (a narrow one makes a force spike).
INNER_FRACTION: float = 0.6
#: Fallback r_outer of element pairs the data never shows within the cutoff: this factor times the sum
#: of the covalent radii (0.50 Å for H-H, 1.06 Å for O-O): below a single bond, so a bond the data did
#: not contain is left alone, while the pair is still kept from collapsing...
FALLBACK_FACTOR: float = 0.8
#: ... and at most this fraction of the cutoff (r_outer must stay below it).
FALLBACK_MAX_CUTOFF_FRACTION: float = 0.9


def fallback_radii(atomic_numbers: list[int], cutoff: float) -> Tensor:
    """r_outer [S, S] Å (float64) for pairs without data: min(FALLBACK_FACTOR · (r_cov,i + r_cov,j),
    FALLBACK_MAX_CUTOFF_FRACTION · cutoff), covalent radii from ASE (Cordero et al. 2008)."""
    from ase.data import covalent_radii

    radii = torch.tensor([float(covalent_radii[z]) for z in atomic_numbers], dtype=torch.float64)
    pair = FALLBACK_FACTOR * (radii[:, None] + radii[None, :])
    return torch.clamp(pair, max=FALLBACK_MAX_CUTOFF_FRACTION * cutoff)


def zbl_energy(lengths: Tensor, z_i: Tensor, z_j: Tensor, coulomb: float) -> Tensor:
    """Unswitched ZBL pair energies [E] eV at distances lengths [E] Å, atomic numbers z_i, z_j [E] (float),
    coulomb = k_e in eV Å (COULOMB_EV_ANGSTROM; an argument and literals, because TorchScript cannot
    read module-level floats)."""
    a = 0.46850 / (torch.pow(z_i, 0.23) + torch.pow(z_j, 0.23))  # screening length, Å
    x = lengths / a
    phi = (
        0.18175 * torch.exp(-3.19980 * x)
        + 0.50986 * torch.exp(-0.94229 * x)
        + 0.28022 * torch.exp(-0.40290 * x)
        + 0.02817 * torch.exp(-0.20162 * x)
    )
    return coulomb * z_i * z_j / lengths * phi


def smooth_switch(lengths: Tensor, r_inner: Tensor, r_outer: Tensor) -> Tensor:
    """Quintic smoothstep [E]: 1 for r <= r_inner, 0 for r >= r_outer, C² in between."""
    t = torch.clamp((lengths - r_inner) / (r_outer - r_inner), 0.0, 1.0)
    return 1.0 - t * t * t * (10.0 + t * (-15.0 + 6.0 * t))


class ZBLRepulsion(nn.Module):
    """ZBL prior of a model with elements `atomic_numbers` [S]; see the module docstring.

    Buffers (model dtype): `numbers` [S] atomic numbers, `r_inner` and `r_outer` [S, S] Å (symmetric).
    Built with `r_outer` given (e.g. deqff.train.repulsion.fallback_radii) and refitted with `set_radii`.
    """

    def __init__(self, atomic_numbers: list[int], r_outer: Tensor, cutoff: float) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.inner_fraction = INNER_FRACTION
        self.coulomb = COULOMB_EV_ANGSTROM
        count = len(atomic_numbers)
        self.register_buffer("numbers", torch.tensor(atomic_numbers, dtype=torch.get_default_dtype()))
        self.register_buffer("r_inner", torch.zeros(count, count))
        self.register_buffer("r_outer", torch.zeros(count, count))
        self.set_radii(r_outer)

    @torch.jit.unused
    def set_radii(self, r_outer: Tensor) -> None:
        """Set r_outer [S, S] Å (symmetric, 0 < r_outer < cutoff) and r_inner = INNER_FRACTION · r_outer."""
        r_outer = torch.as_tensor(r_outer, dtype=torch.float64)
        count = self.numbers.shape[0]
        if tuple(r_outer.shape) != (count, count):
            raise ValueError(f"r_outer must be [{count}, {count}] (element pairs), got {list(r_outer.shape)}")
        if not torch.equal(r_outer, r_outer.T):
            raise ValueError("r_outer must be symmetric")
        if not bool((r_outer > 0).all()) or not bool((r_outer < self.cutoff).all()):
            raise ValueError(
                f"every r_outer must be in (0, cutoff = {self.cutoff} Å), got {r_outer.tolist()}"
            )
        with torch.no_grad():
            self.r_outer.copy_(r_outer.to(self.r_outer.dtype))
            self.r_inner.copy_((self.inner_fraction * r_outer).to(self.r_inner.dtype))

    def pair_energy(self, lengths: Tensor, species_i: Tensor, species_j: Tensor) -> Tensor:
        """Switched ZBL energies [E] eV of whole pairs at lengths [E] Å between species_i, species_j [E];
        exactly 0 at and beyond the pair's r_outer."""
        r_outer = self.r_outer[species_i, species_j]
        switch = smooth_switch(lengths, self.r_inner[species_i, species_j], r_outer)
        inside = lengths < r_outer
        # Unused lengths (outside) are replaced by r_outer so that no inf/NaN reaches the gradient.
        safe = torch.where(inside, lengths, r_outer)
        energy = zbl_energy(safe, self.numbers[species_i], self.numbers[species_j], self.coulomb) * switch
        return torch.where(inside, energy, torch.zeros_like(energy))

    def atom_energies(self, lengths: Tensor, species: Tensor, edge_index: Tensor) -> Tensor:
        """Per-atom energies [N] eV: half of each edge's pair energy to its receiver (edge_index [2, E],
        row 0 sender j, row 1 receiver i, both directions listed; lengths [E] Å; species [N])."""
        energy = 0.5 * self.pair_energy(lengths, species[edge_index[1]], species[edge_index[0]])
        out = torch.zeros(species.shape[0], dtype=energy.dtype, device=energy.device)
        return out.index_add(0, edge_index[1], energy)

    def forward(
        self, lengths: Tensor, species: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int
    ) -> Tensor:
        """Energy per graph [B] eV from edge lengths [E] Å, species [N], edge_index [2, E], batch [N]."""
        atom_energy = self.atom_energies(lengths, species, edge_index)
        out = torch.zeros(num_graphs, dtype=atom_energy.dtype, device=atom_energy.device)
        return out.index_add(0, batch, atom_energy)

    @torch.jit.unused
    def describe(self, elements: list[str]) -> str:
        """One line per element pair: 'H-H 0.973-1.622 Å' (r_inner-r_outer)."""
        parts = []
        for s in range(len(elements)):
            for t in range(s, len(elements)):
                inner, outer = float(self.r_inner[s, t]), float(self.r_outer[s, t])
                parts.append(f"{elements[s]}-{elements[t]} {inner:.3f}-{outer:.3f} Å")
        return ", ".join(parts)
