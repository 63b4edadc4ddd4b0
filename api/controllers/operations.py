"""Liveness, readiness and metrics, outside /v1 where orchestrators expect them."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example

from api.database import Database
from api.metrics import CONTENT_TYPE, Registry
from api.schemas import Health, Readiness


def _readiness(db: Any) -> Readiness:
    from fits.store import is_seeded

    db.execute("SELECT 1").fetchone()
    seeded = is_seeded(db)
    (active,) = db.execute("SELECT COUNT(*) FROM fits WHERE active = 1").fetchone()
    return Readiness(status="ready" if seeded and active else "not ready", database=True, fits_seeded=seeded,
                     active_fits=active)


def _metrics_inputs(db: Any) -> tuple[int, list[tuple[str, str, str, int, int]]]:
    (plans,) = db.execute("SELECT COUNT(*) FROM plans").fetchone()
    rows = db.execute("SELECT law, scope, name, id, version FROM fits WHERE active = 1 ORDER BY law, scope").fetchall()
    return plans, [tuple(r) for r in rows]


class OperationsController(Controller):
    tags = ("operations",)

    @get(
        "/healthz",
        summary="Liveness",
        description="200 while the process serves requests. It does not touch the database (see /readyz).",
        responses={200: ResponseSpec(Health, description="The process is up.",
                                     examples=[Example(summary="up", value={"status": "ok"})])},
    )
    async def healthz(self) -> Health:
        return Health(status="ok")

    @get(
        "/readyz",
        summary="Readiness",
        description=(
            "200 when the database answers and the published fits are seeded, so plans can be served; "
            "503 with the same body otherwise."
        ),
        responses={
            200: ResponseSpec(Readiness, description="Ready to serve plans.", examples=[Example(
                summary="ready",
                value={"status": "ready", "database": True, "fits_seeded": True, "active_fits": 2, "detail": ""},
            )]),
            503: ResponseSpec(Readiness, description="Not ready: the database or the seeded fits are missing.",
                              examples=[Example(summary="database unreachable", value={
                                  "status": "not ready", "database": False, "fits_seeded": False, "active_fits": 0,
                                  "detail": "unable to open database file"})]),
        },
    )
    async def readyz(self, database: NamedDependency[Database]) -> Response[Readiness]:
        try:
            ready = await database.run(_readiness)
        except Exception as exc:  # any database failure means "not ready", never a 500
            ready = Readiness(status="not ready", database=False, fits_seeded=False, active_fits=0, detail=str(exc))
        return Response(ready, status_code=200 if ready.status == "ready" else 503)

    @get(
        "/metrics",
        summary="Prometheus metrics",
        description=(
            "Prometheus text format 0.0.4: request counts and latency histograms (kept per worker process: with "
            "several workers a scrape sees the worker that answered), plans served by this worker, plans stored "
            "and the active fit versions (both read from the database, so the same from every worker)."
        ),
        media_type=CONTENT_TYPE,
        responses={200: ResponseSpec(str, description="Metrics in Prometheus text format.", media_type=CONTENT_TYPE,
                                     examples=[Example(summary="excerpt", value=(
                                         "# TYPE scaleplan_plans_stored gauge\nscaleplan_plans_stored 42\n"))])},
    )
    async def metrics(self, database: NamedDependency[Database], registry: NamedDependency[Registry]) -> Response[str]:
        try:
            plans, fits = await database.run(_metrics_inputs)
        except Exception:  # the metrics must still come out when the database is down
            plans, fits = None, []
        return Response(registry.render(plans_stored=plans, active_fits=fits), media_type=CONTENT_TYPE)
