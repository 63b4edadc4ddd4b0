"""The Huber loss of log-space residuals, the objective of Hoffmann et al. and Epoch (laws.md §2).

Residuals are r = ln(predicted) − ln(observed). With δ = 1e-3 almost every residual lies in the linear part,
so the objective behaves like a least-absolute-deviation fit that stays differentiable.
The objective is the SUM over points of Huber_δ(r) (scipy.special.huber's normalisation): Epoch's 240 points
give ≈ 1.02e-3 at the optimum.
"""

from __future__ import annotations

import numpy as np

DELTA = 1e-3


def huber(r: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """Huber_δ(r) = r²/2 for |r| ≤ δ, δ·(|r| − δ/2) beyond; elementwise."""
    c = np.clip(r, -delta, delta)
    return c * (r - 0.5 * c)
