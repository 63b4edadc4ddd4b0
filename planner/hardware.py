"""The accelerator a plan runs on, from the catalogue (planner.catalogue) or the request's own figures.

Peaks are dense bf16 TFLOP/s without sparsity. FLOPs per token are fits.accounting's, under the plan's convention
(PlanRequest.flops_convention: by default 6·N with the law's N, the convention the published sets were fitted
with; "kaplan" and "palm" add attention, "palm" also the de-embedding for a non-embedding N). MFU is taken against
that count; a request without one gets the catalogue's default MFU for the device (DEFAULT_MFU for a custom one).
"""

from __future__ import annotations

import msgspec

from fits.errors import BadInput
from planner import catalogue
from planner.catalogue import Accelerator
from planner.errors import PlanError
from planner.request import DEFAULT_MFU, Hardware


def gpu_name(name: str) -> str:
    """The catalogue name for ``name`` (case, spaces and underscores ignored; H100 means the SXM part); the name
    itself when the catalogue does not hold it."""
    try:
        return catalogue.lookup(name).name
    except BadInput:
        return name


def accelerator(hw: Hardware) -> Accelerator:
    """The device of ``hw``: the catalogue's entry, with the request's peak, memory and price where given; a
    custom accelerator from those figures when the catalogue does not know the name."""
    try:
        known = catalogue.lookup(hw.gpu)
    except BadInput as exc:
        if hw.peak_tflops is None:
            raise PlanError("hardware.gpu", exc.message + "; or give hardware.peak_tflops") from None
        known = None
    try:
        if known is None:
            return catalogue.custom_accelerator(
                hw.gpu.strip(), peak_tflops=hw.peak_tflops, memory_gb=hw.memory_gb or 80.0,
                default_mfu=DEFAULT_MFU, price_per_hour=hw.price_per_gpu_hour,
                sources={"bf16_tflops": "given by the user", "memory_gb": "given by the user" if hw.memory_gb
                         else "not given: assumed 80"},
            )
        changes: dict = {}
        if hw.peak_tflops is not None:
            changes["bf16_tflops"] = hw.peak_tflops
        if hw.memory_gb is not None:
            changes["memory_gb"] = hw.memory_gb
        if hw.price_per_gpu_hour is not None:
            changes["price_per_hour"] = hw.price_per_gpu_hour
        if not changes:
            return known
        sources = {**known.sources, **{k: "given by the user" for k in changes}}
        return Accelerator(**{**known.to_dict(), "aliases": known.aliases, **changes, "sources": sources})
    except BadInput as exc:
        raise PlanError(exc.field or "hardware", exc.message) from None


def mfu_of(hw: Hardware) -> float:
    """The request's MFU, else the device's default."""
    return hw.mfu if hw.mfu is not None else accelerator(hw).default_mfu


def resolved(hw: Hardware) -> Hardware:
    """``hw`` with its MFU filled in (the catalogue's default when the request left it out)."""
    return hw if hw.mfu is not None else msgspec.structs.replace(hw, mfu=mfu_of(hw))


def peak_flops(hw: Hardware) -> float:
    """Dense bf16 peak of one GPU in FLOP/s: hw.peak_tflops if given, else the catalogue's."""
    return accelerator(hw).bf16_tflops * 1e12
