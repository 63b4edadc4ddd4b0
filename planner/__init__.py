"""Compute-budget planning: a budget and constraints in, a training plan out, answered from a stored fit.

    from planner import PlanRequest, make_plan, solve_plan
    plan = make_plan(PlanRequest(compute_flops=1e21), db)      # solve against the fit, store, return with id
    plan = solve_plan(PlanRequest(compute_flops=1e21), fit)    # pure: no database

Plans, predictions and frontiers are msgspec Structs; the HTTP service serves them as they are.
"""

from planner.errors import PlanError, PlanNotFound
from planner.frontier import frontier, make_frontier
from planner.plan import (
    Alternative,
    Frontier,
    FrontierRow,
    LossEstimate,
    Plan,
    Prediction,
    Shape,
    TimeEstimate,
)
from planner.predict import PredictRequest, make_prediction, predict
from planner.request import Hardware, PlanRequest, validate
from planner.service import make_plan, resolve_fit
from planner.shape import shape_for_params
from planner.solve import DEFAULT_FIT, solve_plan
from planner.store import get_plan, list_plans, save_plan

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
