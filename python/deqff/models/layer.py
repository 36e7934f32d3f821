"""The implicit function of the DEQ and the layer of the explicit stack: the same module.

f(z, inputs) = Blocks(inject(z, x)): input injection as in DEQuiformer (Eq. 8: add the embedding x to
the state and rescale each atom's vector to the embedding's norm), then `blocks_per_layer` equivariant
blocks. inputs: "injection" [N, D], "edge_index" [2, E], "edge_sh" [E, S], "edge_radial" [E, K], and
after `prepare` the per-edge terms of every block ("edge_terms_<k>_<j>", j < the block's
`num_edge_terms`), which depend only on the geometry and are therefore computed once per geometry, not
once per application of f. Each term is its own tensor (not one flat tensor split per application: the
backward of a split concatenates, and the double backward of force training slices, tensors the size of
all terms).
"""

import torch
from torch import Tensor


def inject(z: Tensor, x: Tensor, eps: float = 1e-9) -> Tensor:
    """(z + x) rescaled per row to |x|: [N, D], [N, D] -> [N, D]; equivariant (norms are invariant)."""
    s = z + x
    return s * (torch.linalg.norm(x, dim=-1) / (torch.linalg.norm(s, dim=-1) + eps)).unsqueeze(-1)


def edge_terms_key(block: int, term: int) -> str:
    """Key of block `block`'s per-edge term `term` in a prepared inputs dict."""
    return "edge_terms_" + str(block) + "_" + str(term)


class InjectedLayer(torch.nn.Module):
    """z [N, D] -> f(z, inputs) [N, D]; satisfies the deqff.deq DEQFunction contract once `inputs`
    went through `prepare`."""

    def __init__(self, blocks: torch.nn.ModuleList) -> None:
        super().__init__()
        self.blocks = blocks

    def prepare(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """A copy of `inputs` with every block's per-edge terms added (keys `edge_terms_key(k, j)`)."""
        out = dict(inputs)
        for k, block in enumerate(self.blocks):
            terms = block.edge_terms(inputs["edge_radial"], inputs["edge_sh"])
            for j, term in enumerate(terms):
                out[edge_terms_key(k, j)] = term
        return out

    def forward(self, z: Tensor, inputs: dict[str, Tensor]) -> Tensor:
        h = inject(z, inputs["injection"])
        edge_index = inputs["edge_index"]
        edge_sh = inputs["edge_sh"]
        for k, block in enumerate(self.blocks):
            terms = [inputs[edge_terms_key(k, j)] for j in range(block.num_edge_terms)]
            h = block(h, edge_index, edge_sh, terms, inputs["injection"])
        return h
