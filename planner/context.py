"""What a solve carries around: the fit's family and loss model, its fitted range, and the request's settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from fits.accounting import FlopConvention, ParamsCount
from fits.fit import Fit, FitRef
from fits.laws.base import Law, LossModel
from fits.laws.registry import get_law
from planner.errors import PlanError
from planner.request import PlanRequest

LawModel = LossModel
"""The loss models the planner searches: loss(N, C, unique), tokens(N, C), compute_for_loss(N, L), ..."""


def law_for(fit: Fit) -> Law:
    """The family of a fit (PlanError naming the fit when its law is not registered)."""
    try:
        return get_law(fit.law)
    except ValueError:
        raise PlanError("fit", f"law {fit.law!r} of fit {fit.name or fit.id} is not one the planner knows") from None


def model_for(fit: Fit) -> LawModel:
    """The planner's loss model for a fit, from its family."""
    law = law_for(fit)
    try:
        return law.model(fit.coefficients)
    except (KeyError, ValueError) as exc:
        raise PlanError("fit", f"fit {fit.name or fit.id} cannot be planned with: {exc}") from None


def compute_range(fit: Fit) -> tuple[float, float] | None:
    """Training FLOPs the fit was made on: its diagnostics, else the published set's documented range."""
    if fit.diagnostics.compute_range and len(fit.diagnostics.compute_range) == 2:
        lo, hi = fit.diagnostics.compute_range
        return float(lo), float(hi)
    try:
        return get_law(fit.law).published_ranges.get(fit.name or "")
    except ValueError:
        return None


def data_ranges(fit: Fit) -> dict[str, tuple[float, float]]:
    """[min, max] of N, D and tokens per parameter the fit saw: its diagnostics, else the published set's."""
    if fit.diagnostics.data_ranges:
        return {k: (float(v[0]), float(v[1])) for k, v in fit.diagnostics.data_ranges.items() if len(v) == 2}
    try:
        return dict(get_law(fit.law).published_data_ranges.get(fit.name or "", {}))
    except ValueError:
        return {}


def fit_ref(fit: Fit) -> FitRef:
    return FitRef(
        id=fit.id if fit.id is not None else 0, name=fit.name, law=fit.law, scope=fit.scope, version=fit.version
    )


@dataclass
class PlanContext:
    """The request, the fit and the settings derived from them; warnings and assumptions collect here."""

    request: PlanRequest
    fit: Fit
    law: Law
    seq_len: int
    vocab_size: int
    rule: str
    peak: float | None
    params_count: ParamsCount = "non_embedding"
    """What the law's N counts (the law family's conventions.params)."""
    convention: FlopConvention = "6N"
    """The FLOP convention of the plan's hardware FLOPs, time and MFU."""
    warnings: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    rule_outside: list[str] = field(default_factory=list)
    """Where the plan extrapolates the batch/LR rule's fitted range (one note in the rule's assumption)."""
