"""The plan form: its fields, the JSON request it stands for, and the API's problem placed at the field it names.

The form posts the same field names as ``POST /v1/plans`` (``hardware.count`` for the nested object); the
values are turned into that JSON body and decoded by the API's own strict decoder, and the plan is made by the
API's own code, so a bad value gets exactly the problem detail the JSON API would send.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from api.schemas import Problem
from fits.fit import fit_ref

BUDGET_KINDS = {
    "compute_flops": "FLOPs",
    "pf_days": "PF-days",
    "hours": "Accelerators × hours",
    "target_loss": "Target loss (least compute)",
}
"""Budget choices: the value is the request field that carries the number."""

NUMBER_FIELDS = ("compute_flops", "pf_days", "hours", "target_loss", "max_params", "unique_tokens", "max_epochs",
                 "deadline_hours", "inference_tokens", "seq_len", "vocab_size")
HARDWARE_FIELDS = ("count", "mfu", "price_per_gpu_hour")
TEXT_FIELDS = ("fit",)
ALL_FIELDS = (*NUMBER_FIELDS, *(f"hardware.{f}" for f in ("gpu", *HARDWARE_FIELDS)), *TEXT_FIELDS, "budget")

_INT = re.compile(r"^[+-]?\d+$")


def _number(text: str) -> Any:
    """A typed number when the text is one ("1e21", "4096"); otherwise the text itself, for the decoder to refuse
    with the API's message."""
    text = text.strip().replace("_", "").replace(",", "")
    if _INT.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


@dataclass
class PlanForm:
    values: dict[str, str] = field(default_factory=dict)
    """What the person typed, by input name, to fill the form again."""

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> PlanForm:
        values = {}
        for name in ALL_FIELDS:
            raw = data.get(name)
            if isinstance(raw, list):
                raw = raw[0] if raw else None
            if raw is not None and str(raw).strip():
                values[name] = str(raw).strip()
        return cls(values)

    @property
    def budget(self) -> str:
        kind = self.values.get("budget", "compute_flops")
        return kind if kind in BUDGET_KINDS else "compute_flops"

    def body(self) -> dict[str, Any]:
        """The ``POST /v1/plans`` body this form stands for: only the chosen budget, the given constraints."""
        body: dict[str, Any] = {}
        budget = self.budget
        for name in NUMBER_FIELDS:
            if name in BUDGET_KINDS and name != budget:
                continue
            if name in self.values:
                body[name] = _number(self.values[name])
        gpu = self.values.get("hardware.gpu")
        if gpu:
            hardware: dict[str, Any] = {"gpu": gpu}
            for name in HARDWARE_FIELDS:
                if f"hardware.{name}" in self.values:
                    hardware[name] = _number(self.values[f"hardware.{name}"])
            body["hardware"] = hardware
        fit = self.values.get("fit")
        if fit:
            body["fit"] = fit_ref(fit)
        return body

    def encoded(self) -> bytes:
        return msgspec.json.encode(self.body())


def field_errors(problem: Problem) -> tuple[dict[str, str], list[str]]:
    """(message by form input name, messages no input matches): a problem naming ``hardware`` lands on the
    accelerator input, one naming ``$`` or nothing goes above the form."""
    at: dict[str, str] = {}
    loose: list[str] = []
    errors = [(e.field, e.message) for e in problem.errors] or [(problem.field, problem.detail)]
    for name, message in errors:
        target = _input_for(name)
        if target is None:
            loose.append(f"{name}: {message}" if name else message)
        else:
            at[target] = f"{at[target]}; {message}" if target in at else message
    return at, loose


def _input_for(name: str | None) -> str | None:
    if not name:
        return None
    if name in ALL_FIELDS:
        return name
    if name == "hardware":
        return "hardware.gpu"
    return next((f for f in ALL_FIELDS if name.startswith(f"{f}.") or f.startswith(f"{name}.")), None)
