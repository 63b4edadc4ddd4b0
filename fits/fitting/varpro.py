"""Variable projection: fit laws that are linear in their amplitudes once the exponents are fixed.

L = E + A/N^α + B/D^β is linear in (E, A, B) for fixed (α, β); Kaplan's L^(1/α_D) = N_c^p/N^p + D_c/D is
linear in (N_c^p, D_c) for fixed (p, α_D); a broken power law in D is linear in its amplitudes for fixed
exponents and break. A ``LinearForm`` states that structure: a grid of the nonlinear parameters φ and, for
each φ, the design matrix X(φ), target y and weights w with y ≈ X·c, c ≥ 0, where w makes the weighted
squared error approximate the squared log-space residual. Fitting is then

1. the profile: for every φ on a dense grid, the exact non-negative least-squares amplitudes (every support
   of c solved in closed form, batched over the grid: the best feasible support is the NNLS optimum), and the
   log-Huber objective of the result;
2. the refinement: from the best few profile points, all parameters jointly on the summed log-Huber
   objective (δ = 1e-3, laws.md §2), by a bounded trust-region least-squares solver.

The refinement only moves downhill from its starts, so the result is never worse on the objective than the
best profile point; the profile covers the exponent box far more densely than the paper's 4,500 starts
(which only cover exponents 0, 0.5, …, 2), and tests check it against the grid procedure's optimum.

Coordinates: amplitudes are refined as the log of their term at a reference point (the geometric mean of
the data's N and D), like the start grid's a' and b': that removes most of the correlation between a scale
and its exponent.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from fits.errors import BadInput
from fits.fitting.huber import DELTA, huber

PROFILE_STARTS = 4
"""Profile points the joint refinement starts from (distinct in φ)."""


@dataclass(frozen=True)
class Prior:
    """A weak Gaussian prior on some coefficients: name -> (centre, standard deviation)."""

    name: str
    centres: dict[str, tuple[float, float]]


class LinearForm:
    """A family's VarPro structure; subclasses give the grid, the design and the coefficient mapping."""

    amp_names: tuple[str, ...] = ()
    phi_names: tuple[str, ...] = ()
    phi_bounds: tuple[tuple[float, float], ...] = ()
    amp_floor: tuple[float, ...] = ()
    """Least contribution of each amplitude's term at the reference point (0 allowed by NNLS; the refinement
    works in logs, so it needs a floor: a term this small is as good as absent)."""

    ref_n: float = 0.0
    ref_d: float = 0.0
    """ln N and ln D of the reference point the refinement's log-terms are taken at (set by ``prepare``)."""

    def prepare(self, N: np.ndarray, D: np.ndarray, L: np.ndarray) -> LinearForm:
        """A copy bound to this data: its reference sizes (and any constant a form estimates beforehand)."""
        bound = copy.copy(self)
        bound.ref_n, bound.ref_d = float(np.log(N).mean()), float(np.log(D).mean())
        return bound

    def phi_grid(self) -> np.ndarray:
        raise NotImplementedError

    def columns(self, phi: np.ndarray, ln_n: np.ndarray, ln_d: np.ndarray) -> np.ndarray:
        """(P, n, k) design columns for P rows of φ at n points."""
        raise NotImplementedError

    def target(self, phi: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(y, w), each (P, n): y ≈ X·c, and weights making w·(y − X·c)² ≈ (ln pred − ln L)²."""
        y = np.broadcast_to(L, (phi.shape[0], L.size))
        return y, np.broadcast_to(1.0 / L**2, y.shape)

    def loss_from_linear(self, phi: np.ndarray, s: np.ndarray) -> np.ndarray:
        """The predicted loss from the linear predictor s = X·c (identity unless the target is transformed)."""
        return s

    def dlog_columns(self, phi: np.ndarray, ln_n: np.ndarray, ln_d: np.ndarray) -> np.ndarray:
        """(n, k, m): ∂ ln column_j / ∂ φ_m at one φ, for the refinement's analytic Jacobian."""
        raise NotImplementedError

    def link(self, phi: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ln pred, ∂ ln pred/∂s, ∂ ln pred/∂φ as (n, m)) at one φ; the identity link unless the target is
        transformed."""
        return np.log(s), 1.0 / s, np.zeros((s.size, len(self.phi_names)))

    def coefficients(self, amps: np.ndarray, phi: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def from_coefficients(self, c: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    # -- generic
    estimated: int = 0
    """Constants ``prepare`` estimates from the data before the fit (they count as coefficients)."""

    @property
    def k(self) -> int:
        return len(self.amp_names) + len(self.phi_names) + self.estimated

    def predict_params(self, amps: np.ndarray, phi: np.ndarray, ln_n: np.ndarray, ln_d: np.ndarray) -> np.ndarray:
        X = self.columns(phi[None, :], ln_n, ln_d)[0]
        return self.loss_from_linear(phi[None, :], (X @ amps)[None, :])[0]

    def predict(self, c: dict[str, float], N: np.ndarray, D: np.ndarray) -> np.ndarray:
        amps, phi = self.from_coefficients(c)
        return self.predict_params(amps, phi, np.log(N), np.log(D))


# ------------------------------------------------------------------------------------------- the profile


def batched_nnls(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """min_c≥0 Σ w (y − X c)² for each of P problems at once: (P, k) amplitudes and (P,) weighted SSE.

    Exact for the small k of a scaling law: the NNLS optimum is the unconstrained solution on its own
    support, and it is feasible, so the best feasible support solution (over all 2^k − 1 supports) is it.
    """
    P, _, k = X.shape
    best_sse = (w * y * y).sum(axis=1)  # the empty support: c = 0
    best = np.zeros((P, k))
    Xw_t = np.ascontiguousarray((X * w[:, :, None]).transpose(0, 2, 1))  # (P, k, n)
    G = Xw_t @ X  # batched BLAS products, far faster than einsum here
    h = (Xw_t @ y[:, :, None])[:, :, 0]
    yy = best_sse.copy()
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            idx = np.array(support)
            Gs = G[:, idx[:, None], idx[None, :]]
            hs = h[:, idx]
            # A tiny ridge keeps near-collinear columns solvable; its effect is below the data's precision.
            ridge = 1e-12 * np.trace(Gs, axis1=1, axis2=2)[:, None, None] * np.eye(size)
            try:
                cs = np.linalg.solve(Gs + ridge, hs[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:
                continue
            sse = yy - (cs * hs).sum(axis=1)  # at the LS solution: y'Wy − c'h
            ok = np.all(cs >= 0, axis=1) & np.isfinite(sse) & (sse < best_sse)
            if ok.any():
                best_sse[ok] = sse[ok]
                full = np.zeros((int(ok.sum()), k))
                full[:, idx] = cs[ok]
                best[ok] = full
    return best, np.maximum(best_sse, 0.0)


@dataclass
class Profile:
    phi: np.ndarray
    amps: np.ndarray
    objective: np.ndarray
    """Summed log-Huber objective at each grid point's NNLS amplitudes."""


def profile(form: LinearForm, N: np.ndarray, D: np.ndarray, L: np.ndarray, *, chunk: int = 2048) -> Profile:
    """NNLS amplitudes and the log-Huber objective at every point of the form's φ grid."""
    grid = form.phi_grid()
    ln_n, ln_d, ln_l = np.log(N), np.log(D), np.log(L)
    amps, objs = [], []
    for start in range(0, grid.shape[0], chunk):
        phi = grid[start : start + chunk]
        X = form.columns(phi, ln_n, ln_d)
        y, w = form.target(phi, L)
        c, _ = batched_nnls(X, y, w)
        s = (X @ c[:, :, None])[:, :, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            pred = form.loss_from_linear(phi, s)
            r = np.log(pred) - ln_l
        obj = np.where(np.all(np.isfinite(r), axis=1), huber(np.nan_to_num(r, nan=1e3, posinf=1e3, neginf=-1e3)).sum(1),
                       np.inf)
        amps.append(c)
        objs.append(obj)
    return Profile(grid, np.vstack(amps), np.concatenate(objs))


# ------------------------------------------------------------------------------------------ the refinement


@dataclass
class LinearFit:
    """One refined fit of a LinearForm."""

    form: LinearForm
    coefficients: dict[str, float]
    objective: float
    """Summed log-Huber objective on the points fitted (without the prior's terms)."""
    theta: np.ndarray
    residuals: np.ndarray
    """ln pred − ln observed at the fitted points."""
    jacobian_condition: float
    success: bool
    notes: list[str] = field(default_factory=list)
    starts: list[np.ndarray] = field(default_factory=list)
    """The profile starts the refinement began from (θ coordinates)."""


class _Problem:
    """Residuals of the joint refinement in θ = (log terms at the reference, φ)."""

    def __init__(self, form: LinearForm, N: np.ndarray, D: np.ndarray, L: np.ndarray, prior: Prior | None,
                 prior_scale: float) -> None:
        self.form, self.ln_n, self.ln_d, self.ln_l = form, np.log(N), np.log(D), np.log(L)
        self.n_amp = len(form.amp_names)
        self.ref_n, self.ref_d = form.ref_n, form.ref_d
        self.prior = prior
        self.prior_scale = prior_scale

    def ref_columns(self, phi: np.ndarray) -> np.ndarray:
        return self.form.columns(phi[None, :], np.array([self.ref_n]), np.array([self.ref_d]))[0, 0]

    def amps(self, theta: np.ndarray) -> np.ndarray:
        phi = theta[self.n_amp :]
        return np.exp(theta[: self.n_amp]) / self.ref_columns(phi)

    def theta_of(self, amps: np.ndarray, phi: np.ndarray) -> np.ndarray:
        terms = np.maximum(amps * self.ref_columns(phi), np.asarray(self.form.amp_floor))
        return np.concatenate([np.log(terms), phi])

    def data_residuals(self, theta: np.ndarray) -> np.ndarray:
        phi = theta[self.n_amp :]
        with np.errstate(all="ignore"):
            X = self.form.columns(phi[None, :], self.ln_n, self.ln_d)[0]
            ln_pred, _, _ = self.form.link(phi[None, :], X @ self.amps(theta))
            r = ln_pred - self.ln_l
        return np.where(np.isfinite(r), r, 1e3)

    def prior_residuals(self, theta: np.ndarray) -> np.ndarray:
        assert self.prior is not None
        c = self.form.coefficients(self.amps(theta), theta[self.n_amp :])
        return np.array([self.prior_scale * (c[k] - mu) / sd for k, (mu, sd) in self.prior.centres.items() if k in c])

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        r = self.data_residuals(theta)
        if self.prior is None:
            return r
        return np.concatenate([r, self.prior_residuals(theta)])

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """Analytic ∂r/∂θ: s = Σ_j amp_j·X_j(φ) with amp_j = e^θ_j / X_j(ref; φ)."""
        form, k = self.form, self.n_amp
        phi = theta[k:]
        ref = np.array([self.ref_n]), np.array([self.ref_d])
        with np.errstate(all="ignore"):
            X = form.columns(phi[None, :], self.ln_n, self.ln_d)[0]  # (n, k)
            G = form.dlog_columns(phi, self.ln_n, self.ln_d)  # (n, k, m)
            G_ref = form.dlog_columns(phi, *ref)[0]  # (k, m)
            amps = self.amps(theta)
            terms = X * amps[None, :]  # ∂s/∂θ_j
            s = terms.sum(axis=1)
            _, d_s, d_phi = form.link(phi[None, :], s)
            ds_dphi = np.einsum("nk,nkm->nm", terms, G - G_ref[None, :, :])
            J = np.concatenate([terms * d_s[:, None], ds_dphi * d_s[:, None] + d_phi], axis=1)
        J = np.where(np.isfinite(J), J, 0.0)
        if self.prior is None:
            return J
        # The prior's few rows by finite differences: they are cheap and the coefficient maps vary by family.
        base = self.prior_residuals(theta)
        rows = np.empty((base.size, theta.size))
        for i in range(theta.size):
            h = 1e-7 * max(1.0, abs(theta[i]))
            t = theta.copy()
            t[i] += h
            rows[:, i] = (self.prior_residuals(t) - base) / h
        return np.vstack([J, rows])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.concatenate([np.log(np.asarray(self.form.amp_floor)), [b[0] for b in self.form.phi_bounds]])
        hi = np.concatenate([np.full(self.n_amp, np.log(1e6)), [b[1] for b in self.form.phi_bounds]])
        return lo, hi


def prior_scale(residuals: np.ndarray) -> float:
    """Weight that puts a Gaussian prior on the log-Huber objective's scale.

    With δ small the objective is ≈ δ·Σ|r|, a Laplace log-likelihood times δ·b (b the mean |r|), so a prior
    term (x − μ)²/(2σ²) enters as a residual f with f²/2 = δ·b·(x − μ)²/(2σ²): f = √(δ·b)·(x − μ)/σ."""
    b = max(float(np.mean(np.abs(residuals))), DELTA)
    return math.sqrt(DELTA * b)


def refine(form: LinearForm, N: np.ndarray, D: np.ndarray, L: np.ndarray, starts: Sequence[np.ndarray], *,
           prior: Prior | None = None, scale: float = 1.0, max_nfev: int = 400) -> LinearFit:
    """Joint bounded refinement of θ from each start; the lowest objective wins."""
    prob = _Problem(form, N, D, L, prior, scale)
    lo, hi = prob.bounds()
    best = None
    for theta0 in starts:
        x0 = np.clip(theta0, lo + 1e-9, hi - 1e-9)
        res = least_squares(prob.residuals, x0, jac=prob.jacobian, bounds=(lo, hi), loss="huber", f_scale=DELTA,
                            method="trf", x_scale="jac", max_nfev=max_nfev, xtol=1e-10, ftol=1e-12, gtol=1e-10)
        f = float(huber(prob.data_residuals(res.x)).sum())
        f0 = float(huber(prob.data_residuals(x0)).sum())
        x = res.x if (f <= f0 or prior is not None) else x0
        if best is None or min(f, f0) < best[0]:
            best = (min(f, f0) if prior is None else f, x, res)
    assert best is not None
    f, x, res = best
    r = prob.data_residuals(x)
    try:
        s = np.linalg.svd(res.jac, compute_uv=False)
        cond = float(s[0] / s[-1]) if s[-1] > 0 else math.inf
    except (np.linalg.LinAlgError, ValueError):
        cond = math.inf
    return LinearFit(form=form, coefficients=form.coefficients(prob.amps(x), x[prob.n_amp :]), objective=f,
                     theta=x, residuals=r, jacobian_condition=cond, success=bool(res.success))


def profile_starts(form: LinearForm, N: np.ndarray, D: np.ndarray, L: np.ndarray,
                   n: int = PROFILE_STARTS) -> list[np.ndarray]:
    """θ of the best ``n`` profile points that are not neighbours of a better one."""
    prof = profile(form, N, D, L)
    prob = _Problem(form, N, D, L, None, 1.0)
    order = np.argsort(prof.objective)
    span = np.array([hi - lo for lo, hi in form.phi_bounds])
    chosen: list[int] = []
    for i in order:
        if not np.isfinite(prof.objective[i]):
            break
        if all(np.max(np.abs(prof.phi[i] - prof.phi[j]) / span) > 0.05 for j in chosen):
            chosen.append(int(i))
        if len(chosen) >= n:
            break
    return [prob.theta_of(prof.amps[i], prof.phi[i]) for i in chosen]


def fit_linear(form: LinearForm, N: np.ndarray, D: np.ndarray, L: np.ndarray, *, prior: Prior | None = None,
               starts: int = PROFILE_STARTS, warm: LinearFit | None = None) -> LinearFit:
    """Profile then refine (see the module docstring); with a prior, its terms join the refinement.
    ``warm``: a fit of nearly the same points (the same minus a few outliers): its optimum and profile starts
    replace the profile."""
    bound = form.prepare(N, D, L)
    if warm is not None:
        old = _Problem(warm.form, N, D, L, None, 1.0)
        new = _Problem(bound, N, D, L, None, 1.0)
        k = len(bound.amp_names)
        theta0 = [new.theta_of(old.amps(t), t[k:]) for t in [warm.theta, *warm.starts]]
    else:
        theta0 = profile_starts(bound, N, D, L, starts)
    if not theta0:
        raise BadInput(f"no exponents on the grid give a finite fit of {type(form).__name__}", field="data")
    fit = refine(bound, N, D, L, theta0)
    fit.starts = theta0
    if prior is not None and any(k in fit.coefficients for k in prior.centres):
        with_prior = refine(bound, N, D, L, [fit.theta], prior=prior, scale=prior_scale(fit.residuals))
        with_prior.notes.append(f"prior {prior.name} applied")
        return with_prior
    return fit


def refit_from(fit: LinearFit, N: np.ndarray, D: np.ndarray, L: np.ndarray, *, prior: Prior | None = None,
               scale: float = 1.0, max_nfev: int = 40) -> LinearFit:
    """A warm-started refinement (bootstrap resamples): the full-data optimum is the only start. The form is
    prepared again on these points, so a constant it estimates beforehand (chinchilla-e's E₀) varies with the
    resample as the coefficients do."""
    bound = fit.form.prepare(N, D, L)
    old, new_ = _Problem(fit.form, N, D, L, None, 1.0), _Problem(bound, N, D, L, None, 1.0)
    k = len(bound.amp_names)
    theta = new_.theta_of(old.amps(fit.theta), fit.theta[k:])
    return refine(bound, N, D, L, [theta], prior=prior, scale=scale, max_nfev=max_nfev)
