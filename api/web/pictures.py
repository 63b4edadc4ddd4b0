"""The pictures of a plan, a fit comparison and a check, as ``svg.Chart`` values built from the stored records.

Everything is asked of the fit's law (``LossModel.loss``, ``LossModel.tokens``) and of the planner's own solver
and predictor, never decided by a law's name. The bands are the planner's own loss intervals (the ones a plan
and ``POST /v1/predict`` report): on the IsoFLOP profile, the predicted interval at each size; on the frontier,
the sizes (and their token counts) whose loss at that budget lies within the optimum's interval, i.e. the
sizes the fit cannot tell apart from the optimum.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from api.web import units
from api.web.svg import Band, Chart, Marker, Point, Series
from fits.errors import ScaleplanError
from fits.fit import Fit
from planner.context import law_for, model_for
from planner.plan import Plan
from planner.predict import predict
from planner.request import MAX_FLOPS, MIN_FLOPS, PlanRequest, PredictRequest
from planner.solve import solve_plan
from verifier.check.records import Check

FRONTIER_DECADES = 2
"""The frontier picture spans the plan's budget ×/÷ 10^2."""
FRONTIER_PER_DECADE = 4
COMPARE_DECADES = 3
COMPARE_PER_DECADE = 2
ISOFLOP_POINTS = 41
_FAILURES = (ScaleplanError, ArithmeticError, ValueError)


def budget_grid(centre: float, decades: int, per_decade: int) -> list[float]:
    """Budgets centre·10^(k/per_decade) for |k| ≤ decades·per_decade, kept inside the planner's range."""
    steps = decades * per_decade
    grid = [centre * 10 ** (k / per_decade) for k in range(-steps, steps + 1)]
    return [c for c in grid if MIN_FLOPS <= c < MAX_FLOPS]


def near_optimal(model: object, plan: Plan, unique: float | None) -> tuple[float, float] | None:
    """(smallest, largest) N whose loss at ``plan``'s compute is at most the top of its loss interval."""
    grid = np.logspace(math.log10(plan.params) - 2, math.log10(plan.params) + 2, 161)
    with np.errstate(all="ignore"):
        try:
            losses = np.asarray(model.loss(grid, plan.compute_flops, unique), dtype=float)
        except _FAILURES:
            return None
    inside = grid[np.isfinite(losses) & (losses <= plan.predicted_loss.high)]
    if inside.size == 0:
        return None
    return float(inside.min()), float(inside.max())


def _tokens(model: object, n: float, c: float) -> float:
    with np.errstate(all="ignore"):
        try:
            return float(model.tokens(n, c))
        except _FAILURES:
            return math.nan


def _fit_label(fit: Fit) -> str:
    return f"{fit.name or f'fit {fit.id}'} ({fit.law}/{fit.scope} v{fit.version})"


def _plan_at(request: PlanRequest, fit: Fit, budget: float) -> Plan | None:
    """The planner's plan for ``request`` with its budget replaced by ``budget`` FLOPs (None outside the law)."""
    at = msgspec.structs.replace(request, compute_flops=budget, pf_days=None, hours=None, target_loss=None)
    try:
        return solve_plan(at, fit)
    except _FAILURES:
        return None


def frontier_chart(plan: Plan, fit: Fit) -> Chart:
    """N and D of the planner's plan at budgets around this one (same constraints), with the band and the plan."""
    model = model_for(fit)
    unique = plan.request.unique_tokens
    n_points, d_points, band_c, n_lo, n_hi, d_lo, d_hi = [], [], [], [], [], [], []
    left_out = 0
    for c in budget_grid(plan.compute_flops, FRONTIER_DECADES, FRONTIER_PER_DECADE):
        at = _plan_at(plan.request, fit, c)
        if at is None:
            left_out += 1
            continue
        c = at.compute_flops
        head = f"C = {units.flops(c)}"
        n_points.append(Point(c, at.params, f"{head}\nN = {units.params(at.params)}"))
        d_points.append(Point(c, at.tokens, f"{head}\nD = {units.tokens(at.tokens)}"))
        span = near_optimal(model, at, unique)
        if span is not None:
            band_c.append(c)
            n_lo.append(span[0])
            n_hi.append(span[1])
            d_lo.append(_tokens(model, span[1], c))
            d_hi.append(_tokens(model, span[0], c))
    chart = Chart(
        key="frontier", title=f"Compute-optimal N and D against compute, {_fit_label(fit)}",
        x_label="training compute C (FLOPs)", y_label="parameters N, tokens D",
        series=[Series("N (parameters)", n_points, 0), Series("D (tokens)", d_points, 1)],
        markers=[Marker("this plan", plan.compute_flops, plan.params,
                        f"this plan: C = {units.flops(plan.compute_flops)}\nN = {units.params(plan.params)}"),
                 Marker("this plan", plan.compute_flops, plan.tokens,
                        f"this plan: C = {units.flops(plan.compute_flops)}\nD = {units.tokens(plan.tokens)}")],
    )
    if band_c:
        chart.bands = [Band("N within the loss interval", band_c, n_lo, n_hi, 0),
                       Band("D within the loss interval", band_c, d_lo, d_hi, 1)]
    chart.note = ("Bands: the sizes (and their token counts) whose predicted loss at that budget lies inside the "
                  "optimum's interval, so the fit cannot tell them apart from the optimum.")
    if left_out:
        chart.note += (f" {left_out} budgets where this request's constraints cannot be met (or the law cannot be "
                       "evaluated) are left out.")
    return chart


def isoflop_chart(plan: Plan, fit: Fit) -> Chart:
    """Loss against N at the plan's training compute: the profile, its band, the optimum, the plan, alternatives."""
    model = model_for(fit)
    c = plan.compute_flops
    unique = plan.request.unique_tokens
    sizes = [plan.params, *(a.params for a in plan.alternatives)]
    grid = np.logspace(math.log10(min(sizes) / 3), math.log10(max(sizes) * 3), ISOFLOP_POINTS)
    points, lows, highs = [], [], []
    for n in (float(v) for v in grid):
        d = _tokens(model, n, c)
        if not (math.isfinite(d) and d >= 1):
            continue
        try:
            p = predict(PredictRequest(params=n, tokens=d, unique_tokens=unique), fit)
        except _FAILURES:
            continue
        loss = p.predicted_loss
        points.append(Point(n, loss.mean, f"N = {units.params(n)}\nD = {units.tokens(d)}\nloss = {loss.mean:.4f} "
                                          f"[{loss.low:.4f}, {loss.high:.4f}]"))
        lows.append(loss.low)
        highs.append(loss.high)
    chart = Chart(key="isoflop", title=f"IsoFLOP profile at C = {units.sig(c)} FLOPs, {_fit_label(fit)}",
                  x_label="parameters N", y_label="predicted loss (nats/token)", y_log=False,
                  series=[Series("loss at this budget", points, 0)],
                  bands=[Band("loss interval", [p.x for p in points], lows, highs, 0)],
                  note="Band: the predicted loss interval at each size (the same interval a plan and "
                       "POST /v1/predict report).")
    if points:
        best = min(points, key=lambda p: p.y)
        chart.markers.append(Marker("optimum of the profile", best.x, best.y,
                                    f"optimum on this profile: N = {units.params(best.x)}, loss = {best.y:.4f}",
                                    "optimum"))
    chart.markers.append(Marker("this plan", plan.params, plan.predicted_loss.mean,
                                f"this plan: N = {units.params(plan.params)}, loss = {plan.predicted_loss.mean:.4f} "
                                f"[{plan.predicted_loss.low:.4f}, {plan.predicted_loss.high:.4f}]"))
    for a in plan.alternatives:
        chart.markers.append(Marker("alternatives", a.params, a.predicted_loss,
                                    f"×{a.params_factor:g}: N = {units.params(a.params)}, "
                                    f"D = {units.tokens(a.tokens)}, loss = {a.predicted_loss:.4f}", "alt"))
    return chart


def compare_chart(plan: Plan, fits: list[Fit]) -> Chart:
    """The compute-optimal N of two or three fits on the same axes around the plan's budget."""
    series = []
    base = PlanRequest(compute_flops=1.0, seq_len=plan.request.seq_len, vocab_size=plan.request.vocab_size)
    for i, fit in enumerate(fits):
        counted = law_for(fit).conventions.params
        points = []
        for c in budget_grid(plan.compute_flops, COMPARE_DECADES, COMPARE_PER_DECADE):
            at = _plan_at(base, fit, c)
            if at is not None:
                points.append(Point(at.compute_flops, at.params,
                                    f"{_fit_label(fit)}\nC = {units.flops(at.compute_flops)}\n"
                                    f"N = {units.params(at.params)} ({counted})"))
        series.append(Series(f"{_fit_label(fit)}, N counts {counted}", points, i))
    return Chart(key="compare", title="Compute-optimal N of several fits", x_label="training compute C (FLOPs)",
                 y_label="parameters N", series=series,
                 markers=[Marker("this plan", plan.compute_flops, plan.params,
                                 f"this plan: N = {units.params(plan.params)}")],
                 note="Unconstrained plans of each fit at the same budgets. Kaplan-family fits count "
                      "non-embedding parameters, Chinchilla-family fits all of them (as each series says).")


def check_chart(check: Check) -> Chart:
    """Each judged item's error as a multiple of its tolerance: inside the band [−1, 1] is within tolerance."""
    by_verdict: dict[str, list[Point]] = {}
    for i, item in enumerate(check.items, start=1):
        if item.error is None or not item.tolerance:
            continue
        ratio = item.error / item.tolerance
        label = (f"{i}. {item.kind}: {item.name}\npredicted {units.sig(item.predicted)} {item.unit}, observed "
                 f"{units.sig(item.observed)} {item.unit}\nerror {units.sig(item.error)} ({item.metric}); "
                 f"{item.rule}: {item.verdict}")
        by_verdict.setdefault(item.verdict, []).append(Point(float(i), ratio, label))
    styles = {"pass": 1, "fail": 3, "skip": 2}
    count = max(len(check.items), 1)
    return Chart(key="check", title=f"Check {check.id}: error of each item against its tolerance",
                 x_label="item", y_label="error / tolerance", x_log=False, y_log=False,
                 series=[Series(verdict, pts, styles.get(verdict, 0), line=False)
                         for verdict, pts in sorted(by_verdict.items())],
                 bands=[Band("within tolerance", [0.5, count + 0.5], [-1.0, -1.0], [1.0, 1.0], 1)],
                 note="Points inside the shaded band are within the item's tolerance.")
