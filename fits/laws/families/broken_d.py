"""A data term that bends (``broken-d``): L = E + A/N^α + B·(D/D_b)^−β·(1 + D/D_b)^(β − β₂).

The data exponent is β well below the break D_b and β₂ well above it (a smoothly broken power law). It is
the candidate that catches a Chinchilla fit whose data term steepens or flattens beyond the small runs: a
straight power law fitted across such a bend is confidently wrong at large D. The allocation is numeric
(LossModel's search along C = 6·N·D).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fits.fitting.linear_forms import BrokenDLinear, broken_d_loss
from fits.laws import Coefficient
from fits.laws import chinchilla as chinchilla_law
from fits.laws.base import Conventions, LawFamily, LossModel
from fits.laws.families.chinchilla import Chinchilla

_E, _A, _, _ALPHA, _ = chinchilla_law.COEFFICIENTS
COEFFICIENTS: tuple[Coefficient, ...] = (
    # E, A and alpha are the Chinchilla form's model-size side unchanged; only the data term differs.
    _E,
    _A,
    Coefficient(name="B", unit="nats/token", low=1e-6, high=1e12, description="data term at the break"),
    _ALPHA,
    Coefficient(name="beta", unit="1", low=1e-2, high=2.0, description="data exponent below the break"),
    Coefficient(name="beta2", unit="1", low=1e-2, high=2.0, description="data exponent above the break"),
    Coefficient(name="D_b", unit="tokens", low=1.0, high=1e16, description="where the data exponent bends"),
)


class BrokenDModel(LossModel):
    def __init__(self, coefficients: Mapping[str, float]) -> None:
        super().__init__(coefficients)
        self.floor = self.raw["E"]

    def loss_nd(self, N, D, unique: float | None = None):
        out = broken_d_loss(self.raw, N, D)
        return float(out) if out.ndim == 0 else out

    def converged_loss(self, N: float) -> float:
        return self.raw["E"] + self.raw["A"] / N ** self.raw["alpha"]


class BrokenD(LawFamily):
    name = "broken-d"
    coefficients = COEFFICIENTS
    conventions: Conventions = Chinchilla.conventions
    model_class = BrokenDModel
    linear_form = BrokenDLinear()
    in_refit = False

    def loss(self, coefficients: Mapping[str, float], N, D):
        return broken_d_loss(dict(coefficients), N, D)

    def exponents(self, coefficients: Mapping[str, float]) -> dict[str, float]:
        return {"alpha": coefficients["alpha"], "beta": coefficients["beta"], "beta2": coefficients["beta2"]}

    def fit(self, columns: Mapping[str, Any], *, warmup: float | None = None, batch: str = "published",
            **options: Any) -> Any:
        from fits.fitting.auto import fit_family

        return fit_family(self, columns, warmup=warmup, batch=batch, **options)


BROKEN_D = BrokenD()
