"""The accelerator a plan runs on, from the catalogue (planner.catalogue) or the request's own figures.

Peaks are dense bf16 TFLOP/s without sparsity. FLOPs per token are fits.accounting's, under the plan's convention
(PlanRequest.flops_convention: by default 6·N with the law's N, the convention the published sets were fitted
with; "kaplan" and "palm" add attention, "palm" also the de-embedding for a non-embedding N). MFU is taken against
that count; a request without one gets the catalogue's default MFU for the device (DEFAULT_MFU for a custom one).
"""

from __future__ import annotations

import msgspec

from fits import accounting
from fits.errors import BadInput
from planner import catalogue
from planner.catalogue import Accelerator
from planner.errors import NotStored, PlanError
from planner.plan import ConventionFigure
from planner.request import DEFAULT_MFU, MAX_HOURS, Hardware, PlanRequest

PEAK_TFLOPS: dict[str, float] = {name: catalogue.lookup_dense(name) for name in catalogue.canonical_names()}
"""Dense bf16 peak by catalogue name (the catalogue's names, in its order, for pickers such as the web form)."""

CUSTOM_INTRA_GBS, CUSTOM_INTER_GBS = 600.0, 25.0
"""Interconnect assumed for a custom accelerator given only by its peak (and memory)."""


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
            raise NotStored("hardware.gpu", exc.message) from None
        known = None
    try:
        if known is None:
            return catalogue.custom_accelerator(
                hw.gpu.strip(), peak_tflops=hw.peak_tflops, memory_gb=hw.memory_gb or 80.0,
                default_mfu=DEFAULT_MFU, price_per_hour=hw.price_per_gpu_hour,
                intra_node="assumed", intra_node_gbs=CUSTOM_INTRA_GBS, inter_node="assumed",
                inter_node_gbs=CUSTOM_INTER_GBS,
                sources={"bf16_tflops": "given by the user", "memory_gb": "given by the user" if hw.memory_gb
                         else "not given: assumed 80", "intra_node_gbs": "not given: assumed 600 GB/s (NVLink 3 class)",
                         "inter_node_gbs": "not given: assumed 25 GB/s (200 Gb/s)"},
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
    """``hw`` with its MFU and price filled in (the catalogue's defaults where the request left them out)."""
    acc = accelerator(hw)
    return msgspec.structs.replace(hw, mfu=hw.mfu if hw.mfu is not None else acc.default_mfu,
                                   price_per_gpu_hour=hw.price_per_gpu_hour if hw.price_per_gpu_hour is not None
                                   else acc.price_per_hour)


def conventions(params: float, n_layer: int, d_model: int, seq_len: int, vocab_size: int, convention: str,
                counts: accounting.ParamsCount, mfu: float) -> list[ConventionFigure]:
    """The plan's FLOPs per token and MFU in every convention (the same run and wall-clock, counted otherwise)."""
    base = float(accounting.law_flops_per_token(params, n_layer, d_model, seq_len, vocab_size, convention, counts))
    out = []
    for name in accounting.CONVENTIONS:
        per_token = float(accounting.law_flops_per_token(params, n_layer, d_model, seq_len, vocab_size, name, counts))
        out.append(ConventionFigure(convention=name, flops_per_token=per_token, factor=per_token / base,
                                    mfu=mfu * per_token / base, text=accounting.describe(name, counts)))
    return out


def peak_flops(hw: Hardware) -> float:
    """Dense bf16 peak of one GPU in FLOP/s: hw.peak_tflops if given, else the catalogue's."""
    return accelerator(hw).bf16_tflops * 1e12


def with_defaults(request: PlanRequest) -> PlanRequest:
    """The request with its hardware's MFU and price filled in, and a money budget turned into hours on it."""
    hw = resolved(request.hardware)
    changes: dict = {"hardware": hw}
    if request.budget_usd is not None:
        if not hw.price_per_gpu_hour:
            raise PlanError("hardware.price_per_gpu_hour",
                            f"a money budget needs a price per GPU-hour: the catalogue has none for {hw.gpu} "
                            "(give hardware.price_per_gpu_hour or set SCALEPLAN_GPU_PRICES)")
        changes["hours"] = float(request.budget_usd) / (hw.price_per_gpu_hour * hw.count)
        if changes["hours"] >= MAX_HOURS:
            raise PlanError("budget_usd", f"{request.budget_usd:g} buys {changes['hours']:.3g} hours on "
                                          f"{hw.count} GPU(s), beyond the {MAX_HOURS:g} the planner works with")
    return msgspec.structs.replace(request, **changes)
