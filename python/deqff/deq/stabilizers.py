"""Per-solve reset of the stabilizers inside a DEQ function (normalised weights, dropout masks)."""

from torch import nn

from .dropout import VariationalDropout
from .norms import prepare_norms


def reset_stabilizers(func: nn.Module) -> None:
    """Recompute normalised weights once and draw new variational-dropout masks on next use."""
    prepare_norms(func)
    for module in func.modules():
        if isinstance(module, VariationalDropout):
            module.reset_mask()
