"""/v1/runs: training runs, including runs measured elsewhere and posted here for the refit."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Body, PathParameter

from api.auth import require_api_key
from api.controllers.documented import answers, created
from api.database import Database
from api.examples import CREATED, example
from api.openapi import WRITE_SECURITY
from api.schemas import MAX_ID, RunIngest
from verifier.runs import Run, RunPoint

RUN_EXAMPLE = {
    "scope": "team-a:web-en/bpe32k",
    "n_params": 85_000_000,
    "batch_tokens": 524_288,
    "seq_len": 2048,
    "warmup_steps": 500,
    "points": [
        {"step": 1000, "tokens": 524_288_000, "val_loss": 3.61},
        {"step": 2000, "tokens": 1_048_576_000, "val_loss": 3.34},
        {"step": 4000, "tokens": 2_097_152_000, "train_loss": 3.15, "val_loss": 3.12},
    ],
}
STORED_EXAMPLE = Run(
    id=17, scope="team-a:web-en/bpe32k", status="complete", source="ingested",
    config={"ingested": True, "batch_tokens": 524_288, "seq_len": 2048}, n_params=85_000_000,
    batch_tokens=524_288, seq_len=2048, tokens=2_097_152_000, steps=4000, warmup_steps=500, final_val_loss=3.12,
    best_val_step=4000, created=CREATED, updated=CREATED,
)

RunId = Annotated[int, PathParameter(description="Run id.", ge=1, le=MAX_ID, examples=[example("id", 17)])]


def _ingest(db: Any, run: RunIngest) -> Run:
    from api.ingest import ingest_run

    return ingest_run(db, run)


def _get(db: Any, run_id: int) -> Run:
    from verifier.runs import get_run

    return get_run(db, run_id)


def _points(db: Any, run_id: int) -> list[RunPoint]:
    from verifier.runs import get_points, get_run

    get_run(db, run_id)  # 404 for an unknown run rather than an empty list
    return get_points(db, run_id)


class RunsController(Controller):
    path = "/v1/runs"
    tags = ("runs",)

    @post(
        "/",
        summary="Ingest a run",
        description=(
            "Store a training run another team ran elsewhere: its scope, model (`n_params` or `shape`), batch "
            "(`batch_tokens` or `batch_size`), `seq_len` and its curve as step/tokens/loss points. It is stored as "
            "a complete run of its scope, so the next `python -m fits refit` fits it together with the scope's "
            "other runs. Needs an API key."
        ),
        guards=[require_api_key],
        security=WRITE_SECURITY,
        **created("run"),
        responses=answers(201, Run, "The stored run.", example("stored", STORED_EXAMPLE), 401, 403, 404, 409,
                          413, 415),
    )
    async def ingest_run(
        self,
        database: NamedDependency[Database],
        data: Annotated[RunIngest, Body(description="The run and its curve.", examples=[
            example("an 85M-parameter run", RUN_EXAMPLE)])],
    ) -> Response[Run]:
        run = await database.run(_ingest, data)
        return Response(run, status_code=201, headers={"Location": f"/v1/runs/{run.id}"})

    @get(
        "/{run_id:int}",
        summary="Get a run",
        description="A stored run (trained by the verifier or ingested): configuration, status and summary.",
        responses=answers(200, Run, "The run.", example("run 17", STORED_EXAMPLE), 404),
    )
    async def get_run(self, database: NamedDependency[Database], run_id: RunId) -> Run:
        return await database.run(_get, run_id)

    @get(
        "/{run_id:int}/points",
        summary="Curve of a run",
        description="The run's curve, by step: tokens, training and validation loss, learning rate, seconds.",
        responses=answers(200, list[RunPoint], "The points.", example("three points", RUN_EXAMPLE["points"]), 404),
    )
    async def run_points(self, database: NamedDependency[Database], run_id: RunId) -> list[RunPoint]:
        return await database.run(_points, run_id)
