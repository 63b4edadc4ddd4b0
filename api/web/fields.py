"""Every field of a record as labelled rows in human units, walked from the struct itself.

A field named in ``LABELS`` gets its label and unit; any other field is still shown, labelled from its name
and formatted by its name's suffix (``_flops``, ``_hours``, ``_bytes``, ``tokens`` …). A new Plan field (or a
new nested struct, such as a memory estimate) therefore appears on the page without a change here, and a
better label for it is one line in ``LABELS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from api.web import units

LABELS: dict[str, tuple[str, str]] = {
    "budget_flops": ("Budget", "flops"),
    "compute_flops": ("Training compute (the law's C)", "flops"),
    "params": ("Parameters N (as the law counts them)", "params"),
    "params_total": ("Total parameters", "params"),
    "params_non_embedding": ("Non-embedding parameters", "params"),
    "params_counted": ("The law's N counts", "text"),
    "flops_convention": ("FLOP convention", "text"),
    "tokens": ("Training tokens D", "tokens"),
    "tokens_per_param": ("Tokens per parameter", "number"),
    "epochs": ("Epochs over the unique data", "number"),
    "batch_tokens": ("Batch", "tokens"),
    "batch_sequences": ("Batch in sequences", "int"),
    "seq_len": ("Sequence length", "int"),
    "vocab_size": ("Vocabulary", "int"),
    "steps": ("Optimizer steps", "int"),
    "warmup_steps": ("Warm-up steps", "int"),
    "learning_rate": ("Peak learning rate", "number"),
    "lr_schedule": ("Learning-rate schedule", "text"),
    "final_lr_fraction": ("Final learning rate (of peak)", "percent"),
    "c_min_flops": ("Least compute for this loss (B ≪ B_crit)", "flops"),
    "critical_batch_tokens": ("Critical batch", "tokens"),
    "early_stop_step": ("Early-stopping step (lower bound)", "int"),
    "extra_compute": ("Extra compute beyond the efficient batch", "percent"),
    "inference_flops": ("Inference compute", "flops"),
    "binding": ("Constraints that bind", "text"),
    "time.gpu": ("Accelerator", "text"),
    "time.gpus": ("Accelerators used", "int"),
    "time.mfu": ("MFU", "percent"),
    "time.peak_tflops": ("Peak per accelerator (TFLOP/s, dense bf16)", "number"),
    "time.flops_per_token": ("Training FLOPs per token", "number"),
    "time.hardware_flops": ("Hardware FLOPs", "flops"),
    "time.gpu_hours": ("Accelerator-hours", "hours"),
    "time.wall_clock_hours": ("Wall clock", "hours"),
    "time.cost": ("Cost", "dollars"),
    "shape.n_layer": ("Layers", "int"),
    "shape.d_model": ("Model width d_model", "int"),
    "shape.n_head": ("Attention heads", "int"),
    "shape.d_ff": ("Feed-forward width", "int"),
    "shape.head_dim": ("Head dimension", "int"),
    "shape.params": ("12·n_layer·d_model²", "params"),
    "shape.params_error": ("Shape's count off the plan's N by", "percent"),
    "shape.aspect_ratio": ("Aspect ratio d_model / n_layer", "number"),
    "shape.params_non_embedding": ("Non-embedding parameters of the shape", "params"),
    "shape.params_total": ("Total parameters of the shape", "params"),
}

SECTION_TITLES = {"time": "Hardware time and cost", "shape": "Model shape"}

_SUFFIX_KINDS = (("_flops", "flops"), ("flops", "flops"), ("_hours", "hours"), ("hours", "hours"),
                 ("_bytes", "bytes"), ("_gib", "number"), ("tokens", "tokens"), ("params", "params"),
                 ("cost", "dollars"), ("_usd", "dollars"), ("_fraction", "percent"), ("mfu", "percent"),
                 ("steps", "int"), ("count", "int"))


@dataclass
class Row:
    name: str
    label: str
    text: str
    raw: str


@dataclass
class Section:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)


def _kind(path: str, value: Any) -> tuple[str, str]:
    if path in LABELS:
        return LABELS[path]
    leaf = path.rsplit(".", 1)[-1]
    label = leaf.replace("_", " ").capitalize()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return label, "text"
    kind = next((k for suffix, k in _SUFFIX_KINDS if leaf.endswith(suffix)), "number")
    return label, kind


def bytes_(x: float) -> str:
    return f"{x / 2**30:.3g} GiB"


def format_value(kind: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if kind == "bytes":
        return bytes_(float(value))
    if kind == "text" or isinstance(value, bool | str):
        return str(value)
    return units.FORMATS.get(kind, units.sig)(value)


def _raw(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return msgspec.json.encode(value).decode()
    return "" if value is None else str(value)


def rows_of(obj: msgspec.Struct, prefix: str = "", skip: frozenset[str] = frozenset()) -> tuple[list[Row],
                                                                                              list[Section]]:
    """Scalar fields of ``obj`` as rows, and each nested struct as its own section (recursively flattened)."""
    rows: list[Row] = []
    sections: list[Section] = []
    for name in obj.__struct_fields__:
        if name in skip:
            continue
        value = getattr(obj, name)
        path = f"{prefix}{name}"
        if isinstance(value, msgspec.Struct):
            inner, nested = rows_of(value, f"{path}.")
            sections.append(Section(path, SECTION_TITLES.get(path, path.replace("_", " ").capitalize()), inner))
            for sub in nested:
                sections.append(sub)
            continue
        if isinstance(value, list) and value and isinstance(value[0], msgspec.Struct):
            continue  # lists of records get their own tables (alternatives)
        label, kind = _kind(path, value)
        rows.append(Row(path, label, format_value(kind, value), _raw(value)))
    return rows, sections


PLAN_SPECIAL = frozenset({"id", "created", "fit", "request", "predicted_loss", "alternatives", "warnings",
                          "assumptions"})
"""Plan fields the page shows in their own places (headline, links, lists) rather than in the field table."""


def request_rows(request: msgspec.Struct) -> list[Row]:
    """The request as it was stored: only the fields that were given."""
    data = msgspec.to_builtins(request)
    rows = []
    for name, value in data.items():
        if isinstance(value, dict):
            for key, inner in value.items():
                rows.append(Row(f"request.{name}.{key}", f"{name}.{key}", str(inner), _raw(inner)))
        else:
            rows.append(Row(f"request.{name}", name, units.sig(value) if isinstance(value, float) else str(value),
                            _raw(value)))
    return rows
