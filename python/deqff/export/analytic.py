"""Analytic reference models that follow the exported-model conventions of deqff.

They let every host (OpenMM, the C++ runtime, LAMMPS) be tested against closed-form answers:

* `HarmonicTether`: E = k Σ_i |r_i|², plus a call counter kept as state (OpenMM convention:
  positions in nm, energy in kJ/mol; also a `compute_local` call in Å and eV). The counter is added
  to the energy (1 kJ/mol per call), so a host that keeps module state across calls shows it in the
  energy; forces stay -2 k r.
* `SmoothPairPotential`: E = Σ_{i<j} sqrt(s_i s_j) ε (1 - (r_ij / r_c)²)² for r_ij < r_c, with a
  per-species scale s. It has both the OpenMM `forward` and the `compute_local` neighbor-list call
  used by the C++ runtime and LAMMPS (Å, eV).

`python -m deqff.export.analytic --out DIR` writes both as exported model files.
(No `from __future__ import annotations` here: TorchScript must see real class annotations.)
"""

import argparse
from pathlib import Path

import torch
from torch import Tensor

from deqff.export.metadata import ModelMetadata, save_scripted
from deqff.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM


class HarmonicTether(torch.nn.Module):
    """E = k Σ|r|² + (number of calls so far) in kJ/mol, for positions [N, 3] in nm."""

    _metadata: dict[str, str]

    def __init__(self, k: float = 1.0, metadata: dict[str, str] | None = None) -> None:
        super().__init__()
        self.k = k
        self.kj_per_mol_per_ev = EV_TO_KJ_PER_MOL
        self.k_ev_per_a2 = k / (EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM * NM_TO_ANGSTROM)
        self.register_buffer("calls", torch.zeros((), dtype=torch.float64))
        self._metadata = metadata or {}

    def forward(self, positions: Tensor) -> Tensor:
        """positions [N, 3] nm -> energy [] kJ/mol."""
        with torch.no_grad():
            self.calls += 1.0
        return self.k * (positions * positions).sum() + self.calls.to(positions.dtype)

    @torch.jit.export
    def compute_local(
        self, positions: Tensor, species: Tensor, edge_index: Tensor, n_local: int
    ) -> tuple[Tensor, Tensor]:
        """Neighbor-list call (Å, eV): the same physics and counter; ghosts and edges play no part."""
        with torch.no_grad():
            self.calls += 1.0
        k = self.k_ev_per_a2
        local = positions[:n_local]
        atom_energy = k * (local * local).sum(dim=-1)
        atom_energy[0] += self.calls.to(positions.dtype) / self.kj_per_mol_per_ev
        forces = torch.zeros_like(positions)
        forces[:n_local] = -2.0 * k * local
        return atom_energy, forces

    @torch.jit.export
    def call_count(self) -> int:
        return int(self.calls.item())

    @torch.jit.export
    def reset(self) -> None:
        self.calls.zero_()

    @torch.jit.export
    def metadata(self) -> dict[str, str]:
        return self._metadata


class SmoothPairPotential(torch.nn.Module):
    """Smooth repulsive pair potential with per-species scales; OpenMM and neighbor-list calls."""

    _metadata: dict[str, str]

    def __init__(
        self,
        elements: list[str],
        scales: list[float],
        epsilon: float = 0.5,
        cutoff: float = 3.0,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        if len(elements) != len(scales):
            raise ValueError("one scale per element is needed")
        self.epsilon = epsilon  # eV
        self.cutoff = cutoff  # Å
        self.angstrom_per_nm = NM_TO_ANGSTROM
        self.kj_per_mol_per_ev = EV_TO_KJ_PER_MOL
        self.register_buffer("scales", torch.tensor(scales, dtype=torch.float64))
        self._metadata = metadata or {}

    def pair_energy(self, vectors: Tensor, species_i: Tensor, species_j: Tensor) -> Tensor:
        """vectors [E, 3] Å, species [E] -> pair energies [E] in eV (zero beyond the cutoff)."""
        r2 = (vectors * vectors).sum(dim=-1)
        x = 1.0 - r2 / (self.cutoff * self.cutoff)
        x = torch.where(x > 0.0, x, torch.zeros_like(x))
        strength = torch.sqrt(self.scales[species_i] * self.scales[species_j]).to(vectors.dtype)
        return self.epsilon * strength * x * x

    def forward(self, positions: Tensor) -> Tensor:
        """All pairs; every atom is the first element. positions [N, 3] nm -> energy [] kJ/mol."""
        n = positions.shape[0]
        species = torch.zeros(n, dtype=torch.long, device=positions.device)
        pairs = torch.triu_indices(n, n, offset=1, device=positions.device)
        i = pairs[0]
        j = pairs[1]
        vectors = (positions[j] - positions[i]) * self.angstrom_per_nm
        return self.pair_energy(vectors, species[i], species[j]).sum() * self.kj_per_mol_per_ev

    @torch.jit.export
    def compute_local(
        self, positions: Tensor, species: Tensor, edge_index: Tensor, n_local: int
    ) -> tuple[Tensor, Tensor]:
        """Neighbor-list call of the C++ runtime.

        positions [N_all, 3] Å; species [N_all]; edge_index [2, E] with row 0 a local atom i and row 1
        its neighbor j (full list); returns (atom energies [n_local] eV, forces [N_all, 3] eV/Å).
        Each edge gives half its pair energy to its first atom, so a full list counts each pair once.
        """
        positions = positions.detach().requires_grad_(True)
        i = edge_index[0]
        j = edge_index[1]
        half = 0.5 * self.pair_energy(positions[j] - positions[i], species[i], species[j])
        atom_energy = torch.zeros(n_local, dtype=positions.dtype, device=positions.device).index_add(
            0, i, half
        )
        grad = torch.autograd.grad([atom_energy.sum()], [positions], allow_unused=True)[0]
        forces = torch.zeros_like(positions) if grad is None else -grad
        return atom_energy.detach(), forces.detach()

    @torch.jit.export
    def reset(self) -> None:
        pass

    @torch.jit.export
    def metadata(self) -> dict[str, str]:
        return self._metadata


def export_harmonic_tether(path: str | Path, k: float = 1.0) -> Path:
    """Write a scripted `HarmonicTether` with deqff metadata."""
    meta = ModelMetadata(model_type="analytic", elements=["H"], cutoff=1.0, force_mode="analytic")
    return save_scripted(torch.jit.script(HarmonicTether(k, meta.as_strings())), path, meta)


def export_smooth_pair(
    path: str | Path,
    elements: tuple[str, ...] = ("H", "C", "O"),
    scales: tuple[float, ...] = (1.0, 2.0, 3.0),
    epsilon: float = 0.5,
    cutoff: float = 3.0,
    format_version: int | None = None,
) -> Path:
    """Write a scripted `SmoothPairPotential` with deqff metadata (format_version only for tests)."""
    meta = ModelMetadata(model_type="analytic", elements=list(elements), cutoff=cutoff, force_mode="analytic")
    if format_version is not None:
        meta.format_version = format_version
    model = SmoothPairPotential(list(elements), list(scales), epsilon, cutoff, meta.as_strings())
    return save_scripted(torch.jit.script(model), path, meta)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the analytic reference models as exported deqff files."
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    args = parser.parse_args(argv)
    print(export_harmonic_tether(args.out / "harmonic_tether.pt"))
    print(export_smooth_pair(args.out / "smooth_pair.pt"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
