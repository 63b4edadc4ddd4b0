"""The stored, versioned scaling-law fit: a law family, its coefficients, and where they came from."""

from __future__ import annotations

import msgspec

from fits.result import Diagnostics, FitResult


class Provenance(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where a coefficient set came from: a published table, or the points it was fitted on."""

    source: str
    """"published" or "fitted"."""
    citation: str | None = None
    note: str | None = None
    data: str | None = None
    """Description of the data set (file name, corpus fingerprint)."""
    run_ids: list[int] = []
    """Training runs the fit was made from, when it came from the verifier or ingested runs."""
    seed: int | None = None
    bootstrap: int = 0


class Fit(msgspec.Struct, kw_only=True):
    """A law family + coefficients + uncertainty + scope + provenance; one per (law, scope) is active."""

    law: str
    """Law family: "chinchilla", "kaplan" (the full Kaplan et al. 2020 set), "kaplan-nd" or "kaplan-ns"."""
    scope: str
    """What the fit describes: data set / tokenizer / architecture family, e.g. "webtext2" or "corpus:ab12cd34"."""
    coefficients: dict[str, float]
    provenance: Provenance
    id: int | None = None
    name: str | None = None
    """Stable name for published sets ("kaplan2020", "hoffmann2022", "besiroglu2024")."""
    version: int | None = None
    intervals: dict[str, list[float]] = {}
    objective: float | None = None
    n_points: int = 0
    heldout_error: float | None = None
    diagnostics: Diagnostics = msgspec.field(default_factory=Diagnostics)
    warnings: list[str] = []
    created: str | None = None
    active: bool = False

    @classmethod
    def from_result(
        cls, result: FitResult, *, scope: str, provenance: Provenance, name: str | None = None
    ) -> Fit:
        """The record to store for a fitting call's result (not yet saved: no id or version)."""
        return cls(
            law=result.law,
            scope=scope,
            name=name,
            coefficients=result.coefficients,
            intervals=result.intervals,
            provenance=provenance,
            objective=result.objective,
            n_points=result.n_points,
            heldout_error=result.diagnostics.heldout_error,
            diagnostics=result.diagnostics,
            warnings=result.warnings,
        )


class FitRef(msgspec.Struct, kw_only=True):
    """How a plan or check names the fit it used."""

    id: int
    name: str | None
    law: str
    scope: str
    version: int | None = None

    @classmethod
    def of(cls, fit: Fit) -> FitRef:
        if fit.id is None:
            raise ValueError("fit has not been stored yet")
        return cls(id=fit.id, name=fit.name, law=fit.law, scope=fit.scope, version=fit.version)


def fit_ref(text: str) -> int | str:
    """A fit reference typed by a person: an id when it is ASCII digits ("³".isdigit() is true), else a name."""
    return int(text) if text.isascii() and text.isdigit() else text
