"""Library entry points that touch the database: pick the fit, solve, store."""

from __future__ import annotations

import msgspec
import sqlite_utils

from fits.fit import Fit
from fits.laws.registry import law_names
from fits.store import FitNotFound, active_fit, active_fits, get_fit
from planner.cache import SolveCache
from planner.errors import NotStored, PlanError
from planner.plan import Plan
from planner.request import PlanRequest, validate
from planner.solve import DEFAULT_FIT, DEFAULT_FIT_REASON, solve_validated
from planner.store import find_by_key, store_plan


def resolve_fit(
    db: sqlite_utils.Database,
    fit: str | int | None = None,
    law: str | None = None,
    scope: str | None = None,
) -> tuple[Fit, bool]:
    """(the fit to use, whether it is the default): by name or id, else the active fit of (law, scope),
    else the active fit of scope (families in the registry's preference order, Chinchilla first), else
    besiroglu2024."""
    if fit is not None:
        try:
            return get_fit(db, fit), False
        except FitNotFound as exc:
            raise NotStored("fit", str(exc)) from None
    if scope is not None:
        if law is not None:
            found = active_fit(db, law, scope)
            if found is None:
                raise NotStored("law", f"no active {law!r} fit for scope {scope!r}")
            return found, False
        candidates = {f.law: f for f in active_fits(db, scope)}
        for preferred in law_names():
            if preferred in candidates:
                return candidates[preferred], False
        raise NotStored("scope", f"no active fit for scope {scope!r}")
    try:
        return get_fit(db, DEFAULT_FIT), True
    except FitNotFound:
        raise PlanError("fit", f"the default fit {DEFAULT_FIT} is not in the database; open it with seeding") from None


def make_plan(request: PlanRequest, db: sqlite_utils.Database, *, idempotency_key: str | None = None) -> Plan:
    """Validate, solve against the chosen fit, store, and return the plan with its id.

    With an idempotency key that was used before, the stored plan comes back without solving again.
    """
    return make_or_replay_plan(request, db, idempotency_key=idempotency_key)[0]


def make_or_replay_plan(
    request: PlanRequest, db: sqlite_utils.Database, *, idempotency_key: str | None = None
) -> tuple[Plan, bool]:
    """``make_plan`` that also says whether the plan was replayed (stored earlier under the same key).

    The request is validated once and the key looked up once; a concurrent writer that stores the same key
    between the look-up and the insert is caught by the unique index (save_plan returns its plan).
    """
    validate(request)
    if idempotency_key is not None:
        existing = find_by_key(db, idempotency_key, request)
        if existing is not None:
            return existing, True
    return store_plan(db, solve_plan(request, db), idempotency_key=idempotency_key)


def solve_plan(request: PlanRequest, db: sqlite_utils.Database, cache: SolveCache | None = None) -> Plan:
    """The plan for a validated ``request`` against the fit it names, not yet stored (no id).

    With a ``cache`` (one per database) the fit resolution and the solve are remembered (planner.cache).
    """
    fit, defaulted = (cache.resolve_fit if cache else resolve_fit)(db, request.fit, request.law, request.scope)
    plan = cache.plan(request, fit) if cache else None
    if plan is None:
        plan = solve_validated(request, fit)
        if defaulted:
            plan = msgspec.structs.replace(plan, assumptions=[DEFAULT_FIT_REASON, *plan.assumptions])
        if cache:
            cache.keep(request, fit, plan)
    return plan
