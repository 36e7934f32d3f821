"""Helpers of the training tests: a synthetic water-trimer dataset with consistent energies and forces
(a smooth pair potential plus known per-species shifts) and the path of configs/tiny_test.yaml."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deqff.data.dataset import Frames, default_metadata

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO_ROOT / "configs" / "tiny_test.yaml"

#: Per-species energy shifts of the synthetic data (eV), by atomic number.
SHIFTS = {1: -13.6, 6: -1030.0, 8: -2040.0}


def water_trimer() -> tuple[np.ndarray, np.ndarray]:
    """(z [9], R [9, 3] Å) of three water molecules about 3 Å apart."""
    oxygens = np.array([[0.0, 0.0, 0.0], [2.9, 0.2, 0.3], [1.3, 2.6, -0.4]])
    hydrogens = np.array([[0.76, 0.59, 0.0], [-0.76, 0.59, 0.0]])
    z, R = [], []
    for k, o in enumerate(oxygens):
        rot = np.linalg.qr(np.random.default_rng(k).normal(size=(3, 3)))[0]
        z += [8, 1, 1]
        R += [o, o + rot @ hydrogens[0], o + rot @ hydrogens[1]]
    return np.array(z), np.array(R)


def pair_energy(z: np.ndarray, R: torch.Tensor) -> torch.Tensor:
    """Smooth synthetic potential (eV): species shifts + Σ_{i<j} ε_ij exp(-r_ij / 0.8 Å) - 0.5 / r_ij^2."""
    zt = torch.as_tensor(z)
    eps = torch.where((zt[:, None] == 8) & (zt[None, :] == 8), 3.0, 1.0) + 0.5 * (zt[:, None] == zt[None, :])
    i, j = torch.triu_indices(len(z), len(z), 1)
    r = torch.linalg.norm(R[i] - R[j], dim=-1)
    pair = eps[i, j] * torch.exp(-r / 0.8) - 0.5 / r**2
    shift = sum(SHIFTS[int(n)] for n in z)
    return shift + pair.sum()


def labeled_frames(z: np.ndarray, R0: np.ndarray, n_frames: int, seed: int, noise: float = 0.08) -> Frames:
    """`n_frames` random displacements (σ = noise Å) of R0 labeled with `pair_energy` and its forces."""
    rng = np.random.default_rng(seed)
    R = R0[None] + noise * rng.normal(size=(n_frames, *R0.shape))
    energies, forces = [], []
    for positions in R:
        x = torch.tensor(positions, dtype=torch.float64, requires_grad=True)
        energy = pair_energy(z, x)
        (grad,) = torch.autograd.grad(energy, x)
        energies.append(float(energy.detach()))
        forces.append(-grad.numpy())
    return Frames(z=z, R=R, E=np.array(energies), F=np.stack(forces),
                  metadata=default_metadata(method="synthetic pair potential", seed=seed))  # fmt: skip
