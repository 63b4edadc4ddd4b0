"""Numbers in the units people plan with: B parameters, T tokens, FLOPs with PF-days, hours, dollars."""

from __future__ import annotations

import math

from fits.units import PF_DAY

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def sig(x: float | None, digits: int = 3) -> str:
    """``x`` to ``digits`` significant figures, in plain or scientific notation as fits its size."""
    if x is None:
        return "—"
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    if 1e-3 <= abs(x) < 1e6:
        return f"{x:.{digits}g}"
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def count(x: float | None, unit: str = "") -> str:
    """A count with an SI-style suffix: 2.78 B, 59.9 B, 1.25 T (K, M, B, T; beyond T in T)."""
    if x is None:
        return "—"
    tail = f" {unit}" if unit else ""
    for scale, suffix in _SUFFIXES:
        if abs(x) >= scale:
            value = x / scale
            text = f"{value:.3g}" if abs(value) < 1e3 else f"{value:,.0f}"
            return f"{text} {suffix}{tail}"
    return f"{x:.3g}{tail}"


def params(x: float | None) -> str:
    return count(x, "params")


def tokens(x: float | None) -> str:
    return count(x, "tokens")


def flops(x: float | None) -> str:
    """FLOPs in scientific notation with the same budget in PF-days (8.64e19 FLOPs)."""
    if x is None:
        return "—"
    return f"{sig(x)} FLOPs ({sig(x / PF_DAY)} PF-days)"


def hours(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 48:
        return f"{sig(x)} h ({sig(x / 24)} days)"
    return f"{sig(x)} h"


def dollars(x: float | None) -> str:
    if x is None:
        return "—"
    if abs(x) >= 1e6:
        return f"${x / 1e6:.3g} M"
    return f"${x:,.0f}" if abs(x) >= 100 else f"${x:.2f}"


def percent(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.3g}%"


def integer(x: float | None) -> str:
    return "—" if x is None else f"{int(x):,}"


def loss(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


FORMATS = {
    "params": params,
    "tokens": tokens,
    "flops": flops,
    "hours": hours,
    "dollars": dollars,
    "percent": percent,
    "int": integer,
    "loss": loss,
    "number": sig,
}
"""Formatters by the unit kind a plan field is labelled with (api.web.fields)."""
