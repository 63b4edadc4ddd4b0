"""Multi-start minimisation: every start of a grid in one batch, then a full-precision polish of the best.

Three stages:
  1. all starts together in float32 (batched L-BFGS), enough to tell which basin each start falls into;
  2. the distinct end points, best first, refined together in float64;
  3. the best few polished one by one with scipy's L-BFGS-B to full precision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fits.fitting.form import Form, Points, Problem
from fits.fitting.lbfgs import ITERATION_CAP, BatchResult, minimize_batched

COARSE_MAX_ITER = 100
"""Stage-1 iteration cap. Most starts stop within 40 iterations; those still moving at the cap are creeping
along the kinks of the Huber objective next to a minimum (on Epoch's data the best of them is within 1e-6
of the optimum's objective); stage 2 finishes the best of them."""
COARSE_BACKTRACKS = 6
"""Stage-1 line-search trials (each shrinks the step 2-10×). In float32 a row that fails six is at its
precision floor; more trials only burn evaluations."""
KEEP_DISTINCT = 16
"""Distinct end points carried from stage 1 to stage 2."""
POLISH = 3
"""Best distinct minima polished with scipy."""
DISTINCT = 0.05
"""End points closer than this in every optimiser coordinate (5% in a log scale, 0.05 in an exponent) count
as one minimum: the Huber kinks leave a cloud of micro-minima around each real one."""


@dataclass(eq=False)
class Candidate:
    """One local minimum."""

    theta: np.ndarray
    objective: float
    converged: bool
    iterations: int = 0
    message: str = ""


@dataclass
class MultiStartResult:
    candidates: list[Candidate]
    """Distinct local minima, best objective first."""
    starts: int
    capped: int
    """Starts still moving when stage 1 hit its iteration cap."""
    seconds: float
    coarse_points: np.ndarray
    """Stage-1 end points carried into stage 2 (distinct, best first): spread-out warm starts for refits."""

    @property
    def best(self) -> Candidate:
        return self.candidates[0]


def distinct(theta: np.ndarray, f: np.ndarray, keep: int, tol: float = DISTINCT) -> np.ndarray:
    """Indices of up to ``keep`` rows at least ``tol`` apart (max-norm), lowest objective first."""
    finite = np.flatnonzero(np.isfinite(f))
    order = finite[np.argsort(f[finite], kind="stable")]
    kept: list[int] = []
    for i in order:
        if not kept or np.all(np.abs(theta[kept] - theta[i]).max(axis=1) >= tol):
            kept.append(int(i))
            if len(kept) == keep:
                break
    return np.array(kept, dtype=int)


def multistart(
    form: Form,
    points: Points,
    starts: np.ndarray,
    *,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    keep: int = KEEP_DISTINCT,
    polish: int = POLISH,
) -> MultiStartResult:
    """Minimise the form's objective on ``points`` from every row of ``starts``; distinct minima, best first.

    ``bounds`` (lower, upper) are in optimiser coordinates; None fits unbounded.
    """
    t0 = time.perf_counter()
    coarse = coarse_stage(Problem(form, points, dtype=np.float32), starts, bounds)
    picked = distinct(coarse.x, coarse.f, keep)
    if picked.size == 0:
        raise FloatingPointError("no start reached a finite objective")

    exact = Problem(form, points)
    lo, hi = bounds if bounds is not None else (None, None)
    fine = minimize_batched(exact.fg, coarse.x[picked], lower=lo, upper=hi, max_iter=2000, ftol=1e-13, gtol=1e-9)
    candidates = [
        Candidate(
            theta=fine.x[i],
            objective=float(fine.f[i]),
            converged=bool(fine.converged[i]),
            iterations=int(coarse.iterations[picked[i]] + fine.iterations[i]),
        )
        for i in distinct(fine.x, fine.f, keep)
    ]
    for j in range(min(polish, len(candidates))):
        candidates[j] = polish_candidate(exact, candidates[j], bounds)
    candidates.sort(key=lambda c: c.objective)
    # Polishing can bring two candidates together; keep one of each.
    thetas = np.stack([c.theta for c in candidates])
    keep_idx = distinct(thetas, np.array([c.objective for c in candidates]), len(candidates))
    candidates = [candidates[i] for i in keep_idx]
    return MultiStartResult(
        candidates=candidates,
        starts=int(starts.shape[0]),
        capped=int((coarse.status == ITERATION_CAP).sum()),
        seconds=time.perf_counter() - t0,
        coarse_points=coarse.x[picked],
    )


def coarse_stage(problem: Problem, starts: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None) -> BatchResult:
    """Stage 1. With bounds, the box is mapped onto the real line (θ = lo + (hi − lo)·sigmoid(z)): projected
    steps stall on rows that bounce between faces of the box, the smooth map lets every row run freely and
    only slows the rows that head for a face, which stages 2 and 3 then settle exactly."""
    options = {"max_iter": COARSE_MAX_ITER, "max_backtracks": COARSE_BACKTRACKS, "restart_on_stall": False}
    if bounds is None:
        return minimize_batched(problem.fg, starts, **options)
    lo, hi = bounds
    width = hi - lo

    def theta_of(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sig = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow
        return lo + width * sig, width * sig * (1.0 - sig)

    def fg(z: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta, jac = theta_of(z)
        f, g = problem.fg(theta, rows)
        with np.errstate(invalid="ignore", over="ignore"):  # rows with f = inf are rejected by the search
            return f, g * jac

    p = np.clip((np.clip(starts, lo, hi) - lo) / width, 1e-4, 1 - 1e-4)
    res = minimize_batched(fg, np.log(p / (1 - p)), **options)
    res.x = theta_of(res.x)[0]
    return res


def polish_candidate(
    problem: Problem, start: Candidate, bounds: tuple[np.ndarray, np.ndarray] | None, row: int = 0
) -> Candidate:
    """scipy L-BFGS-B from a candidate to full precision; keeps the start if scipy does not improve on it."""
    from scipy.optimize import minimize  # imported here: a second of start-up, paid only when fitting

    box = None if bounds is None else list(zip(*(np.where(np.isfinite(b), b, None) for b in bounds), strict=True))
    res = minimize(
        problem.scalar(row),
        start.theta,
        jac=True,
        method="L-BFGS-B",
        bounds=box,
        options={"maxiter": 2000, "maxcor": 20, "ftol": 1e-12, "gtol": 1e-10},
    )
    if not np.isfinite(res.fun) or res.fun > start.objective:
        return start
    # Stopping because no step lowers f any more is convergence at machine precision for this objective.
    if res.success:
        converged, message = True, "polished by L-BFGS-B to its tolerances"
    elif "ABNORMAL" in str(res.message):
        converged, message = True, "polished by L-BFGS-B until no step lowered the objective"
    else:
        converged, message = False, f"L-BFGS-B polish stopped: {res.message}"
    return Candidate(np.asarray(res.x), float(res.fun), converged, start.iterations + int(res.nit), message)
