"""Fitting scaling-law families to measured points.

Library first: ``fit_chinchilla``, ``fit_kaplan_nd`` and ``fit_kaplan_ns`` take arrays and return a
fits.result.FitResult; ``fit(law, columns)`` dispatches on the family name (what the CLI and the refit job
use). Every fit minimises the summed Huber loss of log-space residuals (laws.md §2) from a grid of starts,
batched, and carries diagnostics; ``bootstrap=K`` adds percentile intervals.

Modules: lbfgs (batched optimiser), form (objective plumbing), chinchilla_fit / kaplan_fit (the families),
multistart (grid → distinct minima → polish), robust (choice among near-equal minima), diagnostics,
bootstrap, engine (one call, start to finish).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fits.errors import BadInput
from fits.fitting.bootstrap import Progress
from fits.fitting.chinchilla_fit import ChinchillaForm, chinchilla_points, fit_chinchilla
from fits.fitting.engine import METHODS, InsufficientData, fit_form
from fits.fitting.form import Form, Points
from fits.fitting.kaplan_fit import (
    BATCH_MODES,
    KaplanNDForm,
    KaplanNSForm,
    fit_kaplan_nd,
    fit_kaplan_ns,
    nd_points,
    ns_points,
)
from fits.result import FitResult

FITTABLE_LAWS = ("chinchilla", "kaplan-nd", "kaplan-ns")
"""Families that can be fitted to points (the full "kaplan" set is published-only)."""
COLUMNS: dict[str, tuple[str, ...]] = {
    "chinchilla": ("N", "D", "loss"),
    "kaplan-nd": ("N", "D", "loss"),
    "kaplan-ns": ("N", "B", "step", "loss"),
}
"""Required input columns per family; kaplan-ns also reads an optional ``warmup`` column (steps), and every
family an optional ``group`` column (the run each point comes from: the bootstrap then resamples runs)."""


def _numeric(columns: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], Any]:
    """The numeric columns as float arrays, and the ``group`` labels (None when absent)."""
    return {k: np.asarray(v, dtype=float) for k, v in columns.items() if k != "group"}, columns.get("group")


def points_for(
    law: str, columns: Mapping[str, Any], warmup: float | None = None, *, batch: Mapping[str, float] | None = None
) -> tuple[Form, Points]:
    """The fitting form and points for a family from named columns (see COLUMNS); for kaplan-ns, ``batch``
    gives the B_star and alpha_B that convert steps to S_min (default: Kaplan's)."""
    if law not in COLUMNS:
        raise BadInput(f"unknown or not fittable {law!r}; expected one of {', '.join(FITTABLE_LAWS)}", field="law")
    cols, group = _numeric(columns)
    if law == "chinchilla":
        points = chinchilla_points(cols["N"], cols["D"], cols["loss"], group)
        return ChinchillaForm.for_points(points), points
    if law == "kaplan-nd":
        return KaplanNDForm(), nd_points(cols["N"], cols["D"], cols["loss"], group)
    steps = cols.get("warmup") if warmup is None else warmup
    return KaplanNSForm(), ns_points(cols["N"], cols["B"], cols["step"], cols["loss"], steps,
                                     batch=dict(batch) if batch else None, group=group)


def fit(
    law: str, columns: Mapping[str, Any], *, warmup: float | None = None, batch: str = "published", **options: Any
) -> FitResult:
    """Fit family ``law`` to named columns; options as for fit_chinchilla (method, bootstrap, seed, predict,
    budgets, progress). For kaplan-ns, ``warmup`` (steps) overrides a ``warmup`` column and ``batch``
    ("published" or "fitted") says where eq 5.4's B_star and alpha_B come from (see fit_kaplan_ns)."""
    if law == "kaplan-ns":
        cols, group = _numeric(columns)
        steps = cols.get("warmup") if warmup is None else warmup
        return fit_kaplan_ns(cols["N"], cols["B"], cols["step"], cols["loss"], warmup=steps, batch=batch,
                             group=group, **options)
    if batch != "published":
        raise BadInput("applies to kaplan-ns only", field="batch")
    form, points = points_for(law, columns, warmup)
    if "bootstrap" in options:
        options["bootstrap_resamples"] = options.pop("bootstrap")
    return fit_form(form, points, **options)


__all__ = [
    "BATCH_MODES",
    "COLUMNS",
    "FITTABLE_LAWS",
    "METHODS",
    "FitResult",
    "InsufficientData",
    "Progress",
    "fit",
    "fit_chinchilla",
    "fit_kaplan_nd",
    "fit_kaplan_ns",
    "points_for",
]
