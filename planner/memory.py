"""Bytes per GPU of a training run: weights, gradients, optimizer states and activations under a parallel layout.

Model states (Rajbhandari et al. 2020, "ZeRO", §3.1: mixed-precision AdamW holds 2 + 2 + 12 bytes per parameter):

    weights     2 bytes/param   bf16 working copy
    gradients   2 bytes/param   bf16
    optimizer  12 bytes/param   fp32 master weights (4) + AdamW first and second moments (4 + 4)

Tensor (t) and pipeline (p) parallelism split the parameters t·p ways (the vocabulary-sized embedding table only
t ways: it sits whole on the first stage, and the tied head's copy on the last). Data parallelism (d) then shards
by ZeRO stage: 1 the optimizer states, 2 also the gradients, 3 (= FSDP full sharding) also the weights, each
divided by d; ZeRO-3 keeps two layers' weights gathered at a time.

Expert parallelism (e, a mixture of experts only; Lepikhin et al. 2020, GShard; Megatron-Core's
expert_model_parallel_size) splits the routed experts e ways across the data-parallel ranks: e divides d and the
expert count, each GPU holds experts/e of every MoE layer's experts (each split t ways, as Megatron's default
expert tensor parallelism is t), and each expert is replicated d/e times, so ZeRO shards the experts' states over
d/e ranks where it shards the rest over d. Activations do not change: a GPU still processes its own tokens' share,
top_k experts' worth per token on average (balanced routing).

Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", §4, Table 2),
bytes per layer for sequence length s, micro-batch b, width h, a attention heads, in 16-bit with 1-byte dropout
masks:

    no parallelism                  s·b·h·(34 + 5·a·s/h)
    tensor parallel t               s·b·h·(10 + 24/t + 5·a·s/(h·t))
    tensor + sequence parallel      s·b·h·(34 + 5·a·s/h)/t
    selective recompute (+ SP)      s·b·h·34/t           (the a·s² attention scores are recomputed; this is what
                                                          FlashAttention does inside its kernel)
    full recompute (+ SP)           2·s·b·h/t            (only each layer's input is kept)

The 34 is 4 (two LayerNorm inputs) + 11 (attention: QKV input 2, Q and K 4, V 2, projection input 2, dropout mask
1) + 19 (MLP: input 2, GeLU input 8 and output 8, dropout mask 1); the 24 of it that tensor parallelism splits is
Q, K, V, the projection input and the GeLU tensors. Grouped-query attention shrinks K and V by n_kv_head/n_head and
a d_ff other than 4·h scales the GeLU tensors, so in general 34 = 10 + 4 + 4·g + 4·d_ff/h with g = n_kv_head/n_head
(8 instead of 10 without dropout). With the 1F1B pipeline schedule the first stage holds L/p layers for p
micro-batches in flight (min(p, m) with m micro-batches per step), i.e. L layers' worth, whatever p is (§4.2.3);
full recompute adds one layer's full activations while it is being recomputed; the last stage adds the fp32
logits of the cross-entropy, 4·s·b·v/t bytes.

Parameter counts are the caller's: ``params_total`` (every parameter held, all experts of a mixture of experts)
sizes memory; FLOPs are counted elsewhere from the active parameters (fits.accounting). The parameter split and
model states also take numpy arrays of layouts (split_of, stage_bytes): the layout search scores thousands per
plan at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fits.errors import BadInput

Recompute = Literal["none", "selective", "full"]
RECOMPUTE: tuple[Recompute, ...] = ("none", "selective", "full")
GB = 1e9

WEIGHT_BYTES = 2.0
GRAD_BYTES = 2.0
OPTIMIZER_BYTES = 12.0
LOGIT_BYTES = 4.0


@dataclass(frozen=True)
class ModelDims:
    """What memory depends on: the shape, the context, and how many parameters are held."""

    n_layer: int
    d_model: int
    n_head: int
    seq_len: int
    vocab_size: int
    params_total: float
    """Every parameter held in memory (a mixture of experts: all experts)."""
    n_kv_head: int | None = None
    """Key/value heads (grouped-query attention); None means n_head."""
    d_ff: int | None = None
    """MLP width of one layer's activations (for a mixture of experts: the top-k experts' total); None: 4·d_model."""
    dropout: bool = True
    """Count the 1-byte dropout masks (Korthikanti's setting); False drops 2·s·b·h per layer."""
    expert_params: float = 0.0
    """Routed-expert parameters of all layers (part of params_total): what expert parallelism shards."""
    experts: int = 0
    """Routed experts per MoE layer (0: a dense model, no expert parallelism)."""
    top_k: int = 0
    """Routed experts each token visits (the all-to-all sends a token's hidden state to each)."""

    @property
    def kv_ratio(self) -> float:
        return (self.n_kv_head or self.n_head) / self.n_head

    @property
    def ffn_ratio(self) -> float:
        return (self.d_ff or 4 * self.d_model) / self.d_model

    @property
    def embedding_params(self) -> float:
        return float(self.vocab_size * self.d_model)


@dataclass(frozen=True)
class Layout:
    """A parallel layout: dp × tp × pp GPUs, micro-batches, ZeRO stage and recomputation."""

    dp: int = 1
    tp: int = 1
    pp: int = 1
    micro_batch: int = 1
    """Sequences per micro-batch per data-parallel rank."""
    grad_accum: int = 1
    """Micro-batches per optimizer step per data-parallel rank (the pipeline's m)."""
    zero: int = 1
    """ZeRO stage 0–3 (3 is FSDP's full sharding)."""
    recompute: Recompute = "selective"
    sequence_parallel: bool = True
    """Megatron's sequence parallelism alongside tensor parallelism (no effect at tp = 1)."""
    ep: int = 1
    """Expert parallel degree: the routed experts split ep ways across the data-parallel ranks (ep divides dp)."""

    @property
    def gpus(self) -> int:
        return self.dp * self.tp * self.pp

    def describe(self) -> str:
        zero = "FSDP (ZeRO-3)" if self.zero == 3 else f"ZeRO-{self.zero}"
        sp = " + SP" if self.sequence_parallel and self.tp > 1 else ""
        ep = f" (EP {self.ep})" if self.ep > 1 else ""
        return (f"DP {self.dp}{ep} × TP {self.tp}{sp} × PP {self.pp}, micro-batch {self.micro_batch} × "
                f"{self.grad_accum} accumulation, {zero}, {self.recompute} recompute")


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU by part (the most loaded GPU: the first pipeline stage)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations

    def gb(self) -> dict[str, float]:
        return {"weights": self.weights / GB, "gradients": self.gradients / GB, "optimizer": self.optimizer / GB,
                "activations": self.activations / GB, "total": self.total / GB}


def check_layout(layout: Layout, dims: ModelDims | None = None) -> None:
    for name in ("dp", "tp", "pp", "micro_batch", "grad_accum", "ep"):
        value = getattr(layout, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BadInput(f"must be a whole number ≥ 1, got {value!r}", field=f"layout.{name}")
    if layout.zero not in (0, 1, 2, 3):
        raise BadInput(f"ZeRO stage must be 0, 1, 2 or 3, got {layout.zero!r}", field="layout.zero")
    if layout.recompute not in RECOMPUTE:
        raise BadInput(f"must be one of {', '.join(RECOMPUTE)}, got {layout.recompute!r}", field="layout.recompute")
    if layout.dp % layout.ep:
        raise BadInput(f"expert parallel {layout.ep} does not divide the {layout.dp} data-parallel ranks",
                       field="layout.ep")
    if dims is not None:
        if dims.n_head % layout.tp:
            raise BadInput(f"tensor parallel {layout.tp} does not divide the {dims.n_head} attention heads",
                           field="layout.tp")
        if layout.pp > dims.n_layer:
            raise BadInput(f"{layout.pp} pipeline stages for {dims.n_layer} layers", field="layout.pp")
        if layout.ep > 1 and (dims.experts < 1 or dims.experts % layout.ep):
            raise BadInput(f"expert parallel {layout.ep} does not divide the {dims.experts} experts",
                           field="layout.ep")


def activation_bytes_per_layer(seq_len: float, micro_batch: float, d_model: float, n_head: float, *, tp: int = 1,
                               sequence_parallel: bool = True, recompute: Recompute = "none", kv_ratio: float = 1.0,
                               ffn_ratio: float = 4.0, dropout: bool = True) -> float:
    """Korthikanti et al. 2022 Table 2, generalised to grouped-query attention (kv_ratio) and d_ff = ffn_ratio·h."""
    sbh = seq_len * micro_batch * d_model
    sp = sequence_parallel and tp > 1
    if recompute == "full":
        return 2.0 * sbh / (tp if sp else 1)
    split = 4.0 + 4.0 * kv_ratio + 4.0 * ffn_ratio  # Q, K, V, projection input, the GeLU tensors
    replicated = 10.0 if dropout else 8.0  # LayerNorm inputs, QKV and MLP inputs, dropout masks
    scores = 0.0 if recompute == "selective" else (5.0 if dropout else 2.0) * n_head * seq_len / d_model
    if sp:
        return sbh * (replicated + split + scores) / tp
    return sbh * (replicated + (split + scores) / tp)


def params_split(dims: ModelDims, layout: Layout) -> tuple[float, float]:
    """(other, expert) parameters on the most loaded GPU before ZeRO: t·p-way split, the embedding table t ways
    on stage one, the routed experts also ep ways."""
    return split_of(dims, layout.tp, layout.pp, layout.ep)


def split_of(dims: ModelDims, tp, pp, ep):
    """params_split for degrees given as whole numbers or as numpy integer arrays of one shape (the layout search
    scores arrays of layouts at once; the same operations in the same order, so the same floats)."""
    experts = dims.expert_params / (tp * pp * ep)
    rest = dims.params_total - dims.expert_params
    body = max(0.0, rest - dims.embedding_params)
    if isinstance(pp, np.ndarray):
        return np.where(pp == 1, rest / tp, body / (tp * pp) + dims.embedding_params / tp), experts
    if pp == 1:
        return rest / tp, experts
    return body / (tp * pp) + dims.embedding_params / tp, experts


def params_per_gpu(dims: ModelDims, layout: Layout) -> float:
    """Parameters on the most loaded GPU before ZeRO (params_split's two parts)."""
    other, experts = params_split(dims, layout)
    return other + experts


def state_bytes(dims: ModelDims, layout: Layout) -> tuple[float, float, float]:
    """(weights, gradients, optimizer) bytes per GPU under the layout's ZeRO stage: the experts' states shard
    over their d/ep replicas, the rest over all d data-parallel ranks."""
    other, experts = params_split(dims, layout)
    # one data-parallel rank has nothing to shard the weights over: no gathered layers either
    zero = layout.zero if layout.dp > 1 else min(layout.zero, 2)
    return stage_bytes(dims, other, experts, layout.dp, layout.ep, layout.tp, zero)


def stage_bytes(dims: ModelDims, other, experts, dp, ep, tp, zero: int):
    """state_bytes from params_split's parts for ZeRO stage ``zero`` (3 only with dp > 1); the parts and degrees
    floats and whole numbers or numpy arrays of one shape alike."""
    replicas = dp // ep

    def sharded(n_other, n_experts):
        return n_other / dp + n_experts / replicas

    weights = (other + experts) * WEIGHT_BYTES
    grads = (other + experts) * GRAD_BYTES
    optimizer = (other + experts) * OPTIMIZER_BYTES
    if zero >= 1:
        optimizer = sharded(other, experts) * OPTIMIZER_BYTES
    if zero >= 2:
        grads = sharded(other, experts) * GRAD_BYTES
    if zero >= 3:
        # sharded weights, plus the two layers gathered at a time (the one running, the one prefetched)
        body = max(0.0, dims.params_total - dims.embedding_params - dims.expert_params)
        layer = (body + dims.expert_params / ep) / dims.n_layer / tp
        weights = sharded(other, experts) * WEIGHT_BYTES + 2.0 * layer * WEIGHT_BYTES
    return weights, grads, optimizer


def activation_bytes(dims: ModelDims, layout: Layout) -> float:
    """Activation bytes on the first pipeline stage (1F1B): L/p layers × min(p, m) micro-batches, plus one layer
    being recomputed under full recompute, plus the fp32 logits where the head sits on that GPU."""
    kw = dict(tp=layout.tp, sequence_parallel=layout.sequence_parallel, kv_ratio=dims.kv_ratio,
              ffn_ratio=dims.ffn_ratio, dropout=dims.dropout)
    per_layer = activation_bytes_per_layer(dims.seq_len, layout.micro_batch, dims.d_model, dims.n_head,
                                           recompute=layout.recompute, **kw)
    layers = math.ceil(dims.n_layer / layout.pp)
    in_flight = min(layout.pp, layout.grad_accum)
    total = per_layer * layers * in_flight
    if layout.recompute == "full":
        total += activation_bytes_per_layer(dims.seq_len, layout.micro_batch, dims.d_model, dims.n_head,
                                            recompute="selective", **kw)
    if layout.pp == 1:  # the head is on this GPU (with pp > 1 on the last stage, which holds fewer micro-batches)
        total += LOGIT_BYTES * dims.seq_len * layout.micro_batch * dims.vocab_size / layout.tp
    return total


def memory_per_gpu(dims: ModelDims, layout: Layout) -> Memory:
    """Weights, gradients, optimizer states and activations in bytes on the most loaded GPU."""
    check_layout(layout, dims)
    weights, grads, optimizer = state_bytes(dims, layout)
    return Memory(weights=weights, gradients=grads, optimizer=optimizer, activations=activation_bytes(dims, layout))
