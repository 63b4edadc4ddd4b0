"""Law names (as stored in Fit.law) -> families. The one place that knows which families exist.

Adding a family: write its module (a fits.laws.base.LawFamily subclass, or anything meeting the Law
protocol) and add one ``register_law`` line below. Registration order is the order in which a scope's
families are preferred when a request names only the scope.
"""

from __future__ import annotations

from fits.errors import BadInput
from fits.laws.base import Law
from fits.laws.families.broken_d import BROKEN_D
from fits.laws.families.chinchilla import CHINCHILLA
from fits.laws.families.chinchilla_e import CHINCHILLA_E
from fits.laws.families.kaplan import KAPLAN, KAPLAN_ND, KAPLAN_NS
from fits.laws.families.moe import KRAJEWSKI_MOE

_LAWS: dict[str, Law] = {}


def register_law(law: Law) -> Law:
    """Make ``law`` available under ``law.name``; BadInput if that name is taken by another family."""
    if not isinstance(law, Law):
        raise TypeError(f"law: {law!r} does not implement the Law protocol")
    existing = _LAWS.get(law.name)
    if existing is not None and existing is not law:
        raise BadInput(f"{law.name!r} is already registered", field="law")
    _LAWS[law.name] = law
    return law


def unregister_law(name: str) -> None:
    """Remove a family (tests that register their own)."""
    _LAWS.pop(name, None)


def get_law(name: str) -> Law:
    """The family stored under ``name``; BadInput naming the known ones otherwise."""
    try:
        return _LAWS[name]
    except (KeyError, TypeError):
        raise BadInput(f"unknown family {name!r}; expected one of {', '.join(_LAWS)}", field="law") from None


def law_names() -> tuple[str, ...]:
    """Every registered family, in preference order."""
    return tuple(_LAWS)


def fittable_law_names() -> tuple[str, ...]:
    """Families that can be fitted to points (published-only sets such as the full "kaplan" cannot)."""
    return tuple(name for name, law in _LAWS.items() if law.fit_columns)


def laws_with_option(option: str) -> tuple[str, ...]:
    """Families whose fit takes a family-specific option ("warmup", "batch")."""
    return tuple(name for name, law in _LAWS.items() if option in law.fit_options)


register_law(CHINCHILLA)
register_law(KAPLAN_ND)
register_law(KAPLAN_NS)
register_law(KAPLAN)
register_law(KRAJEWSKI_MOE)
register_law(CHINCHILLA_E)
register_law(BROKEN_D)
