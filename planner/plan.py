"""The planner's answers: Plan (and the pieces it is made of), Prediction and Frontier.

Field names are a public contract: the HTTP service serves these structs as they are.
"""

from __future__ import annotations

import msgspec

from fits.fit import FitRef
from planner.request import PlanRequest


class Shape(msgspec.Struct, kw_only=True):
    """A decoder-only Transformer shape with d_attn = d_model and d_ff = 4·d_model."""

    n_layer: int
    d_model: int
    n_head: int
    d_ff: int
    head_dim: int
    params: int
    """12·n_layer·d_model², Kaplan's non-embedding count of this shape (eq. 2.1; (10 + 2·n_kv_head/n_head)·n_layer·
    d_model² with grouped-query attention)."""
    params_error: float
    """(count − N)/N for the N the shape was chosen for, the count being the one that N counts: ``params`` for a
    non-embedding N, ``params_total`` for an N of all parameters."""
    aspect_ratio: float
    """d_model / n_layer."""
    params_non_embedding: int | None = None
    """The exact non-embedding count of the bias-free GPT (LayerNorm gains included; fits.accounting)."""
    params_total: int | None = None
    """Every parameter of the tied, bias-free GPT with the plan's vocabulary and context (fits.accounting);
    set when the shape was chosen for a known vocabulary and context."""
    n_kv_head: int | None = None
    """Key/value heads: n_head (multi-head attention) unless grouped-query attention was asked for."""
    vocab_size: int | None = None
    """The vocabulary the shape was built with, padded up to a multiple of 128."""
    warnings: list[str] = []


class MoePlan(msgspec.Struct, kw_only=True):
    """A mixture-of-experts plan's layout: total parameters (memory) and active ones (FLOPs), by part."""

    experts: int
    top_k: int
    granularity: float
    """G = d_ff / expert_d_ff with d_ff = 4·d_model (Krajewski et al. 2024)."""
    shared_experts: int
    expert_d_ff: int
    """Hidden width of one expert."""
    expansion_rate: float
    """experts / G: one layer's routed-expert parameters over a dense FFN's (Krajewski et al.'s E)."""
    params_total: float
    """Every parameter, embeddings included: what memory holds."""
    params_active: float
    """Parameters one token uses, embeddings included."""
    params_non_embedding: float
    """Total non-embedding parameters: the law's N (Plan.params) as the shape realises it."""
    params_active_non_embedding: float
    """Non-embedding parameters one token uses: what the FLOPs follow (6 per token per parameter)."""
    active_fraction: float
    params_per_expert: float
    params_router: float
    params_experts: float
    """Routed and shared experts of all layers."""
    params_attention: float
    tokens_per_active_param: float
    flops_per_token: float
    """Training FLOPs per token of the active parameters under the plan's FLOP convention."""
    model_states_gb: float
    """Weights, gradients and AdamW states of every parameter (all experts) before any sharding: 16 bytes per
    parameter in mixed precision (planner.memory); what the data/tensor/pipeline layout has to spread."""


class LossEstimate(msgspec.Struct, kw_only=True):
    """Predicted loss in nats/token: the fit's point value and a band, with how the band was made."""

    mean: float
    low: float
    high: float
    method: str


class TimeEstimate(msgspec.Struct, kw_only=True):
    """Hardware time and cost of a plan."""

    gpu: str
    gpus: int
    """GPUs the plan runs on: the count given (a deadline never adds GPUs; planner.deadline)."""
    mfu: float
    peak_tflops: float
    flops_per_token: float
    """Training FLOPs per token under ``flops_convention`` (fits.accounting), with the law's N."""
    flops_convention: str = "6N"
    """The convention the time and the MFU are counted in: "6N", "kaplan" or "palm" (Plan.flops_convention)."""
    hardware_flops: float
    gpu_hours: float
    wall_clock_hours: float
    cost: float | None = None
    """US dollars: gpu_hours × the price per GPU-hour (the request's, else the catalogue's; in USD)."""
    price_per_gpu_hour: float | None = None
    """The price the cost is counted at: the request's, else the catalogue's (SCALEPLAN_GPU_PRICES overrides)."""
    conventions: list[ConventionFigure] = []
    """The same run's FLOPs per token and MFU counted in every convention (``flops_convention`` is the plan's)."""


class ConventionFigure(msgspec.Struct, kw_only=True):
    """The plan's time counted in one FLOP convention: the same wall-clock, so MFU scales with the FLOPs."""

    convention: str
    flops_per_token: float
    factor: float
    """flops_per_token / the plan convention's."""
    mfu: float
    """The plan's MFU expressed in this convention (mfu × factor)."""
    text: str


class MemoryBreakdown(msgspec.Struct, kw_only=True):
    """GB per GPU (1e9 bytes) on the most loaded GPU of a layout (planner.memory)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    total: float
    usable: float
    """The GPU's memory less the headroom kept for the framework, allocator and communication buffers."""
    capacity: float


class ParallelLayout(msgspec.Struct, kw_only=True):
    """How the plan runs on its GPUs: data × tensor × pipeline parallel, micro-batches, ZeRO, recomputation."""

    gpu: str
    gpus: int
    dp: int
    tp: int
    pp: int
    sequence_parallel: bool
    micro_batch: int
    """Sequences per micro-batch per data-parallel rank."""
    grad_accum: int
    """Micro-batches per optimizer step per data-parallel rank (dp · micro_batch · grad_accum = batch_sequences)."""
    batch_sequences: int
    """Sequences per step of this layout: the plan's, or rounded by at most 2% to a multiple of dp (``why`` says)."""
    zero: int
    """ZeRO stage (3 = FSDP full sharding)."""
    recompute: str
    """"selective" (attention scores recomputed, as FlashAttention does) or "full" (every layer's forward)."""
    memory: MemoryBreakdown
    step_seconds: float
    """Estimated time per optimizer step with this layout's bubble, recomputation and exposed communication."""
    step_seconds_at_mfu: float
    """Time per step at the MFU alone (the plan's time estimate)."""
    bubble_fraction: float
    recompute_overhead: float
    tp_comm_seconds: float
    dp_comm_seconds: float
    ep: int = 1
    """Expert parallel degree (a mixture of experts): the routed experts split ep ways across the dp ranks."""
    ep_comm_seconds: float = 0.0
    """Expert-parallel all-to-all time per step (not overlapped)."""
    wall_clock_hours: float
    """steps × step_seconds."""
    why: list[str]


class HardwareOption(msgspec.Struct, kw_only=True):
    """One accelerator's plan for the same budget: what it trains, how long, what it costs, whether it fits."""

    gpu: str
    gpus: int
    peak_tflops: float
    mfu: float
    price_per_gpu_hour: float | None
    compute_flops: float | None
    params: float | None
    tokens: float | None
    predicted_loss: float | None
    wall_clock_hours: float | None
    gpu_hours: float | None
    cost: float | None
    fits: bool
    layout: str | None
    """The layout in words, when one fits."""
    memory_gb: float | None
    """GB per GPU of that layout (or of the smallest layout when none fits)."""
    note: str = ""


class HardwareComparison(msgspec.Struct, kw_only=True):
    """The catalogue's accelerators (or a given list) for one budget; ``best`` names the one chosen and why."""

    options: list[HardwareOption]
    best: str | None
    reason: str


class Alternative(msgspec.Struct, kw_only=True):
    """A different model size at the same budget."""

    params_factor: float
    params: float
    tokens: float
    predicted_loss: float
    """Loss of this size at the plan's budget."""
    compute_for_plan_loss: float | None
    """FLOPs this size needs to reach the plan's predicted loss; null when it never gets there."""
    extra_compute: float | None
    """compute_for_plan_loss / plan compute − 1; negative where a constraint (data cap, serving) holds the plan
    away from the training-only optimum."""
    wall_clock_hours: float | None = None
    """Hours to reach the plan's loss at this size on the plan's hardware."""


class Plan(msgspec.Struct, kw_only=True):
    """A training plan: model size, data, batch, schedule and shape, with the loss it should reach."""

    id: int | None
    created: str | None
    fit: FitRef
    request: PlanRequest
    budget_flops: float
    """The budget in FLOPs (hardware FLOPs for an hours budget; the least sufficient one for a target loss)."""
    compute_flops: float
    """Training compute as the law counts it: 6·N·D (Kaplan fits: Kaplan's C)."""
    params: float
    """Parameters N as the law counts them: all parameters for the Chinchilla sets, non-embedding for Kaplan's
    (``params_counted``)."""
    params_total: float
    """Every parameter of the planned shape (tied head, no biases; fits.accounting.total_params)."""
    params_non_embedding: float | None = None
    """Non-embedding parameters: the law's N for a non-embedding law, the shape's exact count otherwise (what the
    batch and learning-rate rules, fitted on non-embedding N, are given)."""
    params_counted: str = "non_embedding"
    """What the law's N counts: "total" or "non_embedding" (the law family's conventions.params)."""
    flops_convention: str = "6N"
    """The FLOP convention of budget_flops for an hours budget and of the time and MFU: "6N", "kaplan" or "palm"
    with the law's N (fits.accounting); by default the one the law was fitted with."""
    tokens: float
    tokens_per_param: float
    epochs: float
    """Passes over unique_tokens (1 when unique data was not given)."""
    batch_tokens: int
    batch_sequences: int
    seq_len: int
    vocab_size: int
    steps: int
    warmup_steps: int
    learning_rate: float
    lr_schedule: str
    final_lr_fraction: float
    shape: Shape
    predicted_loss: LossEstimate
    c_min_flops: float
    """Least compute for the same loss at B ≪ B_crit, eq. 5.5: C/(1 + B/B_crit)."""
    critical_batch_tokens: float
    early_stop_step: int | None
    """Kaplan eq. 5.7 lower bound on the early-stopping step at this batch, when the law gives one."""
    extra_compute: float
    """Kept for compatibility, always 0: a deadline keeps the GPUs given and scales the budget down instead of
    trading steps for a larger batch at extra compute (planner.deadline)."""
    inference_flops: float | None
    time: TimeEstimate | None
    alternatives: list[Alternative]
    binding: list[str]
    """Request fields that moved the plan away from the unconstrained optimum."""
    warnings: list[str]
    assumptions: list[str]
    layout: ParallelLayout | None = None
    """The parallel layout on the plan's GPUs (with hardware; None when no layout fits, with a warning)."""
    hardware_options: HardwareComparison | None = None
    """With hardware.gpu "best": every accelerator compared, and why this plan's was chosen."""
    n_opt_interval: list[float] | None = None
    """[low, high] (95%) of the compute-optimal N at this plan's compute over the fit's coefficient draws (its
    joint bootstrap draws when stored, planner.uncertainty.allocation_interval); null without draws."""
    d_opt_interval: list[float] | None = None
    """The same for the compute-optimal tokens D = C/(6·N)."""
    moe: MoePlan | None = None
    """The mixture-of-experts layout (null for a dense plan); ``params`` is then the total non-embedding N the
    law counts, ``compute_flops`` 6·N_active·D."""


class Prediction(msgspec.Struct, kw_only=True):
    """The loss a given model and training length should reach."""

    fit: FitRef
    params: float
    tokens: float
    steps: int | None
    batch_tokens: float | None
    compute_flops: float
    predicted_loss: LossEstimate
    critical_batch_tokens: float
    c_min_flops: float | None
    early_stop_step: int | None
    overfitting: float | None
    """Kaplan δL = L(N, D)/L(N, ∞) − 1 on the unique data (eq. 4.2), for Kaplan fits."""
    epochs: float
    warnings: list[str]
    assumptions: list[str]


class FrontierRow(msgspec.Struct, kw_only=True):
    """The plan at one budget, in brief."""

    compute_flops: float
    params: float
    tokens: float
    tokens_per_param: float
    batch_tokens: int
    steps: int
    predicted_loss: LossEstimate
    binding: list[str]
    warnings: list[str]


class Frontier(msgspec.Struct, kw_only=True):
    """The best plan at each of a range of budgets (one row per budget)."""

    fit: FitRef
    rows: list[FrontierRow]


def non_finite_fields(obj: msgspec.Struct, prefix: str = "", skip: tuple[str, ...] = ("request",)) -> list[str]:
    """Dotted names of every float inside ``obj`` that is NaN or infinite (``skip`` names are not visited)."""
    bad: list[str] = []
    for name in obj.__struct_fields__:
        if name in skip:
            continue
        value = getattr(obj, name)
        kind = type(value)
        if kind is float or isinstance(value, float):
            if value - value != 0.0:  # NaN and ±inf both give NaN here
                bad.append(prefix + name)
        elif kind is list:
            for i, item in enumerate(value):
                if isinstance(item, msgspec.Struct):
                    bad.extend(non_finite_fields(item, f"{prefix}{name}[{i}].", ()))
        elif isinstance(value, msgspec.Struct):
            bad.extend(non_finite_fields(value, f"{prefix}{name}.", ()))
    return bad
