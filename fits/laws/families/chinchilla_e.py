"""Chinchilla form with E fixed beforehand (``chinchilla-e``): L = E₀ + A/N^α + B/D^β.

E₀ comes from the compute frontier alone (fits.fitting.linear_forms.asymptote) before A, B, α, β are fitted.
When the points span little compute, E trades against both scales along a nearly flat valley; fixing it from
a separate, simpler estimate is the usual remedy. The loss, allocation and plans are the Chinchilla family's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fits.fitting.linear_forms import ChinchillaFixedE
from fits.laws.families.chinchilla import Chinchilla


class ChinchillaE(Chinchilla):
    name = "chinchilla-e"
    published_ranges: Mapping[str, tuple[float, float]] = {}
    linear_form = ChinchillaFixedE()
    in_refit = False

    def form(self, points: Any) -> Any:
        from fits.errors import BadInput

        raise BadInput(f"{self.name} is fitted by variable projection only (fit_auto)", field="law")

    def fit(self, columns: Mapping[str, Any], *, warmup: float | None = None, batch: str = "published",
            **options: Any) -> Any:
        from fits.fitting.auto import fit_family

        return fit_family(self, columns, warmup=warmup, batch=batch, **options)


CHINCHILLA_E = ChinchillaE()
