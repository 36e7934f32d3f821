"""The block's fast evaluations equal e3nn's definitions: the tensor product as a per-edge operator,
the gate, the norm, the linear on merged message irreps, the many-body product's channel-wise square
(values and gradients, float64, scripted)."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from deqff.nn.attention import EquivariantGraphAttention, message_irreps
from deqff.nn.block import GatedFeedForward, ManyBodyProduct
from deqff.nn.edge_operator import EdgeTensorProduct
from deqff.nn.embedding import ScalarHarmonicsProduct
from deqff.nn.norm import EquivariantLayerNorm
from deqff.nn.square import ChannelwiseSquare, channelwise_square

IRREPS = ["16x0e + 8x1o + 4x2e", "8x0e + 4x1o", "6x0e + 4x1o + 2x2e + 2x3o"]


def edge_tensor_product(irreps_node: str, lmax_sh: int) -> o3.TensorProduct:
    """e3nn's tensor product with its Wigner 3j constants computed in float64 (not rounded to float32)."""
    irreps_sh = o3.Irreps.spherical_harmonics(lmax_sh)
    irreps_message, instructions = message_irreps(o3.Irreps(irreps_node), irreps_sh)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return o3.TensorProduct(
            irreps_node, irreps_sh, irreps_message, instructions, shared_weights=False, internal_weights=False
        )
    finally:
        torch.set_default_dtype(default)


def assert_same_values_and_gradients(
    result: torch.Tensor, expected: torch.Tensor, inputs: list[torch.Tensor]
) -> None:
    """result == expected (float64 round-off), and so are their vector-Jacobian products with one random
    probe with respect to every tensor of `inputs`."""
    assert torch.allclose(result, expected, atol=1e-12, rtol=0)
    probe = torch.randn_like(expected)
    grads = torch.autograd.grad((expected * probe).sum(), inputs, retain_graph=True)
    fast_grads = torch.autograd.grad((result * probe).sum(), inputs)
    for grad, fast in zip(grads, fast_grads, strict=True):
        assert torch.allclose(fast, grad, atol=1e-11, rtol=0)


@pytest.mark.parametrize("irreps_node", IRREPS)
@pytest.mark.parametrize("lmax_sh", [1, 2, 3])
def test_edge_operator_equals_tensor_product(irreps_node: str, lmax_sh: int) -> None:
    torch.manual_seed(0)
    tp = edge_tensor_product(irreps_node, lmax_sh)
    operator = torch.jit.script(EdgeTensorProduct(tp))
    edges = 17
    x = torch.randn(edges, tp.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    vectors = torch.randn(edges, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(edges, tp.weight_numel, dtype=torch.float64, requires_grad=True)
    sh = o3.spherical_harmonics(tp.irreps_in2, vectors, normalize=True)
    assert_same_values_and_gradients(
        operator.apply(x, operator.build(sh, weights)), tp(x, sh, weights), [x, vectors, weights]
    )


@pytest.mark.parametrize("irreps_out", [*IRREPS, "4x1o + 8x0e + 2x1e"])
@pytest.mark.parametrize("lmax_sh", [1, 2])
def test_scalar_harmonics_product_equals_tensor_product(irreps_out: str, lmax_sh: int) -> None:
    """The edge-degree embedding's product, path by path, equals e3nn's FullyConnectedTensorProduct
    (values and gradients with respect to scalars, edge vectors and weights; scripted), also for
    outputs out of order or without a harmonic of their degree (zero)."""
    torch.manual_seed(0)
    irreps_sh = o3.Irreps.spherical_harmonics(lmax_sh)
    kept = o3.Irreps(irreps_out)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tp = o3.FullyConnectedTensorProduct(
            "5x0e", irreps_sh, kept, shared_weights=False, internal_weights=False
        )
    finally:
        torch.set_default_dtype(default)
    product = torch.jit.script(ScalarHarmonicsProduct(tp))
    edges = 13
    scalars = torch.randn(edges, 5, dtype=torch.float64, requires_grad=True)
    vectors = torch.randn(edges, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(edges, tp.weight_numel, dtype=torch.float64, requires_grad=True)
    sh = o3.spherical_harmonics(irreps_sh, vectors, normalize=True)
    assert_same_values_and_gradients(
        product(scalars, sh, weights), tp(scalars, sh, weights), [scalars, vectors, weights]
    )


def test_scalar_harmonics_product_refuses_other_products() -> None:
    with pytest.raises(ValueError, match="scalars"):
        ScalarHarmonicsProduct(o3.FullyConnectedTensorProduct("2x1o", "1x0e", "2x1o", shared_weights=False))
    with pytest.raises(ValueError, match="per-edge weights"):
        ScalarHarmonicsProduct(o3.FullyConnectedTensorProduct("2x0e", "1x0e + 1x1o", "2x0e + 2x1o"))


def test_edge_operator_refuses_other_connection_modes() -> None:
    tp = o3.FullyConnectedTensorProduct("4x0e + 2x1o", "1x0e + 1x1o", "4x0e")
    with pytest.raises(ValueError, match="uvu"):
        EdgeTensorProduct(tp)


def reference_norm(norm: EquivariantLayerNorm, x: torch.Tensor) -> torch.Tensor:
    """The norm block by block, as its docstring defines it."""
    mean_square = torch.zeros_like(x[:, 0])
    start = 0
    for mul, ir in norm.irreps:
        mean_square = mean_square + x[:, start : start + mul * ir.dim].pow(2).sum(-1) / ir.dim
        start += mul * ir.dim
    inv = torch.rsqrt(mean_square / norm.irreps.num_irreps + norm.eps)
    pieces, start, channel, scalar = [], 0, 0, 0
    for mul, ir in norm.irreps:
        block = x[:, start : start + mul * ir.dim].reshape(-1, mul, ir.dim) * inv.reshape(-1, 1, 1)
        block = block * norm.weight[channel : channel + mul].reshape(1, mul, 1)
        if ir.l == 0:
            block = block + norm.bias[scalar : scalar + mul].reshape(1, mul, 1)
            scalar += mul
        pieces.append(block.reshape(-1, mul * ir.dim))
        start += mul * ir.dim
        channel += mul
    return torch.cat(pieces, dim=-1)


@pytest.mark.parametrize("irreps", [*IRREPS, "4x1o + 8x0e + 2x0o"])
def test_norm_equals_blockwise_definition(irreps: str) -> None:
    torch.manual_seed(1)
    norm = EquivariantLayerNorm(o3.Irreps(irreps)).double()
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(5, norm.irreps.dim, dtype=torch.float64)
    assert torch.allclose(torch.jit.script(norm)(x), reference_norm(norm, x), atol=1e-13, rtol=0)


@pytest.mark.parametrize("irreps", IRREPS)
def test_gate_equals_e3nn_gate(irreps: str) -> None:
    torch.manual_seed(2)
    feed_forward = GatedFeedForward(o3.Irreps(irreps)).double()
    x = torch.randn(6, feed_forward.gate.irreps_in.dim, dtype=torch.float64)
    assert torch.allclose(feed_forward.gated(x), feed_forward.gate(x), atol=1e-13, rtol=0)


def test_linear_on_merged_message_irreps_is_the_same_map() -> None:
    """Old checkpoints stored the attention's output linear on the unmerged message irreps."""
    torch.manual_seed(3)
    irreps_message, _ = message_irreps(o3.Irreps(IRREPS[0]), o3.Irreps.spherical_harmonics(2))
    unmerged = o3.Linear(irreps_message, IRREPS[0]).double()
    merged = o3.Linear(irreps_message.simplify(), IRREPS[0]).double()
    merged.load_state_dict(unmerged.state_dict())
    x = torch.randn(4, irreps_message.dim, dtype=torch.float64)
    assert torch.allclose(merged(x), unmerged(x), atol=1e-13, rtol=0)


@pytest.mark.parametrize(
    ("irreps", "irreps_out"),
    [
        ("4x0e + 4x1o + 4x2e", "8x0e + 4x1o + 2x2e"),
        ("3x0e + 3x1o", "3x0e + 3x1o + 3x1e"),
        ("2x0e + 2x1o + 2x2e + 2x3o", "2x0e + 2x2e + 2x3o"),
    ],
)
def test_channelwise_square_equals_tensor_product(irreps: str, irreps_out: str) -> None:
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # Wigner 3j constants not rounded to float32
    try:
        tp = channelwise_square(o3.Irreps(irreps), o3.Irreps(irreps_out))
    finally:
        torch.set_default_dtype(default)
    fast = ChannelwiseSquare(tp)
    u = torch.randn(7, tp.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    assert_same_values_and_gradients(fast(u), tp(u, u), [u])
    assert torch.allclose(torch.jit.script(fast)(u), tp(u, u), atol=1e-12, rtol=0)


def test_many_body_product_state_dict_has_only_e3nn_keys() -> None:
    """The fast square adds no state: checkpoints of models with the product load unchanged."""
    product = ManyBodyProduct(o3.Irreps("8x0e + 4x1o + 2x2e"), o3.Irreps("8x0e + 4x1o + 2x2e"), 4)
    assert not [key for key in product.state_dict() if key.startswith("fast_square")]
    h = torch.randn(5, o3.Irreps("8x0e + 4x1o + 2x2e").dim)
    u = product.linear_in(h)
    expected = product.linear_out(product.square(u, u))
    assert torch.allclose(product(h), expected, atol=1e-5, rtol=1e-5)


def attention_by_definition(
    attention: EquivariantGraphAttention, h: torch.Tensor, edge_index: torch.Tensor, terms: list[torch.Tensor]
) -> torch.Tensor:
    """Σ_j α_ij^head(c) (W m_ij)_c from the broadcast product of every message with every head's weight."""
    sender, receiver = edge_index
    num_operator_terms = attention.edge_tp.num_terms
    scalars = h[:, : attention.num_scalars]
    logits = attention.attention_logits(scalars, edge_index, terms[num_operator_terms])
    alpha = attention.neighbor_weights(logits, receiver, h.shape[0])  # [E, H]
    messages = attention.edge_tp.apply(h[sender], terms[:num_operator_terms])  # [E, M]
    weighted = messages.unsqueeze(1) * alpha.unsqueeze(-1)  # [E, H, M]
    per_head = torch.zeros(h.shape[0], *weighted.shape[1:], dtype=h.dtype).index_add(0, receiver, weighted)
    values = attention.linear(per_head)  # [N, H, F]
    head = attention.head_of_component
    return values[:, head, torch.arange(head.numel())]


@pytest.mark.parametrize("aggregation", ["gated_sum", "softmax"])
@pytest.mark.parametrize("num_heads", [1, 2, 4])
def test_attention_per_head_sums_equal_definition(aggregation: str, num_heads: int) -> None:
    """The per-head neighbor sums equal the sum of the broadcast [E, H, M] product (values and gradients,
    scripted), with a node that receives nothing."""
    torch.manual_seed(4)
    irreps = o3.Irreps("8x0e + 4x1o + 4x2e")
    attention = EquivariantGraphAttention(
        irreps, o3.Irreps.spherical_harmonics(2), 6, 16, num_heads, 3.0, aggregation, radial_layers=2
    ).double()
    nodes = 7
    edge_index = torch.tensor([[1, 2, 3, 0, 4, 5, 6, 0, 2, 5, 1], [0, 0, 0, 1, 1, 2, 2, 3, 4, 4, 5]])
    h = torch.randn(nodes, irreps.dim, dtype=torch.float64, requires_grad=True)
    vectors = torch.randn(edge_index.shape[1], 3, dtype=torch.float64, requires_grad=True)
    radial = torch.randn(edge_index.shape[1], 6, dtype=torch.float64, requires_grad=True)
    sh = o3.spherical_harmonics([0, 1, 2], vectors, normalize=True)
    terms = attention.edge_terms(radial, sh)
    result = torch.jit.script(attention)(h, edge_index, sh, terms)
    assert result[6].abs().max() == 0  # node 6 receives no message
    expected = attention_by_definition(attention, h, edge_index, terms)
    assert_same_values_and_gradients(result, expected, [h, vectors, radial])
