"""A check: what the verifier measured on a corpus against what a fit predicted, stored in the ``checks`` table.

A ``Check`` lists one ``CheckItem`` per comparison (a validation curve, a final loss, an early-stopping
step, an allocation, an extrapolation), each with the predicted and observed value, the error, the
tolerance it was judged by and its verdict, plus a ``CheckSummary`` of the ladder, the refit and the
exponents of the corpus scope beside those of the plan's fit. This module only defines and stores the
records (it imports no training code), so the HTTP service can serve them cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from fits.db import from_row, now, to_json, transaction
from fits.errors import BadInput, NotFound
from fits.fit import FitRef

if TYPE_CHECKING:
    import sqlite_utils

ItemKind = Literal["curve", "final_loss", "early_stop", "allocation", "extrapolation", "isoflop_vertex",
                   "allocation_exponent", "tokens_per_param", "lr_rule", "batch_rule"]
ItemVerdict = Literal["pass", "fail", "skip", "inconclusive"]
CheckStatus = Literal["running", "complete", "failed"]
CheckVerdict = Literal["pass", "fail", "inconclusive"]


class CheckError(BadInput):
    """A check cannot run with this input; ``field`` names the offending option."""


class CheckNotFound(NotFound):
    """No stored check with that id."""

    default_message = "check not found"


class CheckItem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One comparison of a prediction with a measurement."""

    kind: ItemKind
    name: str
    """Which run(s) or budget the item is about, e.g. "run 12: N=1.2e5, C=3e11"."""
    predicted: float | None
    observed: float | None
    error: float | None
    """How far observed is from predicted, in the unit that ``metric`` names."""
    metric: str
    """How ``error`` is computed, e.g. "relative error (obs - pred)/pred" or "log2(obs/pred)"."""
    tolerance: float
    """The item passes when ``error`` lies inside the band this bounds (see ``rule``)."""
    rule: str
    """The pass rule in words, e.g. "|error| <= 0.05"."""
    verdict: ItemVerdict
    unit: str = ""
    """Unit of predicted and observed (nats/token, steps, parameters)."""
    run_ids: list[int] = []
    fit_id: int | None = None
    """The fit that made the prediction."""
    note: str = ""
    sigma: float | None = None
    """Standard deviation of the predictive distribution, in ``unit``."""
    interval80: list[float] | None = None
    """The pre-registered 80% predictive interval, in ``unit``."""
    interval95: list[float] | None = None
    observed_interval: list[float] | None = None
    """A 95% interval of the observation itself (an IsoFLOP vertex, a fitted exponent), in ``unit``."""
    z: float | None = None
    """(observed - predicted) / sigma (in the item's own scale, e.g. ln N for sizes)."""
    registered: bool = False
    """Whether the interval was stored before the run(s) trained."""
    p_value: float | None = None
    """How surprising the observation is under the item's prediction (two-sided for a z; one-sided for a rule
    sweep; chi-square for a curve's RMS z): what the check's family-wise test (``family_test``) corrects."""


class Exponents(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The exponents of one fit and what they imply for the plan's budget."""

    fit: FitRef
    values: dict[str, float]
    """Chinchilla: alpha, beta, a = beta/(alpha+beta). Kaplan: alpha_N, alpha_S (and alpha_D when fitted)."""
    intervals: dict[str, list[float]] = {}
    n_opt: float | None = None
    """Compute-optimal N at the plan's budget with this fit's coefficients."""
    n_opt_interval: list[float] | None = None
    n_opt_transfer: float | None = None
    """Same family as the plan: the plan fit's N_opt at the largest proxy budget, carried to the plan's budget
    with this fit's allocation exponent instead of the plan fit's (only the growth rate changes)."""


class Refit(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One fit version the check's refit recorded."""

    fit: FitRef
    n_points: int
    heldout_error: float | None = None
    """Mean relative error on the largest-compute points when fitted on the rest (fits' own split)."""
    active: bool = False
    """Whether fits activated it (its held-out error is no worse than the active fit's)."""


class CheckSummary(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Everything about a check that is not one comparison."""

    plan_fit: FitRef | None = None
    scope_fit: FitRef | None = None
    """The scope's fit that made the predictions (None when a calibration could not make one)."""
    calibrated: bool = False
    """True when this check first ran a calibration ladder because the scope had no fit."""
    budget_seconds: float | None = None
    wall_seconds: float | None = None
    device: str | None = None
    executor: str | None = None
    workers: int | None = None
    matmul_flops_per_second: float | None = None
    """Throughput.matmul_flops_per_second of one worker: the rate of the FLOP-proportional part of a step
    (FLOPs per token as fits.accounting's "kaplan" convention of the exact count, plus the head)."""
    corpus: str | None = None
    run_ids: list[int] = []
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    inconclusive: int = 0
    plan_exponents: Exponents | None = None
    scope_exponents: list[Exponents] = []
    """Exponents of the scope's refitted fits (one per law family refitted)."""
    plan_budget_flops: float | None = None
    plan_params: float | None = None
    refits: list[Refit] = []
    warnings: list[str] = []
    assumptions: list[str] = []
    """How the proxies differ from the plan's runs (context, tokenizer, batch window, learning-rate scaling)."""
    error: str | None = None
    """Why the check failed to complete (status "failed")."""
    control: str | None = None
    """"wrong-allocation": a negative control, the plan's N moved 4× off its own optimum."""
    seed_sigma: float | None = None
    """Relative run-to-run noise of one run's final loss, from the seed repeats."""
    coverage80: list[float] | None = None
    """[inside, total, binomial p-value] of the pre-registered 80% intervals."""
    coverage80_low_p: float | None = None
    """One-sided exact binomial p that the 80% intervals cover less than 80% (below FAMILY_ALPHA the check fails)."""
    coverage95: list[float] | None = None
    log_score: float | None = None
    """Mean log predictive density of the pre-registered final losses (nats per run)."""
    power: float | None = None
    """Power of the allocation-exponent test against ``power_alternative``, computed before training."""
    power_alternative: float | None = None
    plan_exponent: float | None = None
    """The plan's allocation exponent a (N_opt ∝ C^a) of its own law."""
    fitted_exponent: list[float] | None = None
    """[a, low, high] from the IsoFLOP vertices."""
    compute_span: float | None = None
    """Largest over smallest run compute (6·N·D) of the check's runs."""
    limits: list[str] = []
    """What this check can and cannot say."""


class Check(msgspec.Struct, kw_only=True):
    """A stored check of one plan's predictions on one corpus scope."""

    plan_id: int
    scope: str
    created: str
    status: CheckStatus
    id: int | None = None
    verdict: CheckVerdict | None = None
    items: list[CheckItem] = []
    summary: CheckSummary = msgspec.field(default_factory=CheckSummary)
    plot_path: str | None = None
    refit_fit_ids: list[int] = []


FAMILY_ALPHA = 0.05
"""Family-wise error rate of a check's verdict: the chance that a check of a law that holds fails anyway."""
CORE_KINDS = ("allocation", "allocation_exponent")
"""The plan's own claims: a check passes only when these were judged and passed."""


@dataclass(frozen=True)
class FamilyTest:
    """Holm's step-down test over the items that carry a p-value: an item is significant when its p stays below
    FAMILY_ALPHA / (m - rank) for it and every smaller p. Each item's own verdict is at its 95% interval, so a
    check of 25 items has about a 72% chance of at least one "fail" when every prediction is right; the check's
    verdict fails only on what stays significant."""

    tested: int
    outside: int
    """Items whose own verdict is "fail"."""
    significant: list[CheckItem]


def family_test(items: Sequence[CheckItem], alpha: float = FAMILY_ALPHA) -> FamilyTest:
    tested = sorted((i for i in items if i.verdict in ("pass", "fail") and i.p_value is not None),
                    key=lambda i: i.p_value)
    significant: list[CheckItem] = []
    m = len(tested)
    for rank, item in enumerate(tested):
        if item.p_value > alpha / (m - rank):
            break
        if item.verdict == "fail":  # an item its own rule passes (a curve's rms <= 2) does not fail the check
            significant.append(item)
    return FamilyTest(tested=m, outside=sum(1 for i in tested if i.verdict == "fail"), significant=significant)


def overall_verdict(items: list[CheckItem], *, coverage_low_p: float | None = None,
                    alpha: float = FAMILY_ALPHA) -> CheckVerdict:
    """"fail" when an item stays significant in the family-wise test (``family_test``), an item without a p-value
    (a rule such as the early stop's range) failed, or the 80% intervals cover significantly less than 80%;
    else "inconclusive" when none was judged or a claim of the plan (CORE_KINDS, when the check has them; any
    item otherwise) was not judged a pass; else "pass"."""
    judged = [i for i in items if i.verdict != "skip"]
    if not judged:
        return "inconclusive"
    if family_test(judged, alpha).significant or any(i.verdict == "fail" and i.p_value is None for i in judged):
        return "fail"
    if coverage_low_p is not None and coverage_low_p < alpha:
        return "fail"
    core = [i for i in items if i.kind in CORE_KINDS]
    return "inconclusive" if any(i.verdict != "pass" for i in (core or judged)) else "pass"


# ---------------------------------------------------------------------------------------------- storage


def _row(check: Check) -> dict[str, Any]:
    return {
        "plan_id": check.plan_id,
        "scope": check.scope,
        "created": check.created,
        "status": check.status,
        "verdict": check.verdict,
        "items": to_json(check.items),
        "summary": to_json(check.summary),
        "plot_path": check.plot_path,
        "refit_fit_ids": to_json(check.refit_fit_ids),
    }


def _from_row(row: dict[str, Any]) -> Check:
    return from_row(row, Check, {"items": list[CheckItem], "summary": CheckSummary, "refit_fit_ids": list[int]})


def create_check(db: sqlite_utils.Database, plan_id: int, scope: str, summary: CheckSummary | None = None) -> Check:
    """Store a new check in status "running" and return it with its id."""
    check = Check(
        id=None, plan_id=plan_id, scope=scope, created=now(), status="running", verdict=None, items=[],
        summary=summary or CheckSummary(),
    )
    with transaction(db):
        check_id = db["checks"].insert(_row(check)).last_pk
    return get_check(db, check_id)


def save_check(db: sqlite_utils.Database, check: Check) -> Check:
    """Write every field of a stored check (one transaction) and return it as stored."""
    if check.id is None:
        raise ValueError("check: has no id; create it with create_check first")
    with transaction(db):
        db["checks"].update(check.id, _row(check))
    return get_check(db, check.id)


def get_check(db: sqlite_utils.Database, check_id: int) -> Check:
    rows = list(db["checks"].rows_where("id = ?", [int(check_id)]))
    if not rows:
        raise CheckNotFound(f"no check with id {check_id}", field="check_id")
    return _from_row(rows[0])


def list_checks(db: sqlite_utils.Database, plan_id: int) -> list[Check]:
    """Checks of one plan, oldest first."""
    return [_from_row(r) for r in db["checks"].rows_where("plan_id = ?", [int(plan_id)], order_by="id")]


__all__ = [
    "FAMILY_ALPHA",
    "Check",
    "CheckError",
    "CheckItem",
    "CheckNotFound",
    "CheckSummary",
    "Exponents",
    "FamilyTest",
    "Refit",
    "create_check",
    "family_test",
    "get_check",
    "list_checks",
    "overall_verdict",
    "save_check",
]
