"""Small fixed-point problems for the deqff.deq tests (float64, scriptable)."""

import torch
from torch import Tensor, nn

from deqff.deq import segment_sum

DTYPE = torch.float64


def _with_norm(W: Tensor, rho: float) -> Tensor:
    return rho * W / torch.linalg.matrix_norm(W, 2)


class LinearMap(nn.Module):
    """f(z) = z W + x (row-wise); ||W||_2 = rho. Fixed point z* = x (I - W)^-1."""

    def __init__(self, dim: int, rho: float = 0.9, symmetric: bool = True, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        A = torch.randn(dim, dim, generator=gen, dtype=DTYPE)
        if symmetric:  # eigenvalues spread over (0.1, rho): slow for fixed-point iteration
            Q, _ = torch.linalg.qr(A)
            A = Q @ torch.diag(torch.linspace(0.1, rho, dim, dtype=DTYPE)) @ Q.T
        self.W = nn.Parameter(_with_norm(A, rho))

    def forward(self, z: Tensor, inputs: dict[str, Tensor]) -> Tensor:
        return z @ self.W + inputs["x"]

    def exact(self, x: Tensor) -> Tensor:
        eye = torch.eye(self.W.shape[0], dtype=DTYPE)
        return torch.linalg.solve((eye - self.W.detach()).T, x.T).T


class TanhMap(nn.Module):
    """f(z) = tanh(s[segment] * (z W) + 0.3 * mean_segment(z) V + x): rows of a segment interact,
    segments do not, and each segment has its own contraction s (inputs "segment", "scale", "count")."""

    def __init__(self, dim: int, rho: float = 0.6, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(_with_norm(torch.randn(dim, dim, generator=gen, dtype=DTYPE), rho))
        self.V = nn.Parameter(_with_norm(torch.randn(dim, dim, generator=gen, dtype=DTYPE), 1.0))

    def forward(self, z: Tensor, inputs: dict[str, Tensor]) -> Tensor:
        segment = inputs["segment"]
        count = inputs["count"]
        mean = segment_sum(z, segment, count.shape[0]) / count.unsqueeze(1)
        s = inputs["scale"].index_select(0, segment).unsqueeze(1)
        return torch.tanh(s * (z @ self.W) + 0.3 * mean.index_select(0, segment) @ self.V + inputs["x"])


def batch(sizes: list[int], dim: int, seed: int = 1, scales: list[float] | None = None):
    """(inputs, segment, num_segments) for segments of the given sizes; x ~ N(0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    segment = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    x = torch.randn(int(sum(sizes)), dim, generator=gen, dtype=DTYPE)
    scale = torch.tensor(scales if scales is not None else [1.0] * len(sizes), dtype=DTYPE)
    inputs = {
        "x": x,
        "segment": segment,
        "count": torch.tensor(sizes, dtype=DTYPE),
        "scale": scale,
    }
    return inputs, segment, len(sizes)


def select(inputs: dict[str, Tensor], segment: Tensor, b: int) -> dict[str, Tensor]:
    """The inputs of segment b alone (as a one-segment problem)."""
    rows = segment == b
    return {
        "x": inputs["x"][rows],
        "segment": torch.zeros(int(rows.sum()), dtype=torch.long),
        "count": inputs["count"][b : b + 1],
        "scale": inputs["scale"][b : b + 1],
    }
