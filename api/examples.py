"""Examples for the OpenAPI document, computed by the owning packages from the published fits so they
cannot drift from what the service really answers."""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from litestar.openapi.spec import Example

from fits.fit import Fit
from fits.laws.published import published_fits

CREATED = "2025-01-01T00:00:00.000000+00:00"


def example(summary: str, value: Any, description: str | None = None) -> Example:
    return Example(summary=summary, description=description, value=msgspec.to_builtins(value))


def problem_example(status: int, title: str, detail: str, field: str | None = None) -> Example:
    from api.problems import problem_type

    value: dict[str, Any] = {"type": problem_type(status), "title": title, "status": status, "detail": detail}
    if field:
        value["field"] = field
        value["errors"] = [{"field": field, "message": detail}]
    return Example(summary=title, value=value)


@functools.cache
def fit_example() -> Fit:
    """The default planning fit as the store serves it after seeding."""
    fit = next(f for f in published_fits() if f.name == "besiroglu2024")
    return msgspec.structs.replace(fit, id=3, version=2, created=CREATED, active=True)


PLAN_REQUESTS = {
    "FLOP budget": {"compute_flops": 1e21},
    "PF-days with a memory limit": {"pf_days": 100, "max_params": 3e9},
    "GPU time": {"hours": 72, "hardware": {"gpu": "H100", "count": 64, "mfu": 0.4}},
    "money on the best GPU": {"budget_usd": 5e5, "hardware": {"gpu": "best", "count": 256}},
    "a custom accelerator, GQA": {"compute_flops": 1e22, "kv_heads": 8,
                                  "hardware": {"gpu": "X1", "peak_tflops": 1200, "memory_gb": 144, "count": 64}},
    "target loss, limited data": {"target_loss": 2.4, "unique_tokens": 5e10},
    "a named fit": {"compute_flops": 1e20, "fit": "kaplan2020"},
    "mixture of experts": {"compute_flops": 1e22, "fit": "krajewski2024", "moe_experts": 64, "moe_top_k": 2},
}


@functools.cache
def plan_example() -> Any:
    from planner import PlanRequest, solve_plan

    plan = solve_plan(PlanRequest(compute_flops=1e21), fit_example())
    return msgspec.structs.replace(plan, id=42, created=CREATED)


@functools.cache
def prediction_example() -> Any:
    from planner import PredictRequest, predict

    return predict(PredictRequest(params=1e9, tokens=2e10), fit_example())


@functools.cache
def frontier_example() -> Any:
    from planner import frontier

    return frontier(fit_example(), 1e19, 1e21)


@functools.cache
def accelerators_example() -> Any:
    from api.controllers.hardware import accelerators

    return accelerators()[:2]


@functools.cache
def comparison_example() -> Any:
    from planner import Hardware, PlanRequest
    from planner.compare import compare

    request = PlanRequest(budget_usd=5e5, hardware=Hardware(gpu="best", count=256))
    return compare(request, fit_example(), ["H100", "H200", "B200", "MI300X"])[0]
