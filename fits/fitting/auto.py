"""Law forms chosen by backtest, and predictive intervals that say how sure a prediction is.

``fit_auto(N, D, loss, ...)`` fits every candidate family (the registered families with a VarPro structure,
fits.fitting.linear_forms, or the ones named) to (N, D, loss) points and

1. screens outliers once, with the first candidate (fits.fitting.outliers), and leaves them out of every
   candidate's fit, backtest and bootstrap (``keep_outliers=True`` keeps them all);
2. scores each candidate by a rolling-origin backtest: fit on the points below a compute cut, predict the
   ones above it, for cuts at several compute quantiles; the score is the mean over cuts of the median
   absolute relative error. The candidate with the best score is chosen, never the best in-sample objective
   (a more flexible form always wins that);
3. bootstraps the competitive candidates over runs (the ``group`` column; each point its own run without it),
   warm-started from the full-data optimum;
4. checks identifiability (coefficients and N_opt whose interval spans more than a factor 10) and
   misspecification (backtest errors that keep one sign beyond what noise and coefficient uncertainty
   explain; competitive forms that disagree beyond their intervals at the extrapolation target).

``predict_interval(auto, N, D, interval)`` gives, for each target, the chosen form's prediction and a central
interval combining, in log space: the bootstrap spread of the chosen form, the residual noise of one run,
the spread between competitive forms, the backtest's record of how far the chosen form's extrapolations missed
beyond that noise, and when misspecification is flagged the backtest's bias. Each is a standard deviation of
ln L; they are independent sources, so their variances add (docs/fitting.md §6).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
from scipy.stats import norm

from fits.errors import BadInput
from fits.fitting.huber import huber
from fits.fitting.outliers import robust_scale, screen
from fits.fitting.varpro import LinearFit, LinearForm, Prior, fit_linear, prior_scale, refit_from
from fits.result import Excluded, Predictive

PRIORS: dict[str, Prior] = {
    # Besiroglu et al. 2024 (Epoch's replication of Hoffmann et al.): α 0.348 (0.317–0.373), β 0.366
    # (0.331–0.415). As a weak prior the widths are three times the published ones: it decides only where
    # the data leave an exponent loose, and E, A, B (which depend on the tokenizer and data) are left free.
    "besiroglu2024": Prior("besiroglu2024", {"alpha": (0.348, 0.05), "beta": (0.366, 0.06)}),
}
CUTS = (0.5, 0.6, 0.7, 0.8)
"""Compute quantiles of the rolling origins: fit below, score above."""
COMPETITIVE = 1.5
"""Candidates whose backtest score is within this factor of the best (or within the noise) count as
competitive: their spread is part of the interval."""
BOOTSTRAP = 100
OTHER_BOOTSTRAP = 30
UNDETERMINED_SPAN = 10.0
EXTRAPOLATION_MIN = 0.25
"""Least ln-compute distance an extrapolation error is scaled by (the first held-out points lie just above
their cut: dividing by their tiny distance would blow the rate up)."""
BIAS_Z = 3.0
"""Backtest bias beyond this many standard errors (noise and coefficient spread) is misspecification."""
MIN_TRAIN_EXTRA = 3
"""A backtest fold needs this many points beyond the candidate's coefficient count."""


class BacktestFold(msgspec.Struct, kw_only=True):
    cut: float
    """Compute (FLOPs) below which the fold fitted."""
    train: int
    test: int
    median_error: float
    """Median |predicted/observed − 1| on the test points."""
    bias: float
    """Mean ln predicted − ln observed on the test points."""
    spread: float
    """Robust root mean square of ln predicted − ln observed on the test points (√(median r² / 0.455): the
    median of a χ²₁ variable is 0.455), bias included."""


class CandidateReport(msgspec.Struct, kw_only=True):
    law: str
    coefficients: dict[str, float]
    objective: float
    """Summed log-Huber objective on all points kept."""
    backtest: float | None
    """Mean over folds of the median absolute relative error on held-out larger-compute points."""
    folds: list[BacktestFold] = []
    competitive: bool = False
    chosen: bool = False
    condition: float | None = None
    """Condition number of the refinement's Jacobian at the optimum (scaled coordinates)."""
    intervals: dict[str, list[float]] = {}
    """Bootstrap central interval of each coefficient, at the requested probability."""


class AutoReport(msgspec.Struct, kw_only=True):
    """What ``fit_auto`` decided and why; the CLI prints it, ``--json`` emits it."""

    law: str
    coefficients: dict[str, float]
    candidates: list[CandidateReport]
    excluded: list[Excluded] = []
    warnings: list[str] = []
    notes: list[str] = []
    n_points: int
    noise: float
    """Robust standard deviation of one run's ln loss about the chosen form."""
    misspecified: bool = False
    extrapolation: float = 0.0
    """Backtest-measured standard deviation of ln L beyond the noise (AutoFit.extrapolation_scale)."""
    prior: str | None = None
    bootstrap: int = 0
    seconds: float = 0.0


@dataclass
class Candidate:
    law: Any
    form: LinearForm
    fit: LinearFit
    folds: list[BacktestFold] = field(default_factory=list)
    score: float | None = None
    draws: list[dict[str, float]] = field(default_factory=list)
    competitive: bool = False
    fold_errors: list[np.ndarray] = field(default_factory=list)
    """ln predicted − ln observed on each fold's held-out points."""
    fold_distance: list[np.ndarray] = field(default_factory=list)
    """ln(C / cut) of those points: how far beyond its training compute each was predicted."""

    def predict(self, c: Mapping[str, float], N: np.ndarray, D: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(self.law.loss(dict(c), N, D), dtype=float)

    def log_draws(self, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        if not self.draws:
            return np.zeros((0, N.size))
        out = np.array([np.log(self.predict(c, N, D)) for c in self.draws])
        return out[np.all(np.isfinite(out), axis=1)]


@dataclass
class AutoFit:
    """Everything ``predict_interval`` needs: the candidates with their draws, the noise, the flags."""

    candidates: list[Candidate]
    chosen: Candidate
    report: AutoReport
    misspecification_scale: float = 0.0
    """Extra standard deviation of ln L when misspecified: the chosen form's backtest RMS log error."""
    extrapolation_scale: float = 0.0
    """Standard deviation of ln L that the rolling-origin backtest shows beyond one run's noise: how far the
    chosen form's extrapolations have actually missed (coefficient error at that distance and any mild
    misspecification); it calibrates the interval on the data's own record."""
    max_compute: float = 0.0


class Prediction(msgspec.Struct, kw_only=True):
    N: float
    D: float
    mean: float
    low: float
    high: float


def candidate_laws(names: Sequence[str] | None = None) -> list[Any]:
    """The registered families with a VarPro structure (in registry order), or the named ones."""
    from fits.laws.registry import get_law, law_names

    if names is None:
        return [get_law(n) for n in law_names() if getattr(get_law(n), "linear_form", None) is not None]
    laws = [get_law(n) for n in names]
    for law in laws:
        if getattr(law, "linear_form", None) is None:
            ok = ", ".join(x.name for x in candidate_laws())
            raise BadInput(f"{law.name} is not fitted on (N, D, loss) with intervals; use one of {ok}, or auto",
                           field="law")
    return laws


def fit_auto(
    N: Any,
    D: Any,
    loss: Any,
    *,
    group: Any = None,
    laws: Sequence[str] | None = None,
    keep_outliers: bool = False,
    prior: str | None = None,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
    interval: float = 0.8,
) -> AutoFit:
    """Fit the candidate families (all, or ``laws``), pick one by rolling-origin backtest, bootstrap the
    competitive ones; see the module docstring. ``interval`` only sets the coefficient intervals reported."""
    t0 = time.perf_counter()
    N, D, L = (np.asarray(a, dtype=float).ravel() for a in (N, D, loss))
    if not (N.size == D.size == L.size):
        raise BadInput("N, D and loss differ in length", field="data")
    if np.any(~np.isfinite(np.concatenate([N, D, L]))) or np.any(np.concatenate([N, D, L]) <= 0):
        raise BadInput("every N, D and loss must be a finite number > 0", field="data")
    groups = None if group is None else np.asarray(group).ravel()
    chosen_prior = None
    if prior is not None:
        if prior not in PRIORS:
            raise BadInput(f"unknown prior {prior!r}; expected one of {', '.join(PRIORS)}", field="prior")
        chosen_prior = PRIORS[prior]
    families = candidate_laws(laws)
    need = max(len(f.linear_form.amp_names) + len(f.linear_form.phi_names) for f in families)
    if L.size < need + 1:
        raise BadInput(f"{L.size} points, too few for {need} coefficients", field="data")
    if np.unique(N).size < 2 or np.unique(D).size < 2:
        raise BadInput("the points need at least two model sizes and two token counts", field="data")
    warnings: list[str] = []
    notes: list[str] = []

    # 1. Outliers: screened with the first candidate, the same points left out everywhere.
    first = families[0].linear_form
    last: list[LinearFit] = []
    if keep_outliers:
        keep = np.ones(L.size, dtype=bool)
        excluded: list[Excluded] = []
    else:
        def fit_mask(mask: np.ndarray) -> LinearFit:
            fit = fit_linear(first, N[mask], D[mask], L[mask], warm=last[-1] if last else None)
            last.append(fit)
            return fit

        def resid(fit: LinearFit) -> np.ndarray:
            with np.errstate(all="ignore"):
                return np.log(np.asarray(families[0].loss(fit.coefficients, N, D), dtype=float)) - np.log(L)

        _, screened = screen(fit_mask, resid, N, D, L)
        keep, excluded = screened.keep, screened.excluded
        if excluded:
            notes.append(f"{len(excluded)} point(s) excluded as outliers (rows "
                         f"{', '.join(str(e.row) for e in excluded)}); keep_outliers keeps them")
    n, d, l = N[keep], D[keep], L[keep]
    g = None if groups is None else groups[keep]

    # 2. Full fits and backtests.
    cands = []
    for fam in families:
        if fam is families[0] and last and chosen_prior is None:
            fit = last[-1]  # the screen's last fit is this one: the points kept, no prior
        else:
            fit = fit_linear(fam.linear_form, n, d, l, prior=chosen_prior)
        cand = Candidate(law=fam, form=fam.linear_form, fit=fit)
        cand.folds = backtest(cand, n, d, l, chosen_prior, cand.fold_errors, cand.fold_distance)
        cand.score = float(np.mean([f.median_error for f in cand.folds])) if cand.folds else None
        cands.append(cand)
    scored = [c for c in cands if c.score is not None]
    if not scored:
        warnings.append("too few points below the largest compute for a backtest: the lowest objective decided")
        chosen = min(cands, key=lambda c: c.fit.objective)
    else:
        chosen = choose(scored)
    noise = robust_scale(chosen.fit.residuals)
    for c in cands:
        c.competitive = c is chosen or (
            c.score is not None and chosen.score is not None
            and c.score <= max(COMPETITIVE * chosen.score, chosen.score + noise)
        )

    # 3. Bootstrap over runs, competitive candidates only.
    rng = np.random.default_rng(seed)
    member = np.unique(g if g is not None else np.arange(l.size), return_inverse=True)[1]
    n_groups = int(member.max()) + 1
    by_group = [np.flatnonzero(member == j) for j in range(n_groups)]
    resamples = [np.concatenate([by_group[j] for j in rng.integers(0, n_groups, n_groups)]) for _ in range(bootstrap)]
    for c in cands:
        if not c.competitive or bootstrap <= 0:
            continue
        scale = prior_scale(c.fit.residuals)
        # The other competitive forms' draws only size their own spread in the disagreement check: fewer do.
        for idx in resamples if c is chosen else resamples[:OTHER_BOOTSTRAP]:
            try:
                r = refit_from(c.fit, n[idx], d[idx], l[idx], prior=chosen_prior, scale=scale)
            except (ValueError, FloatingPointError):
                continue
            c.draws.append(r.coefficients)

    # 4. Identifiability, prior influence and misspecification.
    q = ((1 - interval) / 2 * 100, (1 + interval) / 2 * 100)
    reports = []
    for c in cands:
        ints = {}
        if c.draws:
            for k in c.fit.coefficients:
                vals = np.array([dr[k] for dr in c.draws])
                lo, hi = np.percentile(vals, q)
                ints[k] = [float(lo), float(hi)]
        reports.append(CandidateReport(
            law=c.law.name, coefficients=c.fit.coefficients, objective=c.fit.objective, backtest=c.score,
            folds=c.folds, competitive=c.competitive, chosen=c is chosen, condition=c.fit.jacobian_condition,
            intervals=ints))
    chosen_report = next(r for r in reports if r.chosen)
    for k, (lo, hi) in chosen_report.intervals.items():
        if lo > 0 and hi / lo > UNDETERMINED_SPAN:
            warnings.append(f"undetermined: {chosen.law.name} {k}'s {interval:.0%} interval {lo:.4g}–{hi:.4g} "
                            f"spans a factor {hi / lo:.0f}: the data do not pin it down")
    c_max = float(np.max(6.0 * n * d))
    target = 10.0 * c_max
    if chosen.draws:
        opts = []
        for dr in chosen.draws[:50]:
            try:
                opts.append(chosen.law.optimum(dr, target)[0])
            except (ValueError, ArithmeticError, BadInput):
                continue
        opts_a = np.array([o for o in opts if np.isfinite(o) and o > 0])
        if opts_a.size >= 5:
            lo, hi = np.percentile(opts_a, q)
            if hi / lo > UNDETERMINED_SPAN:
                warnings.append(f"undetermined: N_opt at {target:.3g} FLOPs (10× the largest fitted compute) has an "
                                f"{interval:.0%} interval {lo:.3g}–{hi:.3g}, a factor {hi / lo:.0f}")
    if chosen_prior is not None:
        free = fit_linear(chosen.form, n, d, l)
        for k, (_, sd) in chosen_prior.centres.items():
            if k in free.coefficients and abs(free.coefficients[k] - chosen.fit.coefficients[k]) > 0.5 * sd:
                notes.append(f"the prior {chosen_prior.name}, not the data, decided {k}: "
                             f"{free.coefficients[k]:.4g} without it, {chosen.fit.coefficients[k]:.4g} with it")
    misspec, mis_scale = misspecification(chosen, cands, n, d, l, noise, warnings)
    if len(cands) > 1:
        notes.append("chose " + chosen.law.name + " by backtest (mean median error over "
                     f"{len(chosen.folds)} rolling origins): "
                     + ", ".join(f"{c.law.name} {c.score:.3%}" if c.score is not None else f"{c.law.name} n/a"
                                 for c in cands))
    report = AutoReport(
        law=chosen.law.name, coefficients=chosen.fit.coefficients, candidates=reports, excluded=excluded,
        warnings=warnings, notes=notes, n_points=int(l.size), noise=noise, misspecified=misspec,
        prior=prior, bootstrap=bootstrap, seconds=0.0,
    )
    ext = 0.0
    if chosen.folds:
        ext = math.sqrt(max(0.0, float(np.mean([f.spread**2 for f in chosen.folds])) - noise**2))
    auto = AutoFit(candidates=cands, chosen=chosen, report=report, misspecification_scale=mis_scale,
                   max_compute=c_max, extrapolation_scale=ext)
    report.extrapolation = ext
    report.seconds = time.perf_counter() - t0
    return auto


def choose(scored: list[Candidate]) -> Candidate:
    """The best backtest score, except that a form with fewer coefficients wins when it is within one
    standard error (fold to fold) of the best: a backtest difference smaller than that is noise, and the
    simpler form extrapolates with less freedom to go wrong."""
    best = min(scored, key=lambda c: c.score)  # type: ignore[arg-type,return-value]
    errs = np.array([f.median_error for f in best.folds])
    se = float(np.std(errs, ddof=1) / math.sqrt(errs.size)) if errs.size > 1 else 0.0
    near = [c for c in scored if c.score <= best.score + se]  # type: ignore[operator]
    return min(near, key=lambda c: (c.form.k, c.score))


def backtest(cand: Candidate, N: np.ndarray, D: np.ndarray, L: np.ndarray,
             prior: Prior | None, errors: list[np.ndarray] | None = None,
             distance: list[np.ndarray] | None = None) -> list[BacktestFold]:
    """Rolling-origin folds: fit below each compute cut, score above it (``errors`` collects each fold's log
    errors)."""
    C = 6.0 * N * D
    k = len(cand.form.amp_names) + len(cand.form.phi_names)
    folds = []
    seen = set()
    for qq in CUTS:
        cut = float(np.quantile(C, qq))
        train = cut >= C
        if train.sum() < k + MIN_TRAIN_EXTRA or (~train).sum() < 1 or cut in seen:
            continue
        if np.unique(N[train]).size < 2 or np.unique(D[train]).size < 2:
            continue
        seen.add(cut)
        try:
            fit = fit_linear(cand.form, N[train], D[train], L[train], prior=prior, starts=2)
        except (ValueError, np.linalg.LinAlgError):
            continue
        pred = cand.predict(fit.coefficients, N[~train], D[~train])
        rel = pred / L[~train] - 1.0
        if not np.all(np.isfinite(rel)):
            continue
        if errors is not None and distance is not None:
            errors.append(np.log(pred / L[~train]))
            distance.append(np.log(C[~train] / cut))
        folds.append(BacktestFold(cut=cut, train=int(train.sum()), test=int((~train).sum()),
                                  median_error=float(np.median(np.abs(rel))),
                                  bias=float(np.mean(np.log(pred / L[~train]))),
                                  spread=float(np.sqrt(np.median(np.log(pred / L[~train]) ** 2) / 0.455))))
    return folds


def misspecification(chosen: Candidate, cands: list[Candidate], N: np.ndarray, D: np.ndarray, L: np.ndarray,
                     noise: float, warnings: list[str]) -> tuple[bool, float]:
    """(flagged, extra log-sd): backtest bias of one sign beyond noise, or competitive forms disagreeing."""
    flagged = False
    extra = 0.0
    folds = chosen.folds
    if folds:
        biases = np.array([f.bias for f in folds])
        tests = np.array([f.test for f in folds])
        # Standard error of a fold's mean log error from noise alone, plus the coefficient spread at the
        # fold's points (approximated by the full-data bootstrap at the largest points).
        top = np.argsort(6.0 * N * D)[-max(1, int(tests.min())):]
        ld = chosen.log_draws(N[top], D[top])
        coef_sd = float(np.std(ld.mean(axis=1))) if ld.shape[0] > 2 else 0.0
        se = np.sqrt(noise**2 / tests + coef_sd**2)
        z = biases / np.maximum(se, 1e-12)
        same_sign = np.all(biases > 0) or np.all(biases < 0)
        if same_sign and np.median(np.abs(z)) > BIAS_Z:
            flagged = True
            warnings.append(
                f"misspecified: {chosen.law.name}'s backtest errors all {'over' if biases[0] > 0 else 'under'}"
                f"-predict the larger-compute points (mean log error {biases.mean():+.4f}, {np.median(np.abs(z)):.1f}"
                " standard errors): intervals widened by the backtest error")
        extra = float(np.sqrt(np.mean(biases**2)))
    # Competitive forms disagreeing at 10× the largest compute, beyond their own bootstrap spreads.
    comp = [c for c in cands if c.competitive and c.draws]
    if len(comp) > 1:
        C = 10.0 * float(np.max(6.0 * N * D))
        try:
            n_t, d_t = chosen.law.optimum(chosen.fit.coefficients, C)
        except (ValueError, ArithmeticError, BadInput):
            n_t, d_t = None, None
        if n_t is not None:
            nt, dt = np.array([n_t]), np.array([d_t])
            means = np.array([float(np.log(c.predict(c.fit.coefficients, nt, dt))[0]) for c in comp])
            sds = np.array([float(np.std(c.log_draws(nt, dt))) if c.draws else 0.0 for c in comp])
            gap = means.max() - means.min()
            if np.isfinite(gap) and gap > 2.0 * math.sqrt(float(np.sum(sds**2)) + 2 * noise**2):
                flagged = True
                warnings.append(
                    f"misspecified: competitive forms ({', '.join(c.law.name for c in comp)}) disagree by "
                    f"{math.expm1(gap):.2%} at {C:.3g} FLOPs, beyond their intervals: intervals include the spread")
    return flagged, (extra if flagged else 0.0)


def predict_interval(auto: AutoFit, N: Any, D: Any, interval: float = 0.8) -> list[Prediction]:
    """The chosen form's loss at each (N, D), with a central interval of probability ``interval``."""
    if not 0.0 < interval < 1.0:
        raise BadInput(f"must lie strictly between 0 and 1, got {interval}", field="interval")
    N, D = np.atleast_1d(np.asarray(N, dtype=float)), np.atleast_1d(np.asarray(D, dtype=float))
    chosen = auto.chosen
    mean = chosen.predict(chosen.fit.coefficients, N, D)
    ln_mean = np.log(mean)
    z = float(norm.ppf(0.5 + interval / 2))
    noise = auto.report.noise
    ext = np.full(N.size, auto.extrapolation_scale)
    r = chosen.fit.residuals
    if r.size >= 10:
        # Residuals of real sets have heavier tails than a Gaussian of their robust scale: the noise term is
        # the width that holds this probability of them.
        noise = float(np.quantile(np.abs(r - np.median(r)), interval)) / z
    if chosen.fold_errors:
        # Extrapolation error grows with distance: the backtest's errors beyond the noise, per unit of
        # ln(C / training compute), times the target's own distance beyond the data.
        e = np.concatenate(chosen.fold_errors)
        dist = np.maximum(np.concatenate(chosen.fold_distance), EXTRAPOLATION_MIN)
        # The rate's quantile at this probability over z, like the noise: heavy tails widen it, a Gaussian
        # gives its standard deviation back.
        per_unit = float(np.quantile(np.sqrt(np.maximum(e**2 - noise**2, 0.0)) / dist, interval)) / z
        beyond = np.maximum(np.log(6.0 * N * D / auto.max_compute), 0.0)
        ext = per_unit * np.maximum(beyond, EXTRAPOLATION_MIN)
    var = noise**2 + auto.misspecification_scale**2 + ext**2
    ld = chosen.log_draws(N, D)
    if ld.shape[0] > 2:
        var += np.var(ld, axis=0)
    comp = [c for c in auto.candidates if c.competitive and c is not chosen]
    if comp:
        others = np.array([np.log(c.predict(c.fit.coefficients, N, D)) for c in comp])
        others = np.where(np.isfinite(others), others, ln_mean)
        var += np.mean((others - ln_mean) ** 2, axis=0)  # spread between forms about the chosen one
    sd = np.sqrt(var)
    return [Prediction(N=float(a), D=float(b), mean=float(m), low=float(m * math.exp(-z * s)),
                       high=float(m * math.exp(z * s)))
            for a, b, m, s in zip(N, D, mean, sd, strict=True)]


def objective_of(form: LinearForm, c: Mapping[str, float], N: np.ndarray, D: np.ndarray, L: np.ndarray) -> float:
    """Summed log-Huber objective of a coefficient set (for comparisons with other fitters)."""
    pred = form.prepare(N, D, L).predict(dict(c), N, D)
    return float(huber(np.log(pred) - np.log(L)).sum())


def fit_family(law: Any, columns: Mapping[str, Any], *, warmup: float | None = None, batch: str = "published",
               **options: Any) -> Any:
    """A family fitted by variable projection only, as a fits.result.FitResult (the ``Law.fit`` of
    chinchilla-e and broken-d): fit_auto with that one candidate; ``bootstrap`` gives 95% intervals."""
    from fits.fitting.bootstrap import percentile_interval
    from fits.laws.base import numeric_columns, reject_options
    from fits.result import Diagnostics, FitResult

    reject_options(law, warmup=warmup, batch=batch)
    cols, group = numeric_columns(columns)
    k = int(options.get("bootstrap", 0) or 0)
    auto = fit_auto(cols["N"], cols["D"], cols["loss"], group=group, laws=[law.name], bootstrap=k,
                    seed=int(options.get("seed", 0) or 0), keep_outliers=bool(options.get("keep_outliers", False)))
    c = auto.chosen
    intervals = {name: percentile_interval(np.array([d[name] for d in c.draws])) for name in c.fit.coefficients} \
        if c.draws else {}
    fold = c.folds[-1] if c.folds else None
    r = c.fit.residuals
    return FitResult(
        law=law.name, coefficients=c.fit.coefficients, objective=c.fit.objective, n_points=auto.report.n_points,
        starts=len(c.form.phi_grid()), seconds=auto.report.seconds, converged=c.fit.success,
        warnings=auto.report.warnings, intervals=intervals, bootstrap=k, seed=int(options.get("seed", 0) or 0),
        message="variable projection: NNLS profile over the exponent grid, then joint log-Huber refinement; "
        + "; ".join(auto.report.notes),
        diagnostics=Diagnostics(residual_rms=float(np.sqrt(np.mean(r**2))), residual_max=float(np.max(np.abs(r))),
                                residual_mean=float(np.mean(r)),
                                heldout_error=None if fold is None else fold.median_error,
                                heldout_points=None if fold is None else fold.test),
        excluded=auto.report.excluded,
    )


def predictive_of(auto: AutoFit, draws: int = 100) -> Predictive:
    """What a stored fit keeps of ``auto`` for ``predict_from_fit``."""
    chosen = auto.chosen
    return Predictive(
        noise=auto.report.noise,
        misspecification=math.sqrt(auto.misspecification_scale**2 + auto.extrapolation_scale**2),
        draws=chosen.draws[:draws],
        alternatives=[{"law": c.law.name, "coefficients": c.fit.coefficients} for c in auto.candidates
                      if c.competitive and c is not chosen],
    )


def predict_from_fit(fit: Any, N: Any, D: Any, interval: float = 0.8) -> list[Prediction]:
    """Predictions with intervals from a stored fit (fits.fit.Fit): its kept draws, noise and alternatives
    when it was fitted with them; otherwise the residual rms as the only spread, which a note must say."""
    from fits.laws.registry import get_law

    if not 0.0 < interval < 1.0:
        raise BadInput(f"must lie strictly between 0 and 1, got {interval}", field="interval")
    law = get_law(fit.law)
    if law.in_steps:
        raise BadInput(f"{fit.law} predicts from steps at a batch, not from N and D", field="fit")
    N, D = np.atleast_1d(np.asarray(N, dtype=float)), np.atleast_1d(np.asarray(D, dtype=float))
    with np.errstate(all="ignore"):
        mean = np.asarray(law.loss(fit.coefficients, N, D), dtype=float)
    pr = fit.diagnostics.predictive
    noise = pr.noise if pr is not None else (fit.diagnostics.residual_rms or 0.0)
    var = np.full(N.size, noise**2 + (pr.misspecification**2 if pr is not None else 0.0))
    if pr is not None and len(pr.draws) > 2:
        with np.errstate(all="ignore"):
            ld = np.array([np.log(np.asarray(law.loss(c, N, D), dtype=float)) for c in pr.draws])
        ld = ld[np.all(np.isfinite(ld), axis=1)]
        if ld.shape[0] > 2:
            var += np.var(ld, axis=0)
    if pr is not None and pr.alternatives:
        with np.errstate(all="ignore"):
            others = np.array([np.log(np.asarray(get_law(a["law"]).loss(a["coefficients"], N, D), dtype=float))
                               for a in pr.alternatives])
        others = np.where(np.isfinite(others), others, np.log(mean))
        var += np.mean((others - np.log(mean)) ** 2, axis=0)
    z = float(norm.ppf(0.5 + interval / 2))
    sd = np.sqrt(var)
    return [Prediction(N=float(a), D=float(b), mean=float(m), low=float(m * math.exp(-z * s)),
                       high=float(m * math.exp(z * s)))
            for a, b, m, s in zip(N, D, mean, sd, strict=True)]
