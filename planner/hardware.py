"""GPU catalogue and the FLOP accounting that turns a plan into hours.

Peaks are dense bf16 TFLOP/s without sparsity (laws.md §6). The law counts 6·N FLOPs per training token;
hardware also does the de-embedding matmul (6·d_model·vocab per token, forward + backward) and the attention
score/mix work (6·n_layer·seq_len·d_model per token, Kaplan Table 1 with d_attn = d_model), which matter
for small models and long contexts. MFU is taken against that full count.
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


def train_flops_per_token(params: float, d_model: float, n_layer: float, seq_len: int, vocab_size: int) -> float:
    """Training FLOPs per token: 6·N + 6·d_model·vocab (de-embedding) + 6·n_layer·seq_len·d_model (attention)."""
    return 6.0 * params + 6.0 * d_model * vocab_size + 6.0 * n_layer * seq_len * d_model
