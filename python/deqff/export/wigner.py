"""Wigner-D matrices of e3nn irreps from a rotation matrix, in TorchScript.

e3nn's `Irreps.D_from_matrix` goes through Euler angles and is not scriptable. Here D is built from
the Cartesian rotation R [3, 3] as a polynomial: the degree-l spherical harmonics are homogeneous
polynomials, Y_l(x) = T_l vec(x ⊗ ... ⊗ x) with a constant T_l [2l+1, 3^l], so Y_l(R x) = D_l(R) Y_l(x)
gives

    D_l(R) = T_l (R ⊗ ... ⊗ R) T_l^+          (l factors; T_l^+ the pseudo-inverse, T_l T_l^+ = 1)

(on symmetric tensors, which T_l^+ maps into). T_l is fitted once at export time from e3nn's own
`o3.spherical_harmonics`, so the basis convention is e3nn's by construction (in e3nn 0.6, D_1(R) = R
in (x, y, z) order; older e3nn used (y, z, x)), and `tests/export/test_export_wigner.py` checks
D_l(R) against `D_from_matrix`. Only proper rotations (det R = +1) are meant: the parity of an
irrep is ignored.

(No `from __future__ import annotations` here: TorchScript must see real annotations.)
"""

import torch
from e3nn import o3
from torch import Tensor, nn


def harmonic_tensor(degree: int, samples: int = 64, seed: int = 0) -> Tensor:
    """T_l [2l+1, 3^l] float64 (l = degree), symmetric in its l Cartesian indices, with
    o3.spherical_harmonics(l, x, normalize=False) == T_l @ vec(x^{⊗l})."""
    generator = torch.Generator().manual_seed(seed)
    points = torch.randn(max(samples, 4 * 3**degree), 3, generator=generator, dtype=torch.float64)
    powers = torch.ones(points.shape[0], 1, dtype=torch.float64)
    for _ in range(degree):
        powers = (powers[:, :, None] * points[:, None, :]).reshape(points.shape[0], -1)
    values = o3.spherical_harmonics(degree, points, normalize=False)
    # Minimum-norm least squares: the solution lies in the span of symmetric tensors.
    return (torch.linalg.pinv(powers) @ values).T.contiguous()


def kron_power(matrix: Tensor, power: int) -> Tensor:
    """matrix ⊗ ... ⊗ matrix (`power` factors; [1, 1] ones for power 0), in the order of
    vec(x ⊗ y) = (x[:, None] * y).ravel()."""
    out = torch.ones((1, 1), dtype=matrix.dtype, device=matrix.device)
    for _ in range(power):
        out = torch.kron(out, matrix)
    return out


class WignerBlock(nn.Module):
    """D_l(R) of one degree l, from the constant T_l and T_l^+ (buffers)."""

    def __init__(self, degree: int) -> None:
        super().__init__()
        self.degree = degree
        basis = harmonic_tensor(degree)
        self.register_buffer("basis", basis)
        self.register_buffer("inverse", torch.linalg.pinv(basis))

    def forward(self, rotation: Tensor) -> Tensor:
        """rotation [3, 3] -> D_l [2l+1, 2l+1] (the rotation's dtype)."""
        basis = self.basis.to(rotation.dtype)
        inverse = self.inverse.to(rotation.dtype)
        return basis @ kron_power(rotation, self.degree) @ inverse


class IrrepsRotation(nn.Module):
    """Rotates features laid out as e3nn irreps (e.g. "16x0e + 8x1o + 4x2e"), feature-last.

    `matrix(R)` is the block-diagonal D(R) [dim, dim]; `rotate(x, R)` applies it to x [..., dim]
    block by block (x @ D(R)^T without building the full matrix). D is orthogonal: D(R)^T = D(R^T).
    """

    degrees: list[int]
    block_degree: list[int]
    block_mul: list[int]

    def __init__(self, irreps: str) -> None:
        super().__init__()
        parsed = o3.Irreps(irreps)
        self.irreps = str(parsed)
        self.dim = parsed.dim
        self.degrees = sorted({ir.l for _, ir in parsed})
        self.blocks = nn.ModuleList([WignerBlock(degree) for degree in self.degrees])
        self.block_degree = [ir.l for _, ir in parsed]
        self.block_mul = [mul for mul, _ in parsed]

    def matrices(self, rotation: Tensor) -> list[Tensor]:
        """D_l(R) for each degree in `degrees`."""
        out: list[Tensor] = []
        for block in self.blocks:
            out.append(block(rotation))
        return out

    @torch.jit.export
    def matrix(self, rotation: Tensor) -> Tensor:
        """Block-diagonal D(R) [dim, dim] of the whole irreps (the rotation's dtype)."""
        per_degree = self.matrices(rotation)
        out = torch.zeros((self.dim, self.dim), dtype=rotation.dtype, device=rotation.device)
        start = 0
        for index in range(len(self.block_degree)):
            d = per_degree[self.degrees.index(self.block_degree[index])]
            size = d.shape[0]
            for _ in range(self.block_mul[index]):
                out[start : start + size, start : start + size] = d
                start += size
        return out

    @torch.jit.export
    def rotate(self, x: Tensor, rotation: Tensor) -> Tensor:
        """x [..., dim] -> x @ D(R)^T (each irrep copy rotated), in x's dtype."""
        per_degree = self.matrices(rotation.to(torch.float64))
        parts: list[Tensor] = []
        start = 0
        lead: list[int] = list(x.shape[:-1])
        for index in range(len(self.block_degree)):
            d = per_degree[self.degrees.index(self.block_degree[index])].to(x.dtype)
            size = d.shape[0]
            mul = self.block_mul[index]
            chunk = x[..., start : start + mul * size].reshape(lead + [mul, size])  # noqa: RUF005 (TorchScript has no [*a, b])
            parts.append((chunk @ d.T).reshape(lead + [mul * size]))  # noqa: RUF005
            start += mul * size
        return torch.cat(parts, dim=-1)
