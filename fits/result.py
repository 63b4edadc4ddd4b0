"""The outcome of one fitting call, modelled on scipy.optimize.OptimizeResult: everything needed to judge it."""

from __future__ import annotations

from typing import Any

import msgspec


class Excluded(msgspec.Struct, kw_only=True):
    """One point left out of a fit: its data row (1 = the first row below the header), values and why."""

    row: int
    N: float
    D: float
    loss: float
    residual: float
    """ln predicted − ln observed, from the fit without it."""
    reason: str


class Predictive(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a stored fit needs to give predictive intervals later (fits.fitting.auto.predict_from_fit)."""

    noise: float
    """Standard deviation of one run's ln loss about the law."""
    noise_quantiles: list[float] = []
    """|residual| quantiles at fits.fitting.auto.NOISE_LEVELS: the noise term's tails."""
    calibration: float = 1.0
    """Factor on the draws' spread that the rolling-origin backtest measured."""
    misspecification: float = 0.0
    """Extra standard deviation of ln L when the backtest flagged misspecification."""
    draws: list[dict[str, float]] = []
    """Bootstrap coefficient sets (over runs)."""
    alternatives: list[dict[str, Any]] = []
    """Competitive forms: {"law": name, "coefficients": {...}, "weight": w}; their spread, weighted by w
    against the chosen form's 1, joins the interval (stored without a weight: 1)."""


class Diagnostics(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How well a fit describes its points and how far it can be trusted beyond them."""

    residual_rms: float | None = None
    """Root mean square of log-space residuals ln(predicted) - ln(observed)."""
    residual_max: float | None = None
    """Largest absolute log-space residual."""
    residual_mean: float | None = None
    heldout_error: float | None = None
    """Mean absolute relative error on the held-out largest-compute points, fitting on the rest."""
    heldout_points: int | None = None
    compute_range: list[float] | None = None
    """[min, max] training FLOPs (6·N·D) of the points fitted on."""
    data_ranges: dict[str, list[float]] = {}
    """[min, max] of the points fitted on, by quantity: "N", and for families on (N, D) also "D" and
    "tokens_per_param" (D/N); the planner warns when a plan leaves them."""
    degenerate: bool = False
    at_bounds: list[str] = []
    predictive: Predictive | None = None


class FitResult(msgspec.Struct, kw_only=True):
    """Result of fitting one law family to a set of points."""

    law: str
    coefficients: dict[str, float]
    objective: float
    n_points: int
    starts: int
    seconds: float
    converged: bool
    warnings: list[str] = []
    intervals: dict[str, list[float]] = {}
    """Coefficient name -> [low, high] percentile interval (empty unless bootstrapped)."""
    derived: dict[str, float] = {}
    """Derived quantity (a predicted loss, N_opt at a budget) -> value at the fitted coefficients."""
    derived_intervals: dict[str, list[float]] = {}
    """Derived quantity (a predicted loss, N_opt at a budget) -> [low, high]."""
    bootstrap: int = 0
    seed: int | None = None
    iterations: int | None = None
    message: str = ""
    diagnostics: Diagnostics = msgspec.field(default_factory=Diagnostics)
    excluded: list[Excluded] = []
    """Points left out as outliers (fits.fitting.outliers): their data rows and why; empty when all were kept."""
