"""Radial features of edges: Bessel basis times a smooth polynomial cutoff envelope.

The envelope and its first two derivatives vanish at the cutoff, so energies and forces are smooth
when atoms cross it.
"""

import math

import torch
from torch import Tensor


class PolynomialEnvelope(torch.nn.Module):
    """u(r) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2), x = r / r_c; 0 beyond r_c."""

    def __init__(self, cutoff: float, p: int = 6) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = float(p)

    def forward(self, r: Tensor) -> Tensor:
        """r [E] Å -> envelope [E]."""
        x = r / self.cutoff
        p = self.p
        value = (
            1.0
            - 0.5 * (p + 1.0) * (p + 2.0) * x.pow(p)
            + p * (p + 2.0) * x.pow(p + 1.0)
            - 0.5 * p * (p + 1.0) * x.pow(p + 2.0)
        )
        return torch.where(x < 1.0, value, torch.zeros_like(value))


class BesselBasis(torch.nn.Module):
    """b_n(r) = sqrt(2 / r_c) sin(n π r / r_c) / r, n = 1..num_basis (frequencies optionally trainable)."""

    def __init__(self, cutoff: float, num_basis: int = 8, trainable: bool = False) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.prefactor = math.sqrt(2.0 / cutoff)
        frequencies = torch.arange(1, num_basis + 1, dtype=torch.get_default_dtype()) * math.pi / cutoff
        self.frequencies = torch.nn.Parameter(frequencies, requires_grad=trainable)

    def forward(self, r: Tensor) -> Tensor:
        """r [E] Å -> basis [E, num_basis]."""
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.frequencies.to(r.dtype) * r) / r


class RadialEmbedding(torch.nn.Module):
    """Bessel basis times the cutoff envelope: r [E] -> [E, num_basis]."""

    def __init__(self, cutoff: float, num_basis: int = 8, p: int = 6) -> None:
        super().__init__()
        self.num_basis = num_basis
        self.basis = BesselBasis(cutoff, num_basis)
        self.envelope = PolynomialEnvelope(cutoff, p)

    def forward(self, r: Tensor) -> Tensor:
        return self.basis(r) * self.envelope(r).unsqueeze(-1)
