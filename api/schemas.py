"""Envelopes of the HTTP API: the problem-details body and small request/response wrappers.

Domain objects (Fit, Plan, Run, Check) are served as the structs their packages define; nothing here
duplicates them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from fits.fit import Fit
from fits.result import FitResult
from planner import Plan
from planner.request import PlanRequest, ScopeName

MAX_ID = 2**63 - 1
"""Largest row id SQLite can store; larger ids in a path are rejected before they reach the database."""


class FieldError(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One offending input: where it is and what to do about it."""

    field: str
    """Path of the value in the request: ``budget.flops``, ``points[3].loss``, or a query/header name."""
    message: str
    source: str = "body"
    """``body``, ``query``, ``path`` or ``header``."""


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details, served as ``application/problem+json`` for every error."""

    type: str
    """A URI naming the kind of problem, e.g. ``urn:scaleplan:problem:validation-failed``."""
    title: str
    """Short summary of the kind of problem; the same for every occurrence of that kind."""
    status: int
    """The HTTP status code."""
    detail: str = ""
    """What went wrong in this request and what to change."""
    instance: str | None = None
    """The request path that produced the problem."""
    field: str | None = None
    """Path of the first offending input, when one input is to blame."""
    errors: list[FieldError] = []
    """Every offending input, when validation found several."""


class Health(msgspec.Struct, kw_only=True):
    status: str
    """``ok`` when the check passed."""


class Readiness(msgspec.Struct, kw_only=True):
    status: str
    """``ready`` or ``not ready``."""
    database: bool
    """The database answered a query."""
    fits_seeded: bool
    """The published fits are stored."""
    active_fits: int
    """How many (law, scope) pairs have an active fit."""
    detail: str = ""


class PlanPage(msgspec.Struct, kw_only=True):
    """One page of plans, newest first."""

    items: list[Plan]
    next_cursor: int | None
    """Pass as ``cursor`` to get the next (older) page; null on the last page."""


# ---------------------------------------------------------------------------------------------- fits

Positive = Annotated[float, msgspec.Meta(gt=0, lt=1e30)]
Count = Annotated[float, msgspec.Meta(ge=1, lt=1e30)]
"""Parameters, tokens, a batch or a step: at least one (a fit of sub-unit counts is not a fit of a model)."""
FittableLaw = Literal["chinchilla", "kaplan-nd", "kaplan-ns"]


class FitPoint(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One measured point. chinchilla and kaplan-nd need N, D, loss; kaplan-ns needs N, B, step, loss."""

    N: Count
    """Parameters (non-embedding for the Kaplan families)."""
    loss: Annotated[float, msgspec.Meta(gt=0, lt=100)]
    """Loss in nats per token."""
    D: Count | None = None
    """Training tokens."""
    B: Count | None = None
    """Batch size in tokens per step (kaplan-ns)."""
    step: Count | None = None
    """Optimizer step the loss was measured at (kaplan-ns)."""
    warmup: Annotated[float, msgspec.Meta(ge=0, lt=1e15)] | None = None
    """Warm-up steps of this point's run (kaplan-ns; points at or before it are dropped)."""


class FitRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Fit a law family to posted points: the same engine and options as ``python -m fits fit``."""

    law: FittableLaw
    points: Annotated[list[FitPoint], msgspec.Meta(min_length=1, max_length=20_000)]
    scope: ScopeName = "default"
    """Scope to store the fit under; it becomes the next version of (law, scope)."""
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9._-]{0,99}$")] | None = None
    """Stable name (starts with a letter). A name stays with one (law, scope); published names are reserved."""
    method: Literal["robust", "grid"] = "robust"
    bootstrap: Annotated[int, msgspec.Meta(ge=0, le=200)] = 0
    """Bootstrap resamples for 95% intervals (each costs about one fit; the command line allows more)."""
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 0
    warmup: Annotated[float, msgspec.Meta(ge=0, lt=1e15)] | None = None
    """kaplan-ns: warm-up steps for every point (overrides per-point ``warmup``)."""
    predict: Annotated[list[tuple[Positive, Positive]], msgspec.Meta(max_length=100)] = []
    """(N, X) pairs to report the loss at, with intervals: X is D tokens, or S_min steps for kaplan-ns."""
    budgets: Annotated[list[Positive], msgspec.Meta(max_length=100)] = []
    """Training budgets (FLOPs) to report the compute-optimal N at."""
    activate: bool = False
    """Make the new fit the active one of its (law, scope)."""


class FitCreated(msgspec.Struct, kw_only=True):
    """The stored fit and the full result of the fitting call (what ``python -m fits fit --json`` prints)."""

    fit: Fit
    result: FitResult


# ---------------------------------------------------------------------------------------------- runs


class ModelShape(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A decoder-only Transformer's shape; N is taken as 12·n_layer·d_model² (Kaplan eq. 2.1)."""

    n_layer: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    d_model: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    n_head: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None


StepCount = Annotated[int, msgspec.Meta(ge=0, lt=2**62)]
Nats = Annotated[float, msgspec.Meta(gt=0, lt=100)]
Measure = Annotated[float, msgspec.Meta(ge=0, lt=1e12)]


class IngestPoint(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One point of a posted curve (stored as the verifier's RunPoint): after ``step`` updates and ``tokens``
    training tokens, with ``val_loss`` (what the refit fits) and/or ``train_loss``."""

    step: StepCount
    tokens: StepCount | None = None
    """Tokens trained on by then; default step × the batch (given, it must agree with that within 1% and one
    batch)."""
    train_loss: Nats | None = None
    val_loss: Nats | None = None
    lr: Measure | None = None
    seconds: Measure | None = None


class RunIngest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A training run measured elsewhere, stored as a complete run of ``scope`` so the refit job uses it.

    Give the model as ``n_params`` (non-embedding N) or ``shape``, not both; the batch as ``batch_tokens`` or
    ``batch_size`` sequences of ``seq_len`` tokens. Each point's ``tokens``, when given, must be its ``step`` ×
    the batch (within 1% and one batch, for ramps and counting conventions); values that contradict each other
    that way, or two points at one step, are a 409. The curve is stored as the verifier's RunPoint list.
    """

    scope: ScopeName
    """Which data set / tokenizer / architecture the run belongs to; runs of one scope are fitted together."""
    seq_len: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    points: Annotated[list[IngestPoint], msgspec.Meta(min_length=1, max_length=100_000)]
    """By step; the order they are sent in does not matter, two points of one step contradict each other."""
    n_params: Annotated[int, msgspec.Meta(ge=1, lt=10**15)] | None = None
    shape: ModelShape | None = None
    params_total: Annotated[int, msgspec.Meta(ge=1, lt=10**15)] | None = None
    batch_tokens: Annotated[int, msgspec.Meta(ge=1, lt=10**12)] | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, lt=10**9)] | None = None
    """Sequences per optimizer step."""
    warmup_steps: Annotated[int, msgspec.Meta(ge=0, lt=10**12)] = 0
    lr: Annotated[float, msgspec.Meta(gt=0, lt=10)] | None = None
    seed: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] | None = None
    plan_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)] | None = None
    """The plan this run carried out, if any."""
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class AcceleratorInfo(msgspec.Struct, kw_only=True):
    """One catalogue accelerator: dense peaks (TFLOP/s, never the sparse figure), memory, bandwidth, interconnect,
    default MFU and price per device-hour, with the source of each figure."""

    name: str
    vendor: str
    aliases: list[str]
    bf16_tflops: float
    fp8_tflops: float | None
    sparse_bf16_tflops: float | None
    memory_gb: float
    memory_bandwidth_gbs: float | None
    intra_node: str
    intra_node_gbs: float
    node_size: int
    inter_node: str
    inter_node_gbs: float
    default_mfu: float
    price_per_hour: float | None
    sources: dict[str, str]


class CompareRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A plan request (its hardware gives the GPU count; its gpu is ignored) and the accelerators to compare."""

    request: PlanRequest
    gpus: list[Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]] | None = None
    """Catalogue names; default every accelerator in the catalogue."""
