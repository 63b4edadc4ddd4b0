"""Points inconsistent with the rest: found by a robust residual scale, excluded, and named.

A scaling-law data set read off a figure or gathered from many runs has a few points that no smooth law
through the rest can meet (a mis-read marker, a diverged run). Taken at face value they drag the exponents:
on Epoch's 245 rows one point is 0.26 off in log space and moves β from 0.37 to 0.45. The rule: fit, measure
the residual scale robustly (1.4826 × the median absolute deviation, which the outliers themselves barely
move), flag points beyond ``SIGMAS`` of it (and beyond ``FLOOR`` in absolute terms, so a near-perfect fit
does not flag ordinary noise), drop the worst of them, refit, and repeat until none is flagged. At most
``MAX_SHARE`` of the points are ever excluded: more than that is not an outlier problem but a wrong law.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from fits.result import Excluded

SIGMAS = 12.0
"""Flag |r − median| above this many robust standard deviations: only gross errors. Points at 6–12 of them are
mostly real (the earliest, highest-loss runs a smooth law bends away from); dropping them would hide the
misspecification the backtest is there to see."""
FLOOR = 0.02
"""... and above 2% in log space: below that a point is within the scatter of repeated runs."""
MAX_SHARE = 0.05
ROUNDS = 4

T = TypeVar("T")


@dataclass
class Screened:
    keep: np.ndarray
    """Boolean mask of the points fitted."""
    excluded: list[Excluded]


def robust_scale(r: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def screen(
    fit: Callable[[np.ndarray], T],
    residuals: Callable[[T], np.ndarray],
    N: np.ndarray,
    D: np.ndarray,
    L: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    sigmas: float = SIGMAS,
    floor: float = FLOOR,
    max_share: float = MAX_SHARE,
) -> tuple[T, Screened]:
    """Fit with outlier exclusion. ``fit(mask)`` fits the masked points; ``residuals(result)`` gives the
    log-space residuals of that result at every point (masked or not). Returns the last fit and what it
    left out; ``rows`` numbers the points for the report (default 1, 2, …)."""
    n = L.size
    rows = np.arange(1, n + 1) if rows is None else rows
    keep = np.ones(n, dtype=bool)
    budget = int(max_share * n)
    result = fit(keep)
    flagged: dict[int, float] = {}
    for _ in range(ROUNDS):
        r = residuals(result)
        centre = float(np.median(r[keep]))
        scale = robust_scale(r[keep])
        limit = max(sigmas * scale, floor)
        dev = np.abs(r - centre)
        candidates = [int(i) for i in np.argsort(-dev) if keep[i] and dev[i] > limit]
        room = budget - int((~keep).sum())
        if not candidates or room <= 0:
            break
        # Drop the worst few per round: one gross outlier inflates the others' residuals until it is gone.
        step = candidates[: max(1, min(room, (len(candidates) + 1) // 2))]
        for i in step:
            keep[i] = False
            flagged[i] = float(r[i])
        result = fit(keep)
    r = residuals(result)
    scale = robust_scale(r[keep])
    excluded = [
        Excluded(row=int(rows[i]), N=float(N[i]), D=float(D[i]), loss=float(L[i]), residual=float(r[i]),
                 reason=f"residual {r[i]:+.3f} in log space is {abs(r[i] - np.median(r[keep])) / max(scale, 1e-12):.0f}"
                 f" robust standard deviations ({scale:.4f}) from the rest")
        for i in sorted(flagged)
    ]
    return result, Screened(keep=keep, excluded=excluded)
