"""Hyperparameters of the equivariant force fields (DEQ and explicit), validated and dict-convertible."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from e3nn import o3

from deqff.deq.config import SolverConfig
from deqff.nn.attention import AGGREGATIONS

MODEL_TYPES = ("deq", "explicit")
FORCE_MODES = ("direct", "conservative", "phantom")
GRAD_MODES = ("ift", "phantom", "bptt")
FORCE_TRAINING = ("exact", "fixed_adjoint")
ENERGY_READOUTS = ("joint", "joint+detached")
REPULSIONS = ("none", "zbl")
EDGE_EMBEDDINGS = ("full", "channelwise")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and solver settings. Lengths in Å.

    model_type:          "deq" (one implicit layer solved to a fixed point) or "explicit" (a stack).
    elements:            chemical symbols the model knows; species index = position in this list.
    irreps_node:         e3nn irreps of node features (scalars first), e.g. "32x0e + 16x1o + 8x2e".
    lmax_sh:             max degree of the edge spherical harmonics.
    radial_hidden:       width of the hidden layers of the radial MLPs (tensor-product weights from
                         the Bessel basis; attention and energy MLPs use it too).
    radial_layers:       hidden layers of the tensor-product-weight MLPs (the embedding's and each
                         block's; computed once per geometry, so depth here costs little in a DEQ;
                         MACE uses 3 of 64).
    branch_scale:        initial LayerScale of the attention and feed-forward branches (small = contractive).
    blocks_per_layer:    equivariant blocks inside the implicit function (DEQ, 1-2).
    product_channels:    0 = off; else channels of the many-body product (channel-wise tensor square of
                         the node features, MACE-style correlation 2) in each block's feed-forward.
    feed_forward_width:  the block's feed-forward hidden irreps as a multiple of irreps_node (1 = as wide as
                         the features; k: k times each multiplicity). Node-level work only: capacity at
                         little cost per iteration.
    edge_embedding:      the input embedding's neighborhood term (deqff.nn.embedding): "full" (a fully
                         connected tensor product of the species scalars and the harmonics, radial weights
                         per input and output channel) or "channelwise" (one radial function per output
                         channel and sender species, then a linear mix: the same functions, ~1/10 of the
                         parameters). Old configs mean "full".
    embedding_gains:     per-atom, per-channel gains of each block's branches from the input embedding's
                         scalars (deqff.nn.block.EmbeddingGains); False = the plain block.
    aggregation:         how a block weighs its neighbors' messages (deqff.nn.attention): "gated_sum"
                         (sigmoid gates, summed; smooth when atoms cross the cutoff) or "softmax"
                         (Equiformer's weighted mean; the energy jumps when the neighbor list changes).
                         Old configs mean "softmax".
    depth:               number of stacked layers (explicit model; untied copies of the same layer).
    encoder_layers:      DEQ only: explicit layers (untied copies of the layer, applied once from z = 0 as
                         the explicit stack's are) between the input embedding and the implicit layer,
                         whose output is the DEQ's injection: per-edge filters of their own, evaluated
                         once per geometry, not per iteration. 0 = none (the embedding is the injection).
    encoder_radial_hidden: width of the encoder layers' radial MLPs (0 = radial_hidden), so that an encoder
                         fits a parameter budget.
    force_mode:          "direct" (l=1 head), "conservative" (-dE/dx, exact through the fixed point),
                         "phantom" (-dE/dx through `phantom_steps` damped steps after a no-grad solve).
    grad_mode:           how training differentiates through the DEQ: "ift", "phantom" or "bptt".
    force_training:      parameter gradients of conservative DEQ forces under grad_mode "ift": "exact"
                         (fixed point and adjoint differentiated implicitly, deqff.deq.second_order;
                         two more implicit solves per step) or "fixed_adjoint" (both held fixed in the
                         double backward: cheaper, but its gradient's cosine with the exact one is
                         ~0.3 on ethanol, benchmarks/gradient_check.py). Old configs mean "exact".
    solver_train/solver_inference: forward solver settings (training is tight, inference relaxed).
    solver_backward:     adjoint solver settings for IFT.
    correction_states:   solver states returned for the fixed-point correction loss (1 = only z*).
    energy_readout:      "joint" (one energy head, trained with the core) or "joint+detached" (plus an
                         `EnergyCorrectionHead` fed the state detached in training mode, which fits the
                         geometric part of the energy the joint head learns too slowly; ethanol test
                         energy MAE 114.5 -> 77.5 meV, forces 143 -> 135.5 meV/Å). Trained with direct
                         forces only; in eval mode nothing is detached, so exports in conservative or
                         phantom mode differentiate the whole energy.
    repulsion:           short-range prior added to the energy in every force mode: "none" or "zbl"
                         (deqff.models.repulsion: ZBL screened nuclear repulsion, switched off before
                         the shortest distance of each element pair in the training data, so exactly
                         zero on it; the trainer fits those distances). Old configs mean "none".
    """

    model_type: str = "deq"
    elements: tuple[str, ...] = ("H", "C", "O")
    cutoff: float = 5.0
    irreps_node: str = "32x0e + 16x1o + 8x2e"
    lmax_sh: int = 2
    num_basis: int = 8
    radial_hidden: int = 32
    radial_layers: int = 1
    num_heads: int = 2
    avg_num_neighbors: float = 10.0
    branch_scale: float = 0.1
    blocks_per_layer: int = 1
    product_channels: int = 0
    feed_forward_width: int = 1
    edge_embedding: str = "full"
    embedding_gains: bool = False
    aggregation: str = "softmax"
    depth: int = 4
    encoder_layers: int = 0
    encoder_radial_hidden: int = 0
    force_mode: str = "direct"
    grad_mode: str = "ift"
    force_training: str = "exact"
    phantom_steps: int = 3
    phantom_tau: float = 0.8
    correction_states: int = 1
    energy_readout: str = "joint"
    repulsion: str = "none"
    solver_train: SolverConfig = field(default_factory=lambda: SolverConfig(max_iter=30, tol=1e-3))
    solver_inference: SolverConfig = field(default_factory=lambda: SolverConfig(max_iter=30, tol=1e-2))
    solver_backward: SolverConfig = field(default_factory=lambda: SolverConfig(max_iter=30, tol=1e-4))

    def __post_init__(self) -> None:
        problems = []
        if self.model_type not in MODEL_TYPES:
            problems.append(f"model_type={self.model_type!r} (choose from {MODEL_TYPES})")
        if self.force_mode not in FORCE_MODES:
            problems.append(f"force_mode={self.force_mode!r} (choose from {FORCE_MODES})")
        if self.grad_mode not in GRAD_MODES:
            problems.append(f"grad_mode={self.grad_mode!r} (choose from {GRAD_MODES})")
        if self.force_training not in FORCE_TRAINING:
            problems.append(f"force_training={self.force_training!r} (choose from {FORCE_TRAINING})")
        if self.energy_readout not in ENERGY_READOUTS:
            problems.append(f"energy_readout={self.energy_readout!r} (choose from {ENERGY_READOUTS})")
        if self.repulsion not in REPULSIONS:
            problems.append(f"repulsion={self.repulsion!r} (choose from {REPULSIONS})")
        if self.edge_embedding not in EDGE_EMBEDDINGS:
            problems.append(f"edge_embedding={self.edge_embedding!r} (choose from {EDGE_EMBEDDINGS})")
        if self.aggregation not in AGGREGATIONS:
            problems.append(f"aggregation={self.aggregation!r} (choose from {AGGREGATIONS})")
        if not self.elements:
            problems.append("elements is empty")
        if self.cutoff <= 0:
            problems.append(f"cutoff={self.cutoff} (must be > 0 Å)")
        for name in (
            "lmax_sh",
            "num_basis",
            "radial_hidden",
            "radial_layers",
            "num_heads",
            "blocks_per_layer",
            "depth",
            "correction_states",
            "feed_forward_width",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} (must be >= 1)")
        if self.encoder_layers < 0 or self.encoder_radial_hidden < 0:
            problems.append(
                f"encoder_layers={self.encoder_layers}, encoder_radial_hidden={self.encoder_radial_hidden} "
                "(0 = none / as radial_hidden, or >= 1)"
            )
        if self.encoder_layers > 0 and self.model_type != "deq":
            problems.append(
                f"encoder_layers={self.encoder_layers} with model_type={self.model_type!r}: an explicit "
                "stack has no injection to encode (raise depth instead)"
            )
        if self.product_channels < 0:
            problems.append(f"product_channels={self.product_channels} (0 = off, or channels >= 1)")
        if not 0 < self.phantom_tau <= 1:
            problems.append(f"phantom_tau={self.phantom_tau} (must be in (0, 1])")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["elements"] = list(self.elements)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a plain dict (YAML); unknown keys are an error naming the allowed ones."""
        data = dict(data)
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown model config key(s) {unknown}; allowed: {sorted(allowed)}")
        for name in ("solver_train", "solver_inference", "solver_backward"):
            if name in data and not isinstance(data[name], SolverConfig):
                data[name] = SolverConfig.from_dict(data[name])
        if "elements" in data:
            data["elements"] = tuple(data["elements"])
        return cls(**data)


#: Model settings whose values are e3nn irreps strings.
IRREPS_SETTINGS = frozenset({"irreps_node"})


def same_setting(key: str, first: Any, second: Any) -> bool:
    """Whether two values of model setting `key` describe the same model: irreps compare as e3nn irreps
    ("32x0e + 16x1o" is "32x0e+16x1o"), everything else as values."""
    if key in IRREPS_SETTINGS and isinstance(first, str) and isinstance(second, str):
        try:
            return o3.Irreps(first) == o3.Irreps(second)
        except (ValueError, AssertionError):
            return first == second
    return first == second
