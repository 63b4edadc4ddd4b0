"""Scaling-law families: vectorised numpy evaluation, named coefficients, published coefficient sets.

Modules:
    kaplan2020   Kaplan et al. 2020: L(N), L(D), L(C), L(N, D), L(N, S), B_crit, the compute frontier.
    chinchilla   Hoffmann et al. 2022 form L = E + A/N^alpha + B/D^beta and its closed-form allocation.
    repeated     Muennighoff et al. 2023: effective data and parameters under repeated epochs.
    hyperparams  Learning-rate and batch-size laws (DeepSeek LLM 2024, Step Law 2025, Kaplan LR(N)).
    published    The published coefficient sets as records for seeding the store.
    base         The Law protocol every family implements, and the loss-model base the planner searches.
    families     One module per family (chinchilla, kaplan) implementing it; registry maps names to them.

Every law function accepts floats or numpy arrays and returns a float for scalar input, an array otherwise.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

FloatOrArray: TypeAlias = float | np.ndarray
"""What a law function returns: a float for scalar input, an ndarray for array input."""


class Coefficient(msgspec.Struct, frozen=True, kw_only=True):
    """One named coefficient of a law family, with its unit and the physically sensible range for fitting."""

    name: str
    unit: str
    low: float
    high: float
    description: str

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


class LawDomainError(ValueError):
    """An input lies outside the domain of a law (a target loss below the asymptote, a negative size)."""


def as_array(x: npt.ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def as_result(x: npt.ArrayLike) -> FloatOrArray:
    """Unwrap 0-d results to float so scalar callers get scalars back."""
    arr = np.asarray(x, dtype=float)
    return float(arr) if arr.ndim == 0 else arr


def require_positive(name: str, x: npt.ArrayLike) -> np.ndarray:
    arr = as_array(x)
    if not np.all(arr > 0):
        raise LawDomainError(f"{name} must be > 0, got {x!r}")
    return arr


def coefficient_specs(law: str) -> tuple[Coefficient, ...]:
    """The coefficient specs of a law family, by the name stored in Fit.law (fits.laws.registry)."""
    from fits.laws.registry import get_law

    return get_law(law).coefficients


def check_coefficients(law: str, coefficients: dict[str, float]) -> list[str]:
    """Problems with a coefficient dict for a family: missing names and values outside physical bounds."""
    problems = []
    for spec in coefficient_specs(law):
        if spec.name not in coefficients:
            problems.append(f"{spec.name}: missing")
        elif not spec.contains(coefficients[spec.name]):
            problems.append(
                f"{spec.name}: {coefficients[spec.name]:g} outside [{spec.low:g}, {spec.high:g}] {spec.unit}"
            )
    return problems


__all__ = [
    "Coefficient",
    "FloatOrArray",
    "LawDomainError",
    "as_array",
    "as_result",
    "check_coefficients",
    "coefficient_specs",
    "require_positive",
]
