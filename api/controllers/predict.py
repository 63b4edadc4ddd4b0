"""/v1/predict and /v1/frontier: what a fit says, without storing anything."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import Body, QueryParameter

from api.controllers.documented import answers
from api.database import Database
from api.examples import example, frontier_example, prediction_example
from api.openapi import problem_responses
from api.plotting import frontier_png
from api.problems import ApiProblem, outside_the_law
from api.threads import SerialThread
from fits.fit import Fit
from planner import Frontier, PlanRequest, Prediction, PredictRequest
from planner.request import MAX_FLOPS, MIN_FLOPS

PNG = "image/png"


@outside_the_law
def _predict(db: Any, request: PredictRequest) -> Prediction:
    from planner import make_prediction

    return make_prediction(request, db)


def fit_for(db: Any, template: PlanRequest) -> Fit:
    """The fit a request names (fit, or law and scope), resolved as a plan would resolve it."""
    from planner import resolve_fit

    return resolve_fit(db, template.fit, template.law, template.scope)[0]


@outside_the_law
def _frontier(fit: Fit, start: float, stop: float, per_decade: int, template: PlanRequest) -> Frontier:
    """Up to 200 plans: computed beside the database thread, not on it, so plan writes do not wait."""
    from planner import frontier

    return frontier(fit, start, stop, per_decade=per_decade, template=template)


Start = Annotated[float, QueryParameter(
    description="Smallest budget in FLOPs (from 1e9, the smallest budget planned).", ge=MIN_FLOPS, lt=MAX_FLOPS,
    examples=[example("1e18", 1e18)])]
Stop = Annotated[float, QueryParameter(
    description="Largest budget in FLOPs (at most 200 rows in all).", ge=MIN_FLOPS, lt=MAX_FLOPS,
    examples=[example("1e24", 1e24)])]
PerDecade = Annotated[int, QueryParameter(
    description="Budgets per factor of ten, 1 to 20.", ge=1, le=20, examples=[example("two", 2)])]
FitName = Annotated[str | None, QueryParameter(
    description="Fit by stable name or id (default besiroglu2024).", min_length=1, max_length=200,
    examples=[example("Kaplan 2020", "kaplan2020")])]
Law = Annotated[str | None, QueryParameter(
    description="With `scope` and no `fit`: the active fit of this law.", min_length=1, max_length=50,
    examples=[example("chinchilla", "chinchilla")])]
Scope = Annotated[str | None, QueryParameter(
    name="scope", description="Scope whose active fit to use.", min_length=1, max_length=200,
    examples=[example("massivetext", "massivetext")])]

FRONTIER_DESCRIPTION = (
    "The compute-optimal plan at each budget from `start` to `stop` FLOPs (`per_decade` budgets per factor of "
    "ten): N, D, tokens per parameter, batch, steps and the predicted loss with its band, from the named fit "
    "(`fit`, or the active fit of `law` + `scope`; default besiroglu2024)."
)


FRONTIER_QUERY = frozenset({"start", "stop", "per_decade", "fit", "law", "scope"})


def only_known_query(request: Request) -> None:
    """The frontier's query is a closed set (the document's fit selection admits no other keys): a misspelt
    parameter is a 422, not silently the default fit."""
    unknown = sorted(set(request.query_params) - FRONTIER_QUERY)
    if unknown:
        raise ApiProblem(422, f"{unknown[0][:80]}: not a parameter of this endpoint (known: "
                              f"{', '.join(sorted(FRONTIER_QUERY))})", field=unknown[0][:80], source="query")


async def frontier_table(
    request: Request,
    database: NamedDependency[Database],
    start: Start = 1e18,
    stop: Stop = 1e24,
    per_decade: PerDecade = 2,
    fit: FitName = None,
    law: Law = None,
    fit_scope: Scope = None,
) -> Frontier:
    """The frontier both /v1/frontier and its picture show: one set of query parameters, read once."""
    only_known_query(request)
    template = PlanRequest(compute_flops=1.0, fit=fit, law=law, scope=fit_scope)
    chosen = await database.run(fit_for, template)
    return await asyncio.to_thread(_frontier, chosen, start, stop, per_decade, template)


class PredictController(Controller):
    tags = ("predict",)

    @post(
        "/v1/predict",
        summary="Predict a loss",
        description=(
            "The loss a fit predicts for `params` (non-embedding N) trained on `tokens`, or for `steps` at "
            "`batch_tokens` per step, with its uncertainty band, the critical batch size and (for Kaplan fits) the "
            "overfitting penalty and early-stopping step. `unique_tokens` prices repeated data. Nothing is stored."
        ),
        status_code=200,
        responses=answers(200, Prediction, "The prediction.",
                          example("1e9 parameters on 2e10 tokens", prediction_example()), 400, 404, 413, 415,
                          422),
    )
    async def predict(
        self,
        database: NamedDependency[Database],
        data: Annotated[PredictRequest, Body(description="Model size and training length.", examples=[
            example("N and D", {"params": 1e9, "tokens": 2e10}),
            example("N, S and B on Kaplan's fit", {"params": 1e8, "steps": 50000, "batch_tokens": 524288,
                                                    "fit": "kaplan2020"}),
        ])],
    ) -> Prediction:
        return await database.run(_predict, data)

    @get(
        "/v1/frontier",
        dependencies={"table": Provide(frontier_table)},
        summary="Compute-efficient frontier",
        description=FRONTIER_DESCRIPTION,
        responses=answers(200, Frontier, "One row per budget.",
                          example("1e19 to 1e21 FLOPs", frontier_example()), 404, 409, 422),
    )
    async def frontier(self, table: NamedDependency[Frontier]) -> Frontier:
        return table

    @get(
        "/v1/frontier.png",
        dependencies={"table": Provide(frontier_table)},
        summary="Frontier plot",
        description="The same frontier drawn as a PNG: predicted loss with its band, and N and D, against compute.",
        media_type=PNG,
        responses={200: ResponseSpec(bytes, description="A PNG image.", media_type=PNG, generate_examples=False),
                   **problem_responses(404, 409, 422)},
    )
    async def frontier_png(
        self, table: NamedDependency[Frontier], plotter: NamedDependency[SerialThread]
    ) -> Response[bytes]:
        return Response(await plotter.run(frontier_png, table), media_type=PNG)
