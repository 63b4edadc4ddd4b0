"""frontier: the best plan at each budget over a range of compute, for tables and plots."""

from __future__ import annotations

import math

import msgspec
import sqlite_utils

from fits.fit import Fit
from planner.context import fit_ref
from planner.errors import Contradiction, PlanError
from planner.plan import Frontier, FrontierRow
from planner.request import MAX_FLOPS, PlanRequest, check_number
from planner.service import resolve_fit
from planner.solve import solve_plan

MAX_ROWS = 200


def budgets(start: float, stop: float, per_decade: int = 1) -> list[float]:
    """start, start·10^(1/per_decade), ... up to stop (inclusive within rounding)."""
    start = check_number("start", start, upper=MAX_FLOPS)
    stop = check_number("stop", stop, upper=MAX_FLOPS)
    if isinstance(per_decade, bool) or not isinstance(per_decade, int) or not 1 <= per_decade <= 20:
        raise PlanError("per_decade", f"must be a whole number from 1 to 20, got {per_decade!r}")
    if stop < start:
        raise Contradiction("stop", f"{stop:g} is below start {start:g}")
    count = math.floor(math.log10(stop / start) * per_decade + 1e-9) + 1
    if count > MAX_ROWS:
        raise Contradiction("stop", f"{count} budgets requested; at most {MAX_ROWS} (lower per_decade or narrow the "
                                    "range)")
    # the last step can round past stop (and past the largest budget): never beyond stop
    return [min(start * 10 ** (i / per_decade), stop) for i in range(count)]


def frontier(
    fit: Fit, start: float, stop: float, *, per_decade: int = 1, template: PlanRequest | None = None
) -> Frontier:
    """Solve one plan per budget; ``template`` carries constraints (its own budget fields are replaced)."""
    base = template or PlanRequest(compute_flops=1.0)
    rows = []
    for c in budgets(start, stop, per_decade):
        request = msgspec.structs.replace(base, compute_flops=c, pf_days=None, hours=None, target_loss=None)
        try:
            plan = solve_plan(request, fit)
        except PlanError as exc:
            if exc.field != "compute_flops":
                raise
            raise Contradiction("start", f"the budget {c:.3g} FLOPs of this range: {exc.message}") from None
        # A row is the plan in brief: the plan's own fields of the same names.
        rows.append(FrontierRow(**{name: getattr(plan, name) for name in FrontierRow.__struct_fields__}))
    return Frontier(fit=fit_ref(fit), rows=rows)


def make_frontier(
    db: sqlite_utils.Database,
    start: float,
    stop: float,
    *,
    per_decade: int = 1,
    template: PlanRequest | None = None,
) -> Frontier:
    """frontier() against the fit the template names (default besiroglu2024)."""
    t = template or PlanRequest(compute_flops=1.0)
    fit, _ = resolve_fit(db, t.fit, t.law, t.scope)
    return frontier(fit, start, stop, per_decade=per_decade, template=t)
