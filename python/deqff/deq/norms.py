"""Weight / spectral normalisation for DEQ layers, computed once per solve (not once per iteration).

`apply_norm` moves a module's parameter into a normaliser child and leaves a plain buffer of the same
name that its forward keeps using; `prepare_norms` refreshes those buffers (DEQ calls it once per
forward, so every solver iteration and the gradient step share one normalised weight).
Between `prepare_norms` and the next backward the buffers carry the weight's graph: call
`detach_norms` before deepcopy, and `remove_norms` (bakes the weights) before scripting/export.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.functional import normalize


class _Normalizer(nn.Module):
    """Owns the raw parameters of one host weight `target` and computes its normalised value."""

    target: str

    def forward(self) -> Tensor:
        raise NotImplementedError


class WeightNorm(_Normalizer):
    """w = g * v / |v|, norms over all dims but `dim` (dim=-1: whole tensor); learnable g, initialised
    so that w equals the original weight. clip_value bounds |g|."""

    def __init__(
        self,
        weight: Tensor,
        target: str = "weight",
        dim: int = 0,
        learn_scale: bool = True,
        clip_value: float | None = None,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.target, self.dim, self.clip_value, self.eps = target, dim, clip_value, eps
        self.weight_v = nn.Parameter(weight.detach().clone())
        g = torch.norm_except_dim(self.weight_v.detach(), 2, dim).clone()
        if learn_scale:
            self.weight_g = nn.Parameter(g)
        else:
            self.register_buffer("weight_g", g)

    def forward(self) -> Tensor:
        g = self.weight_g
        if self.clip_value is not None:
            g = g.clamp(-self.clip_value, self.clip_value)
        return self.weight_v * (g / (torch.norm_except_dim(self.weight_v, 2, self.dim) + self.eps))


class SpectralNorm(_Normalizer):
    """w = s * W / sigma(W): spectral norm s (learnable scalar, default 1; clip_value bounds |s|).
    sigma by power iteration along `dim` (the output dim), n_power_iterations per call in training."""

    def __init__(
        self,
        weight: Tensor,
        target: str = "weight",
        dim: int = 0,
        learn_scale: bool = True,
        scale: float = 1.0,
        clip_value: float | None = None,
        n_power_iterations: int = 1,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.target, self.dim, self.clip_value, self.eps = target, dim, clip_value, eps
        self.n_power_iterations = n_power_iterations
        self.weight_orig = nn.Parameter(weight.detach().clone())
        mat = self._matrix(self.weight_orig.detach())
        self.register_buffer("u", normalize(torch.randn_like(mat[:, 0]), dim=0, eps=eps))
        self.register_buffer("v", normalize(torch.randn_like(mat[0]), dim=0, eps=eps))
        self._power_iteration(mat, 100)
        s = torch.tensor(float(scale), dtype=weight.dtype, device=weight.device)
        if learn_scale:
            self.scale = nn.Parameter(s)
        else:
            self.register_buffer("scale", s)

    def _matrix(self, w: Tensor) -> Tensor:
        if self.dim != 0:
            w = w.movedim(self.dim, 0)
        return w.reshape(w.shape[0], -1)

    @torch.no_grad()
    def _power_iteration(self, mat: Tensor, n: int) -> None:
        for _ in range(n):
            self.v.copy_(normalize(mat.t() @ self.u, dim=0, eps=self.eps))
            self.u.copy_(normalize(mat @ self.v, dim=0, eps=self.eps))

    def forward(self) -> Tensor:
        mat = self._matrix(self.weight_orig)
        if self.training:
            self._power_iteration(mat.detach(), self.n_power_iterations)
        sigma = torch.dot(self.u.clone(), mat @ self.v.clone())
        s = self.scale
        if self.clip_value is not None:
            s = s.clamp(-self.clip_value, self.clip_value)
        return self.weight_orig * (s / sigma)


_KINDS = {"weight_norm": WeightNorm, "spectral_norm": SpectralNorm}


def apply_norm(
    module: nn.Module, kind: str = "weight_norm", names: Sequence[str] = ("weight",), **kwargs: object
) -> nn.Module:
    """Normalise the parameters `names` of `module` (kind: "weight_norm" | "spectral_norm"); kwargs go
    to WeightNorm / SpectralNorm. Returns the module."""
    if kind not in _KINDS:
        raise ValueError(f"kind={kind!r}: choose from {sorted(_KINDS)}")
    for name in names:
        weight = module._parameters.get(name)
        if weight is None:
            raise ValueError(f"{type(module).__name__} has no parameter {name!r} to normalise")
        del module._parameters[name]
        norm = _KINDS[kind](weight, target=name, **kwargs)
        module.add_module(f"{name}_norm", norm)
        with torch.no_grad():
            module.register_buffer(name, norm(), persistent=False)
    return module


def _normalizers(root: nn.Module):
    for host in root.modules():
        for child in host.children():
            if isinstance(child, _Normalizer):
                yield host, child


def prepare_norms(root: nn.Module) -> None:
    """Recompute every normalised weight under `root` once (with graph if grad is enabled)."""
    for host, norm in _normalizers(root):
        setattr(host, norm.target, norm())


def detach_norms(root: nn.Module) -> None:
    """Drop the graphs held by the normalised weights (values unchanged)."""
    for host, norm in _normalizers(root):
        setattr(host, norm.target, getattr(host, norm.target).detach())


def remove_norms(root: nn.Module) -> None:
    """Bake each normalised weight back into a plain parameter and delete the normaliser."""
    for host, norm in list(_normalizers(root)):
        with torch.no_grad():
            weight = norm().detach().clone()
        delattr(host, norm.target)
        delattr(host, f"{norm.target}_norm")
        host.register_parameter(norm.target, nn.Parameter(weight))
