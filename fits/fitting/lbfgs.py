"""Batched limited-memory BFGS: many independent small problems minimised in lock-step with numpy.

A multi-start fit runs thousands of 4-5 parameter problems that differ only in their start (or in their
bootstrap weights). Run one at a time, nearly all the time goes to interpreter overhead; stepped together,
each iteration is a few whole-array operations over (problems × points).

Every row keeps its own curvature history, step length and stopping state; rows that stop leave the working
arrays, so late iterations only pay for the stragglers. The history is a ring of slots shared by all rows
(a row that skips an update leaves its slot empty), which keeps every slot a contiguous (rows × k) array.
Optional box bounds are handled by projection: coordinates held at a bound by the gradient are frozen, the
two-loop recursion runs on each row's free coordinates, and trial points are clipped into the box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BatchedObjective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""fg(X, rows) -> (f, G): values (b,) and gradients (b, k) at X (b, k) for the problems numbered rows (b,)."""

CONVERGED, STALLED, ITERATION_CAP, NOT_FINITE = 0, 1, 2, 3
"""Row status: a tolerance test passed; no step along the search direction lowered f (the precision floor);
the iteration cap; the start's objective was not finite."""


@dataclass
class BatchResult:
    x: np.ndarray
    """(B, k) final points."""
    f: np.ndarray
    """(B,) final objective values (inf where the start was not finite)."""
    status: np.ndarray
    """(B,) CONVERGED, STALLED, ITERATION_CAP or NOT_FINITE."""
    iterations: np.ndarray
    evaluations: int
    """Total row-evaluations of fg (a measure of work)."""

    @property
    def converged(self) -> np.ndarray:
        return self.status == CONVERGED


def minimize_batched(
    fg: BatchedObjective,
    x0: np.ndarray,
    *,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    memory: int = 10,
    max_iter: int = 400,
    ftol: float = 2.2e-9,
    gtol: float = 1e-5,
    max_backtracks: int = 20,
    restart_on_stall: bool = True,
) -> BatchResult:
    """Minimise B problems at once from the rows of ``x0``.

    Stopping rules follow scipy's L-BFGS-B per row: relative decrease
    ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol`` or projected-gradient max-norm ``<= gtol``.
    ``restart_on_stall=False`` retires a row at its first failed line search instead of retrying it from a
    fresh history (cheaper where a coarse answer is enough).
    """
    n_rows, k = np.shape(x0)
    lo = np.full((k, 1), -np.inf) if lower is None else np.asarray(lower, dtype=float).reshape(k, 1)
    hi = np.full((k, 1), np.inf) if upper is None else np.asarray(upper, dtype=float).reshape(k, 1)
    bounded = bool(np.isfinite(lo).any() or np.isfinite(hi).any())
    # Internally coordinates are columns: x is (k, rows), so per-row dot products reduce over the short
    # leading axis, several times faster than row-wise products of (rows, 5) arrays.
    x = np.clip(np.array(x0, dtype=float).T, lo, hi)

    def evaluate(xk: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f, g = fg(np.ascontiguousarray(xk.T), rows)
        return f, np.ascontiguousarray(g.T)

    out_x = x.T.copy()
    out_f = np.full(n_rows, np.inf)
    out_status = np.full(n_rows, ITERATION_CAP)
    out_iter = np.zeros(n_rows, dtype=int)

    ids = np.arange(n_rows)
    f, g = evaluate(x, ids)
    evaluations = n_rows
    finite = np.isfinite(f)
    out_status[~finite] = NOT_FINITE
    ids, x, f, g = ids[finite], x[:, finite], f[finite], g[:, finite]

    s_hist = np.zeros((memory, k, ids.size))
    y_hist = np.zeros((memory, k, ids.size))
    rho = np.zeros((memory, ids.size))  # 0 marks an empty slot
    gamma = np.ones(ids.size)
    has_pair = np.zeros(ids.size, dtype=bool)
    ptr = 0
    iters = np.zeros(ids.size, dtype=int)
    retried = np.zeros(ids.size, dtype=bool)

    def retire(mask: np.ndarray, status: int | np.ndarray) -> None:
        """Move the masked rows to the outputs and drop them from the working arrays."""
        nonlocal ids, x, f, g, s_hist, y_hist, rho, gamma, has_pair, iters, retried
        gone = ids[mask]
        out_x[gone], out_f[gone], out_iter[gone] = x[:, mask].T, f[mask], iters[mask]
        out_status[gone] = status if np.isscalar(status) else status[mask]
        keep = ~mask
        ids, f, gamma, has_pair, iters, retried = (
            ids[keep], f[keep], gamma[keep], has_pair[keep], iters[keep], retried[keep]
        )
        x, g = x[:, keep], g[:, keep]
        s_hist, y_hist, rho = s_hist[:, :, keep], y_hist[:, :, keep], rho[:, keep]

    for _ in range(max_iter):
        if ids.size == 0:
            break
        if bounded:
            free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
            pg = np.where(free, g, 0.0)
        else:
            free, pg = None, g
        done = np.abs(pg).max(axis=0) <= gtol
        if done.any():
            retire(done, CONVERGED)
            if ids.size == 0:
                break
            if free is not None:
                free, pg = free[:, ~done], pg[:, ~done]
            else:
                pg = g

        # Newest slot first; slots no row has filled yet (the first iterations) are skipped.
        order = [j for j in ((ptr - i) % memory for i in range(memory)) if rho[j].any()]
        if free is not None and not free.all():
            d = -_two_loop_free(pg, s_hist, y_hist, rho, order, free)
            d *= free
        else:
            d = -_two_loop(pg, s_hist, y_hist, rho, gamma, order)
        slope = _dot(pg, d)
        bad = ~(slope < 0)
        if bad.any():  # the history lost positive-definiteness on the free set: restart as steepest descent
            d[:, bad] = -pg[:, bad]
            rho[:, bad] = 0.0
            has_pair[bad] = False
            gamma[bad] = 1.0
        t = np.ones(ids.size)
        fresh = ~has_pair
        if fresh.any():
            t[fresh] = np.minimum(1.0, 1.0 / np.maximum(np.sqrt(_dot(d[:, fresh], d[:, fresh])), 1e-300))

        x_new, f_new, g_new, ok, n_eval = _backtrack(evaluate, ids, x, f, pg, d, t, lo, hi, max_backtracks)
        evaluations += n_eval
        iters += 1

        s = x_new - x
        y = g_new - g
        sy = _dot(s, y)
        yy = _dot(y, y)
        good = ok & (sy > 1e-10 * np.sqrt(_dot(s, s) * yy)) & (sy > 1e-300) & (yy > 1e-300)
        ptr = (ptr + 1) % memory
        s_hist[ptr] = np.where(good, s, 0.0)
        y_hist[ptr] = np.where(good, y, 0.0)
        rho[ptr] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
        gamma = np.where(good, sy / np.where(good, yy, 1.0), gamma)
        has_pair |= good

        rel = (f - f_new) / np.maximum(np.maximum(np.abs(f), np.abs(f_new)), 1.0)
        x = np.where(ok, x_new, x)
        f = np.where(ok, f_new, f)
        g = np.where(ok, g_new, g)
        # As scipy does: a failed line search first discards the curvature history and retries along the
        # gradient; a row that fails again from a fresh start is at the precision floor.
        retry = ~ok & ~retried if restart_on_stall else np.zeros(ids.size, dtype=bool)
        if retry.any():
            rho[:, retry] = 0.0
            has_pair[retry] = False
            gamma[retry] = 1.0
        retried = retry
        small = ok & (rel <= ftol)
        stop = small | (~ok & ~retry)
        if stop.any():
            retire(stop, np.where(small, CONVERGED, STALLED))

    if ids.size:
        out_x[ids], out_f[ids], out_iter[ids] = x.T, f, iters
    return BatchResult(x=out_x, f=out_f, status=out_status, iterations=out_iter, evaluations=evaluations)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Column-wise dot products of (k, rows) arrays."""
    return np.einsum("ij,ij->j", a, b)


def _two_loop(
    g: np.ndarray, s: np.ndarray, y: np.ndarray, rho: np.ndarray, gamma: np.ndarray, order: list[int]
) -> np.ndarray:
    """H·g for every column by the L-BFGS two-loop recursion over slots ``order`` (newest first)."""
    q = g.copy()
    alpha = {}
    for j in order:
        a = rho[j] * _dot(s[j], q)
        q -= a * y[j]
        alpha[j] = a
    r = gamma * q
    for j in reversed(order):
        b = rho[j] * _dot(y[j], r)
        r += (alpha[j] - b) * s[j]
    return r


def _two_loop_free(
    g: np.ndarray, s: np.ndarray, y: np.ndarray, rho: np.ndarray, order: list[int], free: np.ndarray
) -> np.ndarray:
    """The two-loop recursion restricted to each column's free coordinates (pairs re-weighted there)."""
    s_f = s * free[None]
    y_f = y * free[None]
    sy = np.einsum("mkb,mkb->mb", s_f, y_f)
    usable = (rho > 0) & (sy > 1e-12)
    rho_f = np.where(usable, 1.0 / np.where(usable, sy, 1.0), 0.0)
    newest = np.zeros(g.shape[1])
    for j in reversed(order):  # the newest usable pair sets the initial scaling
        yy = _dot(y_f[j], y_f[j])
        newest = np.where(usable[j], sy[j] / np.where(yy > 0, yy, 1.0), newest)
    gamma = np.where(newest > 0, newest, 1.0)
    return _two_loop(g, s_f, y_f, rho_f, gamma, order)


def _backtrack(
    evaluate: BatchedObjective,
    rows: np.ndarray,
    x: np.ndarray,
    f: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    t: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    max_backtracks: int,
    c1: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Armijo backtracking for every column at once; columns that pass leave, the rest shrink their step.

    The shrink factor comes from the minimum of the quadratic through f(0), f'(0) and f(t), kept within
    [0.1, 0.5], so a badly scaled first step needs a few trials, not dozens.
    """
    x_new = x.copy()
    f_new = f.copy()
    g_new = np.zeros_like(x)
    ok = np.zeros(f.size, dtype=bool)
    pending = np.arange(f.size)
    n_eval = 0
    for _ in range(max_backtracks):
        xp = x[:, pending]
        trial = np.clip(xp + t[pending] * d[:, pending], lo, hi)
        ft, gt = evaluate(trial, rows[pending])
        n_eval += pending.size
        decrease = _dot(g[:, pending], trial - xp)  # along the projected step
        accept = np.isfinite(ft) & (decrease < 0) & (ft <= f[pending] + c1 * decrease)
        acc = pending[accept]
        x_new[:, acc], f_new[acc], g_new[:, acc] = trial[:, accept], ft[accept], gt[:, accept]
        ok[acc] = True
        keep = ~accept & (decrease < 0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            curv = ft - f[pending] - decrease  # excess over the linear model at the trial step
            shrink = np.where(np.isfinite(curv) & (curv > 0), -decrease / (2.0 * curv), 0.1)
        shrink = np.clip(shrink, 0.1, 0.5)
        t[pending[keep]] *= shrink[keep]
        pending = pending[keep]
        if pending.size == 0:
            break
    return x_new, f_new, g_new, ok, n_eval
