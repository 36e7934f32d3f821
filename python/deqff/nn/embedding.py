"""Node embeddings: species (scalar) embedding and the edge-degree embedding of EquiformerV2."""

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from torch import Tensor

from deqff.nn.irreps_tools import channel_index
from deqff.nn.scatter import scatter_sum


class SpeciesEmbedding(torch.nn.Module):
    """species [N] (indices into the model's element list) -> scalar features [N, num_scalars]."""

    def __init__(self, num_species: int, num_scalars: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(num_species, num_scalars)

    def forward(self, species: Tensor) -> Tensor:
        return self.embedding(species)


class ScalarHarmonicsProduct(torch.nn.Module):
    """e3nn's FullyConnectedTensorProduct `tp` of scalars and spherical harmonics with per-edge weights,
    evaluated path by path: out_p[e, w, k] = Σ_u s[e, u] W_p[e, u, w] · Σ_m Y_l[e, m] c_p C_p[m, k]
    (one batched product and one broadcast per path; c_p C_p the path weight times the Wigner 3j symbol
    of 0 ⊗ l -> l). Equal to `tp(s, Y, W)` in value and gradients (tests/models/test_fast_block.py);
    e3nn slices W per path, and each slice's backward fills a zero tensor of all the weights ([E, 640] on
    aspirin, three times per backward), while `torch.split` hands the path gradients to one
    concatenation. No parameters or persistent buffers: state dicts are unchanged.

    scalars [E, S], edge_sh [E, irreps_in2.dim], weights [E, tp.weight_numel] -> [E, irreps_out.dim].
    """

    path_mul: list[int]
    path_sh_start: list[int]
    path_dim: list[int]
    path_weight_numel: list[int]
    path_coupling_start: list[int]
    block_path: list[int]
    block_size: list[int]

    def __init__(self, tp: o3.TensorProduct) -> None:
        super().__init__()
        irreps_in1, irreps_in2, irreps_out = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
        if len(irreps_in1) != 1 or irreps_in1[0].ir != o3.Irrep("0e"):
            raise ValueError(
                f"ScalarHarmonicsProduct needs one block of scalars as first input, got {irreps_in1}"
            )
        if any(mul != 1 for mul, _ in irreps_in2):
            raise ValueError(
                f"ScalarHarmonicsProduct needs multiplicity 1 in the harmonics, got {irreps_in2}"
            )
        if tp.shared_weights:
            raise ValueError("ScalarHarmonicsProduct needs per-edge weights (shared_weights=False)")
        targets = [ins.i_out for ins in tp.instructions]
        if len(set(targets)) != len(targets):
            raise ValueError("ScalarHarmonicsProduct needs at most one path per output block")
        # Output block b comes from path block_path[b], or is zero (-1: no harmonic of its degree).
        self.block_path = [targets.index(b) if b in targets else -1 for b in range(len(irreps_out))]
        self.block_size = [mul * ir.dim for mul, ir in irreps_out]
        sh_starts = [piece.start for piece in irreps_in2.slices()]
        self.num_scalars = irreps_in1.dim
        self.path_mul, self.path_sh_start, self.path_dim, self.path_weight_numel = [], [], [], []
        couplings = []
        for ins in tp.instructions:
            if ins.connection_mode != "uvw" or not ins.has_weight:
                raise ValueError(f"ScalarHarmonicsProduct supports weighted 'uvw' paths only, got {ins}")
            ir = irreps_in2[ins.i_in2].ir
            if irreps_out[ins.i_out].ir != ir:
                raise ValueError(f"ScalarHarmonicsProduct: path {ins} does not map l to l")
            mul = irreps_out[ins.i_out].mul
            self.path_mul.append(mul)
            self.path_sh_start.append(sh_starts[ins.i_in2])
            self.path_dim.append(ir.dim)
            self.path_weight_numel.append(self.num_scalars * mul)
            w3j = o3.wigner_3j(0, ir.l, ir.l, dtype=torch.float64)[0]  # [d, d]
            couplings.append((float(ins.path_weight) * w3j).reshape(-1))
        self.path_coupling_start = [0]
        for coupling in couplings[:-1]:
            self.path_coupling_start.append(self.path_coupling_start[-1] + coupling.numel())
        self.register_buffer("coupling", torch.cat(couplings), persistent=False)

    def forward(self, scalars: Tensor, edge_sh: Tensor, weights: Tensor) -> Tensor:
        num_edges = scalars.shape[0]
        chunks = torch.split(weights, self.path_weight_numel, dim=1)
        rows = scalars.unsqueeze(1)  # [E, 1, S]
        paths: list[Tensor] = []
        for p, chunk in enumerate(chunks):
            mul, dim, start = self.path_mul[p], self.path_dim[p], self.path_sh_start[p]
            first = self.path_coupling_start[p]
            coupling = self.coupling[first : first + dim * dim].view(dim, dim).to(edge_sh.dtype)
            channels = torch.bmm(rows, chunk.view(num_edges, self.num_scalars, mul)).view(num_edges, mul, 1)
            harmonics = (edge_sh[:, start : start + dim] @ coupling).view(num_edges, 1, dim)
            paths.append((channels * harmonics).view(num_edges, mul * dim))
        outputs: list[Tensor] = []
        for b, path in enumerate(self.block_path):
            if path >= 0:
                outputs.append(paths[path])
            else:
                outputs.append(weights.new_zeros((num_edges, self.block_size[b])))
        return torch.cat(outputs, dim=1)


class EdgeDegreeEmbedding(torch.nn.Module):
    """Initial features of all orders from each atom's neighborhood:
    x_i = Σ_j TP(s_j, Y(r̂_ij); w(r_ij)) / sqrt(avg_num_neighbors), with s_j the sender's species
    scalars (a sum of terms of random sign grows like the square root of their number; dividing by
    the number itself left the l > 0 features ~10x smaller than the scalars and the forces small).

    Inputs: species scalars [N, S], edge_index [2, E] (sender, receiver), edge SH [E, irreps_sh.dim],
    radial embedding [E, num_basis]. Output [N, irreps_out.dim].
    """

    def __init__(
        self,
        irreps_scalars: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_out: o3.Irreps,
        num_basis: int,
        radial_hidden: int,
        avg_num_neighbors: float,
        radial_layers: int = 1,
    ) -> None:
        super().__init__()
        self.tp = o3.FullyConnectedTensorProduct(
            irreps_scalars, irreps_sh, irreps_out, shared_weights=False, internal_weights=False
        )
        self.product = ScalarHarmonicsProduct(self.tp)
        self.radial = FullyConnectedNet(
            [num_basis] + [radial_hidden] * radial_layers + [self.tp.weight_numel], torch.nn.functional.silu
        )
        self.inv_sqrt_num_neighbors = avg_num_neighbors**-0.5

    def forward(self, scalars: Tensor, edge_index: Tensor, edge_sh: Tensor, edge_radial: Tensor) -> Tensor:
        sender = edge_index[0]
        receiver = edge_index[1]
        messages = self.product(scalars[sender], edge_sh, self.radial(edge_radial))
        return scatter_sum(messages, receiver, scalars.shape[0]) * self.inv_sqrt_num_neighbors


def sh_component_index(irreps_sh: o3.Irreps, irreps_out: o3.Irreps) -> torch.Tensor:
    """For every component of irreps_out, the index of the spherical-harmonic component (same l, same
    m) in a feature of irreps_sh: [irreps_out.dim]. Each output irrep must be one the harmonics have
    (l <= their l_max, parity (-1)^l)."""
    offsets = {}
    start = 0
    for mul, ir in o3.Irreps(irreps_sh):
        offsets[(ir.l, ir.p)] = start
        start += mul * ir.dim
    index = []
    for mul, ir in o3.Irreps(irreps_out):
        if (ir.l, ir.p) not in offsets:
            raise ValueError(
                f"edge_embedding 'channelwise' makes each output irrep as a scalar times a spherical "
                f"harmonic, which has no {ir} (harmonics {irreps_sh}); use edge_embedding 'full' or "
                "irreps_node of parities (-1)^l up to lmax_sh"
            )
        for _ in range(mul):
            index.extend(range(offsets[(ir.l, ir.p)], offsets[(ir.l, ir.p)] + ir.dim))
    return torch.tensor(index, dtype=torch.long)


class ChannelwiseEdgeEmbedding(torch.nn.Module):
    """The edge-degree embedding with channel-wise radial weights (as MACE's first interaction):
    x_i = Mix(Σ_j Σ_k (s_j A)_ck R_ck(r_ij) Y_l(c)(r̂_ij)) / sqrt(avg_num_neighbors), `rank` radial
    functions per output channel c instead of one per pair of input and output channels, and a linear
    mix of the channels of each l after the sum. The sender's scalars s_j come from its species, so with
    `rank` = the number of species this spans every function EdgeDegreeEmbedding's full tensor product
    can make (one radial function per channel and sender species) with a ~1/10 of its parameters
    (radial output 56 x 3 instead of 32 x 56 at 32x0e + 16x1o + 8x2e and three elements).

    Inputs: species scalars [N, S], edge_index [2, E] (sender, receiver), edge SH [E, irreps_sh.dim],
    radial embedding [E, num_basis]. Output [N, irreps_out.dim].
    """

    def __init__(
        self,
        irreps_scalars: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_out: o3.Irreps,
        num_basis: int,
        radial_hidden: int,
        avg_num_neighbors: float,
        radial_layers: int = 1,
        rank: int = 1,
    ) -> None:
        super().__init__()
        irreps_out = o3.Irreps(irreps_out)
        self.num_channels = irreps_out.num_irreps
        self.rank = rank
        self.register_buffer("sh_index", sh_component_index(irreps_sh, irreps_out), persistent=False)
        self.register_buffer("channel", channel_index(irreps_out), persistent=False)
        self.species = torch.nn.Linear(o3.Irreps(irreps_scalars).dim, self.num_channels * rank, bias=False)
        self.radial = FullyConnectedNet(
            [num_basis] + [radial_hidden] * radial_layers + [self.num_channels * rank],
            torch.nn.functional.silu,
        )
        self.mix = o3.Linear(irreps_out, irreps_out)
        self.inv_sqrt_num_neighbors = avg_num_neighbors**-0.5

    def forward(self, scalars: Tensor, edge_index: Tensor, edge_sh: Tensor, edge_radial: Tensor) -> Tensor:
        sender = edge_index[0]
        receiver = edge_index[1]
        products = self.species(scalars).index_select(0, sender) * self.radial(edge_radial)  # [E, C * rank]
        weights = products.view(-1, self.num_channels, self.rank).sum(-1)  # [E, C]
        messages = weights.index_select(1, self.channel) * edge_sh.index_select(1, self.sh_index)
        summed = scatter_sum(messages, receiver, scalars.shape[0]) * self.inv_sqrt_num_neighbors
        return self.mix(summed)
