"""Batch size, learning rate and schedule for a planned (N, D), from a published rule (fits.laws.hyperparams).

    kaplan     B = B_crit at the planned loss (Table 6's B_e·C_min^0.24 for the published Kaplan set, eq. 1.4
               otherwise); LR(N) of eq. D.1; 3000-step warmup; cosine decay to zero.
    deepseek   B and peak LR from DeepSeek LLM's laws at C = M·D, M the non-embedding FLOPs per token with
               attention (72·n_layer·d_model² + 6·n_layer·d_model·seq_len); 2000-step warmup; DeepSeek
               decays in steps (to 31.6% after 80% of tokens, 10% after 90%) and reports cosine to 10% as
               equivalent, which is what is planned here.
    steplaw    B and peak LR from Li et al. 2025's Step Law in N and D; warmup and schedule as deepseek.
Every rule takes non-embedding N (Step Law and Kaplan's LR(N) were fitted on it): for a law whose N counts
all parameters the planner passes the shape's non-embedding count (fits.accounting), not the law's N.
Warmup is capped at a tenth of the run: a fixed long warmup is one of the reasons Kaplan's small models
under-performed (Porian et al. 2024).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fits.laws import hyperparams, kaplan2020
from planner.errors import PlanError
from planner.plan import Shape
from planner.request import Hardware

WARMUP_STEPS = {"kaplan": 3000, "deepseek": 2000, "steplaw": 2000}
FINAL_LR_FRACTION = {"kaplan": 0.0, "deepseek": 0.1, "steplaw": 0.1}
RULE_TEXT = {
    "kaplan": "batch = critical batch B_crit(L) (Kaplan eq. 1.4 / Table 6), LR(N) = 0.003239 − 0.0001395·ln N "
    "(Kaplan eq. D.1, natural log), warmup 3000 steps (≤ 10% of the run), cosine to 0",
    "deepseek": "batch = 0.2920·C^0.3271 tokens and peak LR = 0.3118·C^−0.1250 with C = M·D (DeepSeek LLM "
    "2024), warmup 2000 steps (≤ 10% of the run), cosine to 10% of peak",
    "steplaw": "batch = 0.58·D^0.571 tokens and peak LR = 1.79·N^−0.713·D^0.307 (Step Law, Li et al. 2025), "
    "warmup 2000 steps (≤ 10% of the run), cosine to 10% of peak",
}


@dataclass
class Hyper:
    batch_tokens: float
    learning_rate: float
    warnings: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    """Where the plan lies outside the range the rule was fitted on: said once, in the plan's assumptions."""


def rule_values(rule: str, params: float, tokens: float, shape: Shape, seq_len: int, critical_batch: float) -> Hyper:
    """The rule's batch (tokens, before rounding to sequences) and peak learning rate; ``params`` is the
    non-embedding parameter count."""
    warnings: list[str] = []
    if rule == "kaplan":
        n_for_lr = params
        if params > kaplan2020.LR_VALID_MAX_N:
            warnings.append(
                f"N = {params:.3g} is past N ≈ 1e10 where Kaplan's LR(N) breaks down (it reaches 0 at 1.2e10); "
                "the LR is held at its value for N = 1e10"
            )
            n_for_lr = kaplan2020.LR_VALID_MAX_N
        return Hyper(critical_batch, float(kaplan2020.learning_rate(n_for_lr)), warnings)
    if rule == "deepseek":
        m = float(hyperparams.deepseek_flops_per_token(shape.n_layer, shape.d_model, seq_len))
        c = m * tokens
        outside = _outside(hyperparams.DEEPSEEK2024_RANGES, C=c)
        return Hyper(float(hyperparams.deepseek_batch(c)), float(hyperparams.deepseek_lr(c)), warnings, outside)
    if rule == "steplaw":
        outside = _outside(hyperparams.STEP_LAW2025_RANGES, N=params, D=tokens)
        return Hyper(
            float(hyperparams.step_law_batch(tokens)), float(hyperparams.step_law_lr(params, tokens)), warnings,
            outside,
        )
    raise PlanError("hyperparams", f"must be deepseek, steplaw or kaplan, got {rule!r}")


def _outside(ranges: tuple[hyperparams.FittedRange, ...], **values: float) -> list[str]:
    """hyperparams.range_warnings for scalars, without its array machinery on the common in-range path."""
    if all(r.low <= values[r.variable] <= r.high for r in ranges if r.variable in values):
        return []
    return list(hyperparams.range_warnings(ranges, **values))


def batch_multiple(hardware: Hardware | None) -> int:
    """Sequences a batch must be a multiple of to split evenly: data-parallel degree × micro-batch. The plan
    runs data parallel over every GPU given at a micro-batch of one sequence (gradient accumulation makes up
    the rest), so that is the GPU count; 1 without hardware."""
    return 1 if hardware is None else int(hardware.count)


def batch_sequences(
    batch_tokens: float, seq_len: int, low: float | None, high: float | None, multiple: int = 1
) -> int:
    """Whole sequences per batch, a multiple of ``multiple``, nearest to batch_tokens and inside [low, high]."""
    least = 1 if low is None else max(1, math.ceil(low / seq_len - 1e-9))
    most = math.inf if high is None else math.floor(high / seq_len + 1e-9)
    if most < 1:
        raise PlanError("max_batch_tokens", f"{high:g} is less than one sequence of seq_len = {seq_len} tokens")
    if least > most:
        raise PlanError(
            "min_batch_tokens",
            f"no whole number of {seq_len}-token sequences lies between {low:g} and {high:g} tokens",
        )
    least_m = multiple * math.ceil(least / multiple)
    most_m = most if most == math.inf else multiple * math.floor(most / multiple)
    if least_m > most_m:
        raise PlanError(
            "max_batch_tokens",
            f"no batch between {low or seq_len:g} and {high:g} tokens splits evenly over {multiple} GPUs "
            f"(a multiple of {multiple} sequences of {seq_len} tokens); change the batch limits or hardware.count",
        )
    return int(min(max(multiple * round(batch_tokens / seq_len / multiple), least_m), most_m))


def warmup_steps(rule: str, steps: int) -> int:
    return int(min(WARMUP_STEPS[rule], steps // 10))
