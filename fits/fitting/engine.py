"""One fitting call, start to finish: grid, choice of minimum, diagnostics, bootstrap → FitResult."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np

from fits.errors import BadInput
from fits.fitting import diagnostics as diag
from fits.fitting import robust
from fits.fitting.bootstrap import Progress, bootstrap, percentile_interval
from fits.fitting.form import Form, Points
from fits.fitting.multistart import multistart
from fits.laws import check_coefficients
from fits.result import FitResult

METHODS = ("robust", "grid")
"""robust: physically bounded coefficients, degeneracy checks, near-equal minima decided by held-out
extrapolation. grid: the published procedure as is (unbounded L-BFGS from the grid, lowest objective wins)."""
BOOTSTRAP_EXTRA_STARTS = 3
"""Besides the full-data optimum, each resample also starts from this many other points the full grid found:
its other distinct minima, then the best distinct stage-1 end points of the grid starts."""


class FitOptions(TypedDict, total=False):
    """The options every family's fit takes, under their public names (fit_chinchilla documents them)."""

    method: str
    bootstrap: int
    seed: int
    predict: Sequence[tuple[float, float]]
    budgets: Sequence[float]
    progress: Progress | None


def fit_with(form: Form, points: Points, options: FitOptions) -> FitResult:
    """fit_form under the public option names: ``bootstrap`` is its number of resamples."""
    kwargs: dict[str, Any] = dict(options)
    if "bootstrap" in kwargs:
        kwargs["bootstrap_resamples"] = kwargs.pop("bootstrap")
    return fit_form(form, points, **kwargs)


class InsufficientData(BadInput):
    """Too few points, or too few distinct sizes, to determine the coefficients; ``field`` is ``data`` (the
    points as a whole) or the column whose values are all alike."""


def fit_form(
    form: Form,
    points: Points,
    *,
    method: str = "robust",
    bootstrap_resamples: int = 0,
    seed: int = 0,
    heldout_fraction: float = diag.HELDOUT_FRACTION,
    predict: Sequence[tuple[float, float]] = (),
    budgets: Sequence[float] = (),
    progress: Progress | None = None,
    starts: np.ndarray | None = None,
    keep_outliers: bool = False,
) -> FitResult:
    """Fit ``form`` to ``points``; see fits.fitting.fit for the arguments."""
    t0 = time.perf_counter()
    if method not in METHODS:
        raise BadInput(f"unknown {method!r}; expected one of {', '.join(METHODS)}", field="method")
    check_enough(form, points)
    is_robust = method == "robust"
    excluded: list = []
    profiled = 0
    linear = _linear_form(form) if is_robust else None
    if linear is not None:
        # robust: outliers screened and starts from variable projection (fits.fitting.varpro), where the
        # family has that structure; grid stays the published procedure.
        vp = None
        if not keep_outliers:
            points, excluded, vp = _screen(linear, form, points)
            check_enough(form, points)
        if starts is None:
            # The VarPro optimum and profile starts lead; the family's own start grid follows them, so the
            # result is never worse on the objective than the grid procedure's (the same polish runs from a
            # superset of its starts) and the near-equal minima the held-out choice weighs are still found.
            vp_starts = _varpro_starts(linear, form, points, vp)
            starts = form.grid() if vp_starts is None else np.vstack([vp_starts, form.grid()])
            profiled = len(linear.prepare(points.N, points.X, points.loss).phi_grid())
    bounds = form.bounds(points) if is_robust else None
    grid = form.grid() if starts is None else np.asarray(starts, dtype=float)
    found = multistart(form, points, grid, bounds=bounds)
    best = found.best
    chosen = best
    kind = f"variable-projection and grid (profile of {profiled:,} exponent points) " if profiled else ""
    notes = [
        f"{method}: best of {found.starts} {kind}starts ({len(found.candidates)} distinct minima kept, "
        f"{found.capped} starts still moving at the stage-1 iteration cap)"
    ]
    warnings: list[str] = []

    heldout_error = heldout_points = None
    split = diag.heldout_split(points, form.k, heldout_fraction)
    if split is None:
        warnings.append("too few points below the largest compute for a held-out extrapolation check")
    else:
        train, test = points.take(split[0]), points.take(split[1])
        pool = robust.close_candidates(form, found.candidates, points, bounds) if is_robust else [best]
        checks = robust.heldout_checks(form, pool, train, test, form.bounds(train) if is_robust else None)
        pick = robust.pick(checks)
        chosen = pick.candidate
        heldout_error, heldout_points = pick.error, int(split[1].size)
        if chosen is not best:
            notes.append(
                f"chose a minimum {chosen.objective / best.objective - 1:.2%} above the lowest objective "
                f"({len(pool)} sound minima within {robust.CLOSE:.0%}): held-out error {pick.error:.4f} "
                f"vs {checks[0].error:.4f}"
            )

    coefficients = form.to_coefficients(chosen.theta)
    reasons = diag.data_limits(form, points) + form.degeneracy(coefficients, points)
    if not chosen.converged:
        warnings.append(f"the best start did not converge: {chosen.message or 'iteration limit'}")
    if bounds is not None:
        warnings.extend(diag.bound_warnings(form, chosen.theta, bounds))
    warnings.extend(f"degenerate: {r}" for r in reasons)
    warnings.extend(f"outside the family's sensible range: {p}" for p in check_coefficients(form.law, coefficients))

    derived = derived_values(form, coefficients, predict, budgets)
    result = FitResult(
        law=form.law,
        coefficients=coefficients,
        objective=chosen.objective,
        n_points=len(points),
        # With variable projection, the exponent points profiled plus the optimiser's starts.
        starts=profiled + found.starts,
        seconds=0.0,
        converged=chosen.converged,
        warnings=warnings,
        iterations=chosen.iterations,
        message="; ".join([*notes, chosen.message] if chosen.message else notes),
        derived=derived,
        seed=seed,
        diagnostics=diag.diagnostics(
            form,
            chosen.theta,
            points,
            bounds=bounds,
            degenerate_reasons=reasons,
            heldout_error=heldout_error,
            heldout_points=heldout_points,
        ),
        excluded=excluded,
    )
    if excluded:
        result.message += (f"; {len(excluded)} outlier(s) excluded (rows {', '.join(str(e.row) for e in excluded)});"
                           " keep_outliers keeps them")
    if bootstrap_resamples > 0:
        others = [c.theta for c in found.candidates if c is not chosen]
        others += list(found.coarse_points[1:])
        others = others[:BOOTSTRAP_EXTRA_STARTS]
        if bounds is not None:
            others = [np.clip(t, *bounds) for t in others]
        samples = bootstrap(
            form, points, np.stack([chosen.theta, *others]), bootstrap_resamples,
            seed=seed, bounds=bounds, progress=progress,
        )
        add_intervals(result, form, samples.theta, predict, budgets)
        result.bootstrap = bootstrap_resamples
        spread = np.std(samples.objective) / np.mean(samples.objective)
        result.message += f"; bootstrap objective spread {spread:.1%}"
        failed = int((~samples.converged).sum())
        if failed > 0.05 * bootstrap_resamples:
            result.warnings.append(f"{failed} of {bootstrap_resamples} bootstrap refits did not converge")
    result.seconds = time.perf_counter() - t0
    return result


def _linear_form(form: Form) -> Any:
    """The family's VarPro structure when its points are (N, D, loss); None otherwise."""
    from fits.laws.registry import get_law

    try:
        law = get_law(form.law)
    except BadInput:
        return None
    return getattr(law, "linear_form", None) if form.x_name == "D" else None


def _screen(linear: Any, form: Form, points: Points) -> tuple[Points, list, Any]:
    """Points without the outliers, the outliers, and the VarPro fit of the points kept."""
    from fits.fitting.outliers import screen
    from fits.fitting.varpro import fit_linear

    last: list[Any] = []

    def fit_mask(mask: np.ndarray) -> Any:
        # Later rounds drop a few points: warm-started from the previous round instead of a new profile.
        fit = fit_linear(linear, points.N[mask], points.X[mask], points.loss[mask], warm=last[-1] if last else None)
        last.append(fit)
        return fit

    def resid(fit: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.log(form.predict(fit.coefficients, points.N, points.X)) - np.log(points.loss)

    fit, screened = screen(fit_mask, resid, points.N, points.X, points.loss)
    if not screened.excluded:
        return points, [], fit
    return points.take(np.flatnonzero(screened.keep)), screened.excluded, fit


def _varpro_starts(linear: Any, form: Form, points: Points, best: Any = None) -> np.ndarray | None:
    """The VarPro optimum and the other profile starts, in the form's coordinates."""
    from fits.fitting.varpro import _Problem, fit_linear

    if best is None:
        best = fit_linear(linear, points.N, points.X, points.loss)
    thetas = [form.to_theta(best.coefficients)]
    prob = _Problem(best.form, points.N, points.X, points.loss, None, 1.0)
    k = len(best.form.amp_names)
    for theta in best.starts:
        c = best.form.coefficients(prob.amps(theta), theta[k:])
        try:
            thetas.append(form.to_theta(c))
        except (ValueError, KeyError):
            continue
    out = np.array([t for t in thetas if np.all(np.isfinite(t))])
    return out if out.size else None


def check_enough(form: Form, points: Points) -> None:
    if len(points) < form.k:
        raise InsufficientData(
            f"{len(points)} points, fewer than the {form.k} coefficients of {form.law}", field="data"
        )
    if np.unique(points.N).size < 2:
        raise InsufficientData(f"all points have the same model size; {form.law} needs at least two", field="N")
    if np.unique(points.X).size < 2:
        raise InsufficientData(f"all points have the same value; {form.law} needs at least two", field=form.x_name)


def derived_names(form: Form, predict: Sequence[tuple[float, float]], budgets: Sequence[float]) -> list[str]:
    names = [f"loss(N={n:.4g}, {form.x_name}={x:.4g})" for n, x in predict]
    names += [f"N_opt(C={c:.4g})" for c in budgets]
    return names


def derived_values(
    form: Form, coefficients: dict[str, float], predict: Sequence[tuple[float, float]], budgets: Sequence[float]
) -> dict[str, float]:
    values = [float(form.predict(coefficients, np.array([n]), np.array([x]))[0]) for n, x in predict]
    values += [form.n_opt(coefficients, c) for c in budgets]
    return dict(zip(derived_names(form, predict, budgets), values, strict=True))


def add_intervals(
    result: FitResult,
    form: Form,
    thetas: np.ndarray,
    predict: Sequence[tuple[float, float]],
    budgets: Sequence[float],
) -> None:
    samples = [form.to_coefficients(t) for t in thetas]
    result.intervals = {
        name: percentile_interval(np.array([s[name] for s in samples])) for name in form.coefficient_names
    }
    if predict or budgets:
        with np.errstate(all="ignore"):
            table = np.array([list(derived_values(form, s, predict, budgets).values()) for s in samples])
        result.derived_intervals = {
            name: percentile_interval(table[:, j]) for j, name in enumerate(derived_names(form, predict, budgets))
        }
