"""What a caller asks the planner: a budget (or a target loss), the fit to use, and optional constraints.

The structs are served over HTTP as they are, so the msgspec constraints below also form the schema.
``validate`` repeats every check for structs built in Python (msgspec checks constraints only when decoding)
and adds the ones that involve several fields.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

import msgspec

from fits.accounting import CONVENTIONS, FlopConvention, MoeSpec
from fits.units import PF_DAY
from planner.errors import Contradiction, PlanError

# Sane outer bounds: far beyond any real run, tight enough to keep every derived number finite.
MAX_FLOPS = 1e40
MAX_COUNT = 1e30  # parameters, tokens
MAX_HOURS = 1e7
MIN_FLOPS = 1e9
"""Smallest budget planned: about 3,000 tokens for the smallest shape."""
DEFAULT_MFU = 0.4
"""Model FLOPs utilisation assumed when a request names hardware without one."""
SMALLEST_PARAMS = 12 * 64 * 64
"""One layer of width 64 (planner.shape's smallest shape)."""
MIN_UNIQUE_TOKENS = 1e3
MAX_EXPERTS = 1_000_000
MAX_GRANULARITY = 1e6

Flops = Annotated[float, msgspec.Meta(ge=MIN_FLOPS, lt=MAX_FLOPS, description="FLOPs")]
PfDays = Annotated[
    float, msgspec.Meta(ge=MIN_FLOPS / PF_DAY, lt=MAX_FLOPS / PF_DAY, description="PF-days (8.64e19 FLOPs)")
]
Count = Annotated[float, msgspec.Meta(gt=0, lt=MAX_COUNT)]
Params = Annotated[
    float, msgspec.Meta(ge=SMALLEST_PARAMS, lt=MAX_COUNT, description="parameters, counted as the law's N counts them")
]
UniqueTokens = Annotated[float, msgspec.Meta(ge=MIN_UNIQUE_TOKENS, lt=MAX_COUNT, description="tokens")]
Hours = Annotated[float, msgspec.Meta(gt=0, lt=MAX_HOURS)]
Loss = Annotated[float, msgspec.Meta(gt=0, lt=100, description="nats per token")]
HyperparamsRule = Literal["deepseek", "steplaw", "kaplan"]
MAX_ID = 2**63 - 1
"""Largest row id SQLite stores."""
FitId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
FitName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ScopeName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""A scope: printable text (no NUL or other control characters), at most 200 characters."""
LawName = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]


class Hardware(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The accelerators a run uses; needed for an hours budget, a deadline, and time or cost estimates."""

    gpu: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
    """Catalogue name (``python -m planner gpus``, GET /v1/hardware: A100-40GB, A100 (80GB), H100 (SXM), H100-PCIe,
    H100-NVL, H200, B200, GB200, L40S, MI300X, MI325X, MI355X, TPU-v5e, TPU-v5p, TPU-v6e, Gaudi3); any name when
    peak_tflops is given (a custom accelerator); "best" to compare the catalogue and take the best."""
    count: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 1
    mfu: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    """Model FLOPs utilisation: the fraction of the dense bf16 peak the training code sustains; default the
    catalogue's for the device (DEFAULT_MFU for a custom one)."""
    price_per_gpu_hour: Annotated[float, msgspec.Meta(ge=0, lt=1e6)] | None = None
    """US dollars per GPU-hour (the plan's time.cost is in USD); default the catalogue's (overridable by
    SCALEPLAN_GPU_PRICES)."""
    peak_tflops: Annotated[float, msgspec.Meta(gt=0, lt=1e6)] | None = None
    """Dense bf16 peak per GPU in TFLOP/s (never the 'with sparsity' figure); overrides the catalogue."""
    memory_gb: Annotated[float, msgspec.Meta(gt=0, lt=1e6)] | None = None
    """Memory per GPU in GB; overrides the catalogue (80 for a custom accelerator without it)."""


class PlanRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A planning question. Give exactly one of compute_flops, pf_days, hours (with hardware) or target_loss."""

    compute_flops: Flops | None = None
    """Training budget in FLOPs, counted as the law counts it (6·N·D)."""
    pf_days: PfDays | None = None
    hours: Hours | None = None
    """Wall-clock budget on ``hardware``; its FLOPs include the embedding and attention work."""
    budget_usd: Annotated[float, msgspec.Meta(gt=0, lt=1e13)] | None = None
    """Money budget: hours = budget_usd / (price per GPU-hour × hardware.count), the price the request's or the
    catalogue's."""
    target_loss: Loss | None = None
    """Instead of a budget: plan the least compute that reaches this loss."""
    hardware: Hardware | None = None

    fit: FitId | FitName | None = None
    """Fit by stable name (kaplan2020, hoffmann2022, besiroglu2024) or id; default besiroglu2024."""
    law: LawName | None = None
    """With ``scope`` (and no ``fit``): use the active fit of that law and scope."""
    scope: ScopeName | None = None

    max_params: Params | None = None
    """Largest parameter count that fits (memory), counted as the law's N: all parameters for the Chinchilla
    sets, non-embedding for Kaplan's."""
    unique_tokens: UniqueTokens | None = None
    """Unique training tokens available; beyond one epoch the repeated-data law prices the repetition."""
    max_epochs: Annotated[float, msgspec.Meta(gt=0, lt=1e6)] | None = None
    """Most passes over ``unique_tokens``."""
    deadline_hours: Hours | None = None
    """Wall-clock limit on the GPUs given: a budget they cannot train in time is scaled down to the largest they
    can (a smaller model; the warnings say what the full budget would take); a target loss they cannot reach
    in time is refused."""
    min_batch_tokens: Count | None = None
    max_batch_tokens: Count | None = None
    seq_len: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] | None = None
    """Context length; default 1024 for Kaplan fits, 2048 for Chinchilla fits."""
    vocab_size: Annotated[int, msgspec.Meta(ge=2, le=100_000_000)] | None = None
    """Vocabulary for total parameters and embedding FLOPs; default 50257 (Kaplan) or 32000 (Chinchilla). The plan
    pads it up to a multiple of 128 (plan.vocab_size)."""
    kv_heads: Annotated[int, msgspec.Meta(ge=1, le=1024)] | None = None
    """Grouped-query attention: key/value heads (the shape takes the largest divisor of n_head not above it)."""
    inference_tokens: Annotated[float, msgspec.Meta(ge=0, lt=MAX_COUNT)] | None = None
    """Tokens the model will serve; the budget then covers training plus 2·N FLOPs per served token."""
    hyperparams: HyperparamsRule | None = None
    """Batch and learning-rate rule: "deepseek" (default for Chinchilla fits), "steplaw", or "kaplan"."""
    require_fit: bool = False
    """Refuse (hardware.count) a plan whose model fits on no parallel layout of the GPUs, instead of a warning."""
    moe_experts: Annotated[int, msgspec.Meta(ge=2, le=MAX_EXPERTS, description=(
        "Mixture of experts: routed experts per MoE layer (every layer's FFN). Needs a MoE fit (krajewski2024); "
        "FLOPs then follow the active parameters and memory the total."), examples=[64])] | None = None
    moe_top_k: Annotated[int, msgspec.Meta(ge=1, le=MAX_EXPERTS, description=(
        "Routed experts each token uses (default 1); at most moe_experts."), examples=[2])] | None = None
    moe_granularity: Annotated[float, msgspec.Meta(gt=0, le=MAX_GRANULARITY, description=(
        "G = d_ff / expert_d_ff with d_ff = 4·d_model (Krajewski et al. 2024): 1 is an expert as wide as the dense "
        "FFN, G > 1 narrower ones. Default moe_top_k, so a token uses one dense FFN's worth of expert "
        "parameters, as in the runs the law was fitted on."), examples=[2.0])] | None = None
    moe_shared_experts: Annotated[int, msgspec.Meta(ge=0, le=MAX_EXPERTS, description=(
        "Always-on experts per MoE layer (DeepSeekMoE), each as wide as a routed expert; default 0. The "
        "published law has none: their effect on the loss has no published basis."), examples=[0])] | None = None
    flops_convention: FlopConvention | None = None
    """How hardware FLOPs per token are counted for an hours budget, the time and the MFU: "6N" (the default:
    the convention the published sets were fitted with, 6·N with the law's N), "kaplan" (+ 6·n_layer·seq_len·
    d_model of attention) or "palm" (+ 12·n_layer·seq_len·d_model, the usual MFU convention, and the output
    layer's 6·d_model·vocab when the law's N leaves it out). compute_flops stays the law's 6·N·D."""


BUDGET_FIELDS = ("compute_flops", "pf_days", "hours", "budget_usd", "target_loss")

_POSITIVE_FLOATS: dict[str, float] = {
    "compute_flops": MAX_FLOPS,
    "pf_days": MAX_FLOPS / PF_DAY,
    "hours": MAX_HOURS,
    "budget_usd": 1e13,
    "target_loss": 100.0,
    "max_params": MAX_COUNT,
    "unique_tokens": MAX_COUNT,
    "max_epochs": 1e6,
    "deadline_hours": MAX_HOURS,
    "min_batch_tokens": MAX_COUNT,
    "max_batch_tokens": MAX_COUNT,
}


def check_number(field: str, value: object, *, upper: float, allow_zero: bool = False) -> float:
    """A finite real number in (0, upper) (or [0, upper)); anything else is a PlanError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(field, f"must be a number, got {value!r}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise PlanError(field, f"must be a finite number, got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        raise PlanError(field, f"must be {'≥ 0' if allow_zero else '> 0'}, got {value!r}")
    if number >= upper:
        raise PlanError(field, f"must be below {upper:g}, got {value!r}")
    return number


def _check_int(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(field, f"must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise PlanError(field, f"must be between {low} and {high}, got {value}")


def validate_hardware(hw: Hardware, field: str = "hardware") -> None:
    if not isinstance(hw, Hardware):
        raise PlanError(field, f"must be a Hardware record, got {type(hw).__name__}")
    if not isinstance(hw.gpu, str) or not hw.gpu.strip():
        raise PlanError(f"{field}.gpu", "must name a GPU, e.g. H100")
    _check_int(f"{field}.count", hw.count, 1, 10_000_000)
    if hw.mfu is not None:
        mfu = check_number(f"{field}.mfu", hw.mfu, upper=math.inf)
        if mfu > 1:
            raise PlanError(f"{field}.mfu", f"is a fraction of peak and must be ≤ 1, got {mfu:g} (0.4 = 40%)")
    if hw.price_per_gpu_hour is not None:
        check_number(f"{field}.price_per_gpu_hour", hw.price_per_gpu_hour, upper=1e6, allow_zero=True)
    if hw.peak_tflops is not None:
        check_number(f"{field}.peak_tflops", hw.peak_tflops, upper=1e6)
    if hw.memory_gb is not None:
        check_number(f"{field}.memory_gb", hw.memory_gb, upper=1e6)


def validate(request: PlanRequest) -> None:
    """Check one request field by field, then the combinations; raise PlanError on the first problem."""
    if not isinstance(request, PlanRequest):
        raise PlanError("request", f"must be a PlanRequest, got {type(request).__name__}")
    for name, upper in _POSITIVE_FLOATS.items():
        value = getattr(request, name)
        if value is not None:
            check_number(name, value, upper=upper)
    if request.max_params is not None and request.max_params < SMALLEST_PARAMS:
        raise PlanError(
            "max_params",
            f"{request.max_params:g} is below {SMALLEST_PARAMS}, the smallest shape (1 layer, d_model 64)",
        )
    if request.unique_tokens is not None and request.unique_tokens < MIN_UNIQUE_TOKENS:
        raise PlanError("unique_tokens", f"{request.unique_tokens:g} is too few to train on (at least 1000)")
    if request.inference_tokens is not None:
        check_number("inference_tokens", request.inference_tokens, upper=MAX_COUNT, allow_zero=True)
    if request.seq_len is not None:
        _check_int("seq_len", request.seq_len, 1, 10_000_000)
    if request.vocab_size is not None:
        _check_int("vocab_size", request.vocab_size, 2, 100_000_000)
    if request.kv_heads is not None:
        _check_int("kv_heads", request.kv_heads, 1, 1024)
    if request.fit is not None and (
        isinstance(request.fit, bool) or not isinstance(request.fit, str | int) or request.fit == ""
    ):
        raise PlanError("fit", f"must be a fit name or id, got {request.fit!r}")
    if request.flops_convention is not None and request.flops_convention not in CONVENTIONS:
        raise PlanError("flops_convention",
                        f"must be one of {', '.join(CONVENTIONS)}, got {request.flops_convention!r}")
    if request.hyperparams is not None and request.hyperparams not in ("deepseek", "steplaw", "kaplan"):
        raise PlanError("hyperparams", f"must be deepseek, steplaw or kaplan, got {request.hyperparams!r}")
    if request.hardware is not None:
        validate_hardware(request.hardware)
    validate_moe(request)

    given = [name for name in BUDGET_FIELDS if getattr(request, name) is not None]
    if not given:
        raise PlanError("compute_flops", "no budget: give compute_flops, pf_days, hours or budget_usd (with hardware) "
                        "or target_loss")
    if len(given) > 1:
        raise PlanError(given[1], f"give one budget only, got {' and '.join(given)}")
    if request.hours is not None and request.hardware is None:
        raise PlanError("hardware", "an hours budget needs hardware (gpu, count) to turn hours into FLOPs")
    if request.budget_usd is not None and request.hardware is None:
        raise PlanError("hardware", "a money budget needs hardware (gpu, count) to turn money into GPU-hours")
    if not isinstance(request.require_fit, bool):
        raise PlanError("require_fit", f"must be true or false, got {request.require_fit!r}")
    if request.deadline_hours is not None and request.hardware is None:
        raise PlanError("hardware", "a deadline needs hardware (gpu, count) to turn steps into hours")
    if request.max_epochs is not None and request.unique_tokens is None:
        raise PlanError("max_epochs", "limits passes over unique_tokens; give unique_tokens too")
    if (
        request.min_batch_tokens is not None
        and request.max_batch_tokens is not None
        and request.min_batch_tokens > request.max_batch_tokens
    ):
        raise Contradiction(
            "min_batch_tokens",
            f"{request.min_batch_tokens:g} is above max_batch_tokens {request.max_batch_tokens:g}",
        )
    if request.fit is not None and (request.law is not None or request.scope is not None):
        raise PlanError("fit", "give either fit, or law and scope, not both")
    if request.law is not None and request.scope is None:
        raise PlanError("scope", f"law {request.law!r} needs a scope to pick its active fit")


MOE_FIELDS = ("moe_experts", "moe_top_k", "moe_granularity", "moe_shared_experts")


def validate_moe(request: PlanRequest) -> None:
    """The mixture-of-experts fields alone and together (a width-dependent limit, an expert narrower than one
    unit, is checked once the shape is known: fits.accounting.expert_width)."""
    if request.moe_experts is None:
        for name in MOE_FIELDS[1:]:
            if getattr(request, name) is not None:
                raise PlanError("moe_experts", f"{name} describes a mixture of experts: give moe_experts too")
        return
    experts = request.moe_experts
    if isinstance(experts, bool) or not isinstance(experts, int):
        raise PlanError("moe_experts", f"must be a whole number of experts, got {experts!r}")
    if experts < 2:
        raise PlanError("moe_experts", f"a mixture of experts needs at least 2 experts, got {experts} "
                        "(leave moe_experts out for a dense model)")
    _check_int("moe_experts", experts, 2, MAX_EXPERTS)
    if request.moe_top_k is not None:
        _check_int("moe_top_k", request.moe_top_k, 1, MAX_EXPERTS)
        if request.moe_top_k > experts:
            raise Contradiction("moe_top_k", f"top-k {request.moe_top_k} is more than the {experts} experts there are")
    if request.moe_shared_experts is not None:
        _check_int("moe_shared_experts", request.moe_shared_experts, 0, MAX_EXPERTS)
    if request.moe_granularity is not None:
        check_number("moe_granularity", request.moe_granularity, upper=MAX_GRANULARITY * (1 + 1e-12))


def moe_spec(request: PlanRequest) -> MoeSpec | None:
    """The request's MoE layout with its defaults (top-k 1, granularity = top-k, no shared experts), or None."""
    if request.moe_experts is None:
        return None
    top_k = request.moe_top_k or 1
    return MoeSpec(
        experts=request.moe_experts,
        top_k=top_k,
        granularity=float(request.moe_granularity if request.moe_granularity is not None else top_k),
        shared_experts=request.moe_shared_experts or 0,
    )


_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([kKmMbBgGtTpP]?)\s*$")


def parse_quantity(text: str, field: str) -> float:
    """Read '1e21', '3.5e9', '70B', '1.4T' or '500M' as a float; a PlanError naming ``field`` otherwise."""
    match = _NUMBER.match(text)
    if match is None:
        # float() also accepts nan and inf; let check_number reject them with the right wording.
        try:
            return float(text)
        except ValueError:
            raise PlanError(field, f"must be a number such as 1e21 or 70B, got {text!r}") from None
    return float(match.group(1)) * _SUFFIXES.get(match.group(2).lower(), 1.0)


# ---------------------------------------------------------------------------------------------- predict

AtLeastOne = Annotated[float, msgspec.Meta(ge=1, lt=MAX_COUNT)]


class PredictRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A model size and a training length: tokens, or steps at a batch."""

    params: AtLeastOne
    """Non-embedding parameters N."""
    tokens: AtLeastOne | None = None
    steps: AtLeastOne | None = None
    batch_tokens: AtLeastOne | None = None
    unique_tokens: AtLeastOne | None = None
    fit: FitId | FitName | None = None
    law: LawName | None = None
    scope: ScopeName | None = None


def validate_predict(request: PredictRequest) -> None:
    if not isinstance(request, PredictRequest):
        raise PlanError("request", f"must be a PredictRequest, got {type(request).__name__}")
    for name in ("params", "tokens", "steps", "batch_tokens", "unique_tokens"):
        value = getattr(request, name)
        if value is not None and check_number(name, value, upper=MAX_COUNT) < 1:
            raise PlanError(name, f"must be at least 1, got {value!r}")
    if request.tokens is None and (request.steps is None or request.batch_tokens is None):
        raise PlanError("tokens", "give tokens, or steps together with batch_tokens")
    if request.tokens is not None and request.steps is not None:
        raise PlanError("steps", "give tokens or steps (with batch_tokens), not both")
