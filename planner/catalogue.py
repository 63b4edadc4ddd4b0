"""The accelerator catalogue: dense peaks, memory, bandwidth, interconnect, a default MFU and price per device.

The figures live in planner/data/accelerators.json with the vendor source of each. Peaks are dense tensor-core
rates: datasheets print the 2:4-sparse figure (twice the dense one) first, and taking it for the dense peak is
the usual reason trackers report MFU above 100%; ``Accelerator`` refuses a peak that equals the sparse one.

Prices are indicative defaults. A deployment overrides them with ``SCALEPLAN_GPU_PRICES``: either
``"H100=2.1,B200=4.5"`` or the path of a JSON file ``{"H100-SXM": 2.1, ...}`` (names as ``gpu_name`` reads
them). A custom accelerator is an ``Accelerator`` built from its figures (``custom_accelerator``); the plan
request's ``hardware.peak_tflops`` (and ``hardware.memory_gb``) make one on the fly.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from fits.errors import BadInput

PRICES_ENV = "SCALEPLAN_GPU_PRICES"


@dataclass(frozen=True)
class Accelerator:
    """One device's figures (units in the field names); ``sources`` says where each came from."""

    name: str
    bf16_tflops: float
    """Dense bf16 tensor-core peak (no sparsity)."""
    memory_gb: float
    fp8_tflops: float | None = None
    """Dense fp8 peak; None where the device has no fp8 tensor cores."""
    sparse_bf16_tflops: float | None = None
    """The datasheet's 'with sparsity' bf16 figure, kept to recognise it; never used for time."""
    memory_bandwidth_gbs: float | None = None
    intra_node: str = ""
    intra_node_gbs: float = 0.0
    """Bidirectional aggregate per device inside the scale-up domain (vendor's figure)."""
    node_size: int = 8
    """Devices in one scale-up domain (NVLink node, NVL72 rack, TPU pod)."""
    inter_node: str = ""
    inter_node_gbs: float = 0.0
    """Scale-out bandwidth per device, one direction."""
    default_mfu: float = 0.4
    price_per_hour: float | None = None
    vendor: str = ""
    aliases: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_figures(self)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["aliases"] = list(self.aliases)
        return out


_POSITIVE = ("bf16_tflops", "memory_gb")
_OPTIONAL_POSITIVE = ("fp8_tflops", "sparse_bf16_tflops", "memory_bandwidth_gbs")
_NON_NEGATIVE = ("intra_node_gbs", "inter_node_gbs")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_figures(acc: Accelerator, prefix: str = "hardware.") -> None:
    """Refuse a figure that cannot be a device's: BadInput naming the field (``hardware.<field>``)."""
    for name in _POSITIVE:
        value = getattr(acc, name)
        if not _finite(value) or value <= 0:
            raise BadInput(f"must be a positive number, got {value!r} (accelerator {acc.name!r})",
                           field=prefix + ("peak_tflops" if name == "bf16_tflops" else name))
    for name in _OPTIONAL_POSITIVE:
        value = getattr(acc, name)
        if value is not None and (not _finite(value) or value <= 0):
            raise BadInput(f"must be a positive number or absent, got {value!r} (accelerator {acc.name!r})",
                           field=prefix + name)
    for name in _NON_NEGATIVE:
        value = getattr(acc, name)
        if not _finite(value) or value < 0:
            raise BadInput(f"must be ≥ 0, got {value!r} (accelerator {acc.name!r})", field=prefix + name)
    if not isinstance(acc.node_size, int) or isinstance(acc.node_size, bool) or acc.node_size < 1:
        raise BadInput(f"must be a whole number ≥ 1, got {acc.node_size!r}", field=prefix + "node_size")
    if not _finite(acc.default_mfu) or not 0 < acc.default_mfu <= 1:
        raise BadInput(f"is a fraction in (0, 1], got {acc.default_mfu!r}", field=prefix + "mfu")
    if acc.price_per_hour is not None and (not _finite(acc.price_per_hour) or acc.price_per_hour < 0):
        raise BadInput(f"must be ≥ 0, got {acc.price_per_hour!r}", field=prefix + "price_per_gpu_hour")
    if acc.sparse_bf16_tflops is not None and acc.bf16_tflops >= acc.sparse_bf16_tflops * (1 - 1e-9):
        raise BadInput(
            f"{acc.bf16_tflops:g} TFLOP/s for {acc.name} is the 2:4-sparse figure; the dense bf16 peak is "
            f"{acc.sparse_bf16_tflops / 2:g} (datasheets print the sparse one first)",
            field=prefix + "peak_tflops",
        )


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().upper())


@cache
def _loaded() -> tuple[Accelerator, ...]:
    raw = json.loads(resources.files("planner").joinpath("data/accelerators.json").read_text("utf-8"))
    return tuple(Accelerator(**{**row, "aliases": tuple(row.get("aliases", ()))}) for row in raw["accelerators"])


@cache
def _index() -> dict[str, Accelerator]:
    out: dict[str, Accelerator] = {}
    for acc in _loaded():
        for name in (acc.name, *acc.aliases):
            out[_key(name)] = acc
            out[_key(name).replace("-", "")] = acc
    return out


def price_overrides() -> dict[str, float]:
    """Prices from ``SCALEPLAN_GPU_PRICES`` (``NAME=PRICE,...`` or a JSON file), by catalogue name."""
    text = os.environ.get(PRICES_ENV, "").strip()
    if not text:
        return {}
    if "=" in text:
        pairs: dict[str, object] = {}
        for item in text.split(","):
            if not item.strip():
                continue
            name, _, value = item.partition("=")
            try:
                pairs[name] = float(value)
            except ValueError:
                raise BadInput(f"{item.strip()!r} is not NAME=PRICE", field=PRICES_ENV) from None
    else:
        try:
            with open(text, encoding="utf-8") as fh:
                pairs = json.load(fh)
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot read prices from {text!r}: {exc}", field=PRICES_ENV) from None
        if not isinstance(pairs, dict):
            raise BadInput(f"{text!r} must hold an object of name: price", field=PRICES_ENV)
    out = {}
    for name, value in pairs.items():
        if not _finite(value) or value < 0:  # type: ignore[arg-type]
            raise BadInput(f"price of {name!r} must be a number ≥ 0, got {value!r}", field=PRICES_ENV)
        out[_find(str(name), PRICES_ENV).name] = float(value)  # type: ignore[arg-type]
    return out


def catalogue() -> list[Accelerator]:
    """Every catalogue accelerator, with the deployment's price overrides applied."""
    prices = price_overrides()
    out = []
    for acc in _loaded():
        if acc.name in prices:
            src = {**acc.sources, "price_per_hour": f"deployment setting {PRICES_ENV}"}
            acc = Accelerator(**{**acc.to_dict(), "aliases": acc.aliases, "price_per_hour": prices[acc.name],
                                 "sources": src})
        out.append(acc)
    return out


SHORT_NAMES = {"H100": "H100-SXM", "A100": "A100-80GB"}
"""The names people type most, listed first in messages."""


def names() -> list[str]:
    """Short names first (H100 is the SXM part, A100 the 80 GB one), then every catalogue name."""
    return [*SHORT_NAMES, *(acc.name for acc in _loaded() if acc.name not in SHORT_NAMES.values())]


def canonical_names() -> list[str]:
    """The catalogue's names in its order (no environment read)."""
    return [acc.name for acc in _loaded()]


def lookup_dense(name: str) -> float:
    """The dense bf16 peak of a catalogue name (no environment read)."""
    return _find(name, "hardware.gpu").bf16_tflops


def _find(name: str, field: str) -> Accelerator:
    if not isinstance(name, str) or not name.strip():
        raise BadInput("must name an accelerator, e.g. H100", field=field)
    index = _index()
    acc = index.get(_key(name)) or index.get(_key(name).replace("-", ""))
    if acc is None:
        raise BadInput(f"unknown accelerator {name!r}; known: {', '.join(names())} (or give its figures: "
                       "peak_tflops and memory_gb)", field=field)
    return acc


def lookup(name: str, *, field: str = "hardware.gpu") -> Accelerator:
    """The catalogue entry for ``name`` (case, spaces, dashes and underscores ignored; H100 is the SXM part),
    with the deployment's price."""
    acc = _find(name, field)
    prices = price_overrides()
    if acc.name in prices:
        acc = next(a for a in catalogue() if a.name == acc.name)
    return acc


def custom_accelerator(name: str, *, peak_tflops: float, memory_gb: float, **figures: Any) -> Accelerator:
    """An accelerator from its own figures (BadInput naming ``hardware.<field>`` for one that cannot be)."""
    figures.setdefault("sources", {"bf16_tflops": "given by the user", "memory_gb": "given by the user"})
    return Accelerator(name=name, bf16_tflops=peak_tflops, memory_gb=memory_gb, **figures)
