"""What a solve carries around: the fit's loss model, the fit's fitted range, and the request's settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from fits.accounting import FlopConvention, ParamsCount
from fits.fit import Fit, FitRef
from planner.chinchilla_plan import PUBLISHED_COMPUTE_RANGE as CHINCHILLA_RANGE
from planner.chinchilla_plan import ChinchillaModel
from planner.errors import PlanError
from planner.kaplan_plan import PUBLISHED_COMPUTE_RANGE as KAPLAN_RANGE
from planner.kaplan_plan import KaplanNDModel, KaplanNSModel, KaplanTable6Model
from planner.request import PlanRequest

LawModel = ChinchillaModel | KaplanTable6Model | KaplanNSModel | KaplanNDModel
"""The loss models the planner searches: loss(N, C, unique), tokens(N, C), compute_for_loss(N, L), ..."""

PUBLISHED_RANGES = {"kaplan2020": KAPLAN_RANGE, "hoffmann2022": CHINCHILLA_RANGE, "besiroglu2024": CHINCHILLA_RANGE}


def model_for(fit: Fit) -> LawModel:
    """The planner's loss model for a fit's law family."""
    try:
        if fit.law == "chinchilla":
            return ChinchillaModel(fit.coefficients)
        if fit.law == "kaplan":
            return KaplanTable6Model(fit.coefficients)
        if fit.law == "kaplan-ns":
            return KaplanNSModel(fit.coefficients)
        if fit.law == "kaplan-nd":
            return KaplanNDModel(fit.coefficients)
    except (KeyError, ValueError) as exc:
        raise PlanError("fit", f"fit {fit.name or fit.id} cannot be planned with: {exc}") from None
    raise PlanError("fit", f"law {fit.law!r} of fit {fit.name or fit.id} is not one the planner knows")


def compute_range(fit: Fit) -> tuple[float, float] | None:
    """Training FLOPs the fit was made on: its diagnostics, else the published set's documented range."""
    if fit.diagnostics.compute_range and len(fit.diagnostics.compute_range) == 2:
        lo, hi = fit.diagnostics.compute_range
        return float(lo), float(hi)
    return PUBLISHED_RANGES.get(fit.name or "")


def fit_ref(fit: Fit) -> FitRef:
    return FitRef(
        id=fit.id if fit.id is not None else 0, name=fit.name, law=fit.law, scope=fit.scope, version=fit.version
    )


@dataclass
class PlanContext:
    """The request, the fit and the settings derived from them; warnings and assumptions collect here."""

    request: PlanRequest
    fit: Fit
    kaplan: bool
    seq_len: int
    vocab_size: int
    rule: str
    peak: float | None
    params_count: ParamsCount = "non_embedding"
    """What the law's N counts (fits.accounting.PARAMS_COUNTED)."""
    convention: FlopConvention = "6N"
    """The FLOP convention of the plan's hardware FLOPs, time and MFU."""
    warnings: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
