"""Compute-budget planning: a budget and constraints in, a training plan out, answered from a stored fit.

    from planner import PlanRequest, make_plan, solve_plan
    plan = make_plan(PlanRequest(compute_flops=1e21), db)      # solve against the fit, store, return with id
    plan = solve_plan(PlanRequest(compute_flops=1e21), fit)    # pure: no database

Plans, predictions and frontiers are msgspec Structs; the HTTP service serves them as they are.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# Name -> module it lives in. Attributes load on first use (PEP 562), so ``from planner import Plan`` costs
# the msgspec structs only; solving, predicting and storing pull numpy, scipy and sqlite-utils when asked for.
_EXPORTS = {
    "PlanError": "planner.errors",
    "PlanNotFound": "planner.errors",
    "frontier": "planner.frontier",
    "make_frontier": "planner.frontier",
    "Alternative": "planner.plan",
    "Frontier": "planner.plan",
    "FrontierRow": "planner.plan",
    "LossEstimate": "planner.plan",
    "Plan": "planner.plan",
    "Prediction": "planner.plan",
    "Shape": "planner.plan",
    "TimeEstimate": "planner.plan",
    "make_prediction": "planner.predict",
    "predict": "planner.predict",
    "Hardware": "planner.request",
    "PlanRequest": "planner.request",
    "PredictRequest": "planner.request",
    "validate": "planner.request",
    "make_plan": "planner.service",
    "resolve_fit": "planner.service",
    "shape_for_params": "planner.shape",
    "DEFAULT_FIT": "planner.solve",
    "solve_plan": "planner.solve",
    "get_plan": "planner.store",
    "list_plans": "planner.store",
    "save_plan": "planner.store",
}

__all__ = [
    "DEFAULT_FIT",
    "Alternative",
    "Frontier",
    "FrontierRow",
    "Hardware",
    "LossEstimate",
    "Plan",
    "PlanError",
    "PlanNotFound",
    "PlanRequest",
    "PredictRequest",
    "Prediction",
    "Shape",
    "TimeEstimate",
    "frontier",
    "get_plan",
    "list_plans",
    "make_frontier",
    "make_plan",
    "make_prediction",
    "predict",
    "resolve_fit",
    "save_plan",
    "shape_for_params",
    "solve_plan",
    "validate",
]


_SHADOWED = frozenset(name for name, module in _EXPORTS.items() if module == f"planner.{name}")
"""Exports named like the module they live in (``planner.frontier``, ``planner.predict``): the function wins."""


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodule binds it on the package; keep the function of that name instead.
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'planner' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:
    from planner.errors import PlanError, PlanNotFound
    from planner.frontier import frontier, make_frontier
    from planner.plan import Alternative, Frontier, FrontierRow, LossEstimate, Plan, Prediction, Shape, TimeEstimate
    from planner.predict import make_prediction, predict
    from planner.request import Hardware, PlanRequest, PredictRequest, validate
    from planner.service import make_plan, resolve_fit
    from planner.shape import shape_for_params
    from planner.solve import DEFAULT_FIT, solve_plan
    from planner.store import get_plan, list_plans, save_plan
