"""/v1/plans: ask for a plan, read stored plans, and the verifier's checks of a plan."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import Body, HeaderParameter, PathParameter, QueryParameter

from api.controllers.documented import answers, created
from api.database import Database
from api.examples import PLAN_REQUESTS, example, plan_example
from api.metrics import Registry
from api.problems import ApiProblem, outside_the_law
from api.schemas import MAX_ID, PlanPage
from planner import Plan, PlanRequest
from planner.cache import SolveCache
from planner.request import validate
from planner.service import solve_plan
from planner.store import find_by_key, get_plan_json, store_plan_json
from verifier.check.records import Check

MAX_PAGE = 200


_encoder = msgspec.json.Encoder()


@outside_the_law
def _prepare(db: Any, request: PlanRequest, key: str | None, cache: SolveCache) -> Plan:
    """The solved plan, not yet stored (no id); or, for an idempotency key seen before, the stored plan.

    Runs on the read connection: the key look-up and the fit are indexed reads, the solve is usually cached.
    """
    validate(request)
    if key is not None:
        existing = find_by_key(db, key, request)
        if existing is not None:
            return existing
    return solve_plan(request, db, cache)


@outside_the_law
def _store(db: Any, plan: Plan, key: str | None) -> tuple[Plan, bool, bytes]:
    """Inside the writer's group commit: (stored plan, replayed, its JSON). A key another request stored
    first, in this batch or before, makes it a replay (the unique index decides)."""
    return store_plan_json(db, plan, idempotency_key=key)


def _page(db: Any, fit_id: int | None, since: str | None, cursor: int | None, limit: int) -> PlanPage:
    from planner import list_plans

    plans = list_plans(db, fit_id=fit_id, since=since, before_id=cursor, limit=limit + 1)
    more = len(plans) > limit
    plans = plans[:limit]
    return PlanPage(items=plans, next_cursor=plans[-1].id if more and plans else None)


def _checks(db: Any, plan_id: int) -> list[Check]:
    from planner import get_plan
    from verifier.check.records import list_checks

    get_plan(db, plan_id)  # 404 for an unknown plan rather than an empty list
    return list_checks(db, plan_id)


def _since(text: str) -> str:
    """An RFC 3339 time as the stored ``created`` text (UTC, microseconds), so comparing text compares times."""
    try:
        moment = msgspec.convert(text, dt.datetime)
    except msgspec.ValidationError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiProblem(422, f"since: {text!r} is not an RFC 3339 time with a zone, e.g. 2025-01-31T12:00:00Z",
                         field="since", source="query")
    try:
        return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")
    except OverflowError:  # year 1 east of UTC, or 9999 west of it: before or after every stored plan
        return "0001" if moment.year == 1 else "9999-12-31T23:59:59.999999+00:00"


PlanId = Annotated[int, PathParameter(description="Plan id.", ge=1, le=MAX_ID, examples=[example("id", 42)])]


class PlansController(Controller):
    path = "/v1/plans"
    tags = ("plans",)

    @post(
        "/",
        summary="Make a plan",
        description=(
            "Solve a planning question against a stored fit and store the answer. Give exactly one budget: "
            "`compute_flops`, `pf_days`, `hours` (with `hardware`) or `target_loss`; optionally a fit (`fit`, or "
            "`law` + `scope`; default besiroglu2024) and constraints (`max_params`, `unique_tokens`, `max_epochs`, "
            "`deadline_hours`, batch limits, `seq_len`, `vocab_size`, `inference_tokens`, `hyperparams`). "
            "The plan is stored before the 201 is sent; `Location` names it. With an `Idempotency-Key` header a "
            "retried request returns the plan stored by the first attempt (201 again, with "
            "`Idempotent-Replayed: true`); the same key with a different body is a 409."
        ),
        **created("plan"),
        responses=answers(201, Plan, "The stored plan.",
                          example("a 1e21 FLOP budget", plan_example()), 400, 404, 409, 413, 415, 422),
    )
    async def create_plan(
        self,
        state: State,
        data: Annotated[PlanRequest, Body(
            description="The planning question.",
            examples=[example(summary, value) for summary, value in PLAN_REQUESTS.items()])],
        idempotency_key: Annotated[str | None, HeaderParameter(
            name="Idempotency-Key", min_length=1, max_length=200,
            description="Any unique string (a UUID); a retry with the same key returns the same plan.",
            examples=[example("uuid", "9b2f6c1e-5a7d-4f3b-8d1e-2c4a6b8d0e1f")])] = None,
    ) -> Response[Plan]:
        # From the app state, not dependencies: litestar resolves two dependencies in a task group per request.
        database: Database = state.database
        registry: Registry = state.registry
        plan = database.read(_prepare, data, idempotency_key, database.cache)
        if plan.id is not None:  # stored before under this key
            replayed, body = True, _encoder.encode(plan)
        else:
            plan, replayed, body = await database.write(_store, plan, idempotency_key)
        headers = {"Location": f"/v1/plans/{plan.id}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        else:
            registry.plan_created()
        return Response(body, status_code=201, headers=headers, media_type=MediaType.JSON)

    @get(
        "/{plan_id:int}",
        summary="Get a plan",
        description="A stored plan by id, with the request it answered and the fit (id and version) it used.",
        responses=answers(200, Plan, "The plan.", example("plan 42", plan_example()), 404, 422),
    )
    async def get_plan(self, state: State, plan_id: PlanId) -> Response[Plan]:
        # The stored JSON with its id spliced in, read on the loop: no thread hop, no decode and re-encode.
        database: Database = state.database
        return Response(database.read(get_plan_json, plan_id), media_type=MediaType.JSON)

    @get(
        "/",
        summary="List plans",
        description=(
            "Stored plans, newest first, a page at a time: pass the page's `next_cursor` as `cursor` for the next "
            "one. Filter by the fit a plan used (`fit_id`) and by creation time (`since`)."
        ),
        responses=answers(200, PlanPage, "A page of plans.",
                          example("one plan and more to come", PlanPage(items=[plan_example()], next_cursor=42)), 422),
    )
    async def list_plans(
        self,
        database: NamedDependency[Database],
        fit_id: Annotated[int | None, QueryParameter(
            description="Only plans made with this fit id.", ge=1, le=MAX_ID, examples=[example("fit 3", 3)])] = None,
        since: Annotated[str | None, QueryParameter(
            description="Only plans created at or after this time (RFC 3339, with a zone).",
            schema_extra={"format": "date-time"}, max_length=64,
            examples=[example("a date", "2025-01-01T00:00:00Z")])] = None,
        cursor: Annotated[int | None, QueryParameter(
            description="`next_cursor` of the previous page.", ge=1, le=MAX_ID,
            examples=[example("after plan 42", 42)])] = None,
        limit: Annotated[int, QueryParameter(
            description=f"Plans per page, 1 to {MAX_PAGE}.", ge=1, le=MAX_PAGE, examples=[example("20", 20)])] = 50,
    ) -> PlanPage:
        since_text = _since(since) if since is not None else None
        return await database.run(_page, fit_id, since_text, cursor, limit)

    @get(
        "/{plan_id:int}/checks",
        summary="Checks of a plan",
        description=(
            "The verifier's checks of this plan, oldest first: each compares what the plan's fit predicted with "
            "what short training runs measured, item by item, with a verdict."
        ),
        responses=answers(200, list[Check], "The checks (empty when none ran yet).",
                          example("no checks yet", []), 404, 422),
    )
    async def plan_checks(self, database: NamedDependency[Database], plan_id: PlanId) -> list[Check]:
        return await database.run(_checks, plan_id)
