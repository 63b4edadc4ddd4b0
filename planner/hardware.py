"""GPU catalogue and the FLOP accounting that turns a plan into hours.

Peaks are dense bf16 TFLOP/s without sparsity (laws.md §6). FLOPs per token are fits.accounting's, under
the plan's convention (PlanRequest.flops_convention: by default 6·N with the law's N, the convention the
published sets were fitted with; "kaplan" and "palm" add attention, "palm" also the de-embedding for a
non-embedding N). MFU is taken against that count.
"""

from __future__ import annotations

import re

from planner.errors import PlanError
from planner.request import Hardware

PEAK_TFLOPS: dict[str, float] = {
    "A100": 312.0,
    "H100-SXM": 989.0,
    "H100-PCIE": 756.0,
    "H200": 989.0,
    "L40S": 362.0,
}
ALIASES = {"H100": "H100-SXM", "H100SXM": "H100-SXM", "H100PCIE": "H100-PCIE", "A100-SXM": "A100"}


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().upper())


def gpu_name(name: str) -> str:
    """The catalogue name for ``name`` (case, spaces and underscores ignored; H100 means the SXM part)."""
    key = _key(name)
    key = ALIASES.get(key, ALIASES.get(key.replace("-", ""), key))
    return key


def peak_flops(hw: Hardware) -> float:
    """Dense bf16 peak of one GPU in FLOP/s: hw.peak_tflops if given, else the catalogue's."""
    if hw.peak_tflops is not None:
        return hw.peak_tflops * 1e12
    name = gpu_name(hw.gpu)
    if name not in PEAK_TFLOPS:
        known = ", ".join(["H100", *PEAK_TFLOPS])
        raise PlanError("hardware.gpu", f"unknown GPU {hw.gpu!r}; known: {known} (or give hardware.peak_tflops)")
    return PEAK_TFLOPS[name] * 1e12


