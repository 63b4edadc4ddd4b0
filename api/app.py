"""The litestar application factory: ``uvicorn --factory api.app:create_app``."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Unpack

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from api.body import StrictBody
from api.controllers.fits import FitsController
from api.controllers.hardware import HardwareController
from api.controllers.operations import OperationsController
from api.controllers.plans import PlansController
from api.controllers.predict import PredictController
from api.controllers.runs import RunsController
from api.database import Database
from api.lifecycle import follow_supervisor
from api.methods import fix_allow
from api.metrics import MetricsASGI, Registry
from api.openapi import openapi_config
from api.problems import exception_handlers
from api.ratelimit import RateLimitMiddleware, TokenBucket
from api.settings import Overrides, Settings, load_settings
from api.threads import SerialThread
from api.web import WebController

log = logging.getLogger("api")


def _version() -> str:
    try:
        return version("scaleplan")
    except PackageNotFoundError:
        return "0.0.0"


def _database(state: State) -> Database:
    return state.database


def _registry(state: State) -> Registry:
    return state.registry


def _plotter(state: State) -> SerialThread:
    return state.plotter


def _fitter(state: State) -> SerialThread:
    return state.fitter


def create_app(
    db_path: str | os.PathLike[str] | None = None, *, settings: Settings | None = None, **overrides: Unpack[Overrides]
) -> Litestar:
    """Build the service. Unset arguments come from the environment (see ``api.settings``).

    ``api_keys`` is a comma-separated list, like ``SCALEPLAN_API_KEYS``; ``rate_limit=0`` turns rate limiting off.
    """
    settings = settings or load_settings(db_path, **overrides)
    follow_supervisor()
    database = Database(settings.db_path)
    registry = Registry()
    plotter = SerialThread("plot")
    fitter = SerialThread("fit")

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await database.open()
        log.info("serving database %s", settings.db_path or os.environ.get("SCALEPLAN_DB", "scaleplan.db"))
        try:
            yield
        finally:
            await database.close()
            plotter.close()
            fitter.close()

    middleware = []
    if settings.rate_limit > 0:
        middleware.append(RateLimitMiddleware(TokenBucket(settings.rate_limit, settings.rate_burst)))

    app = Litestar(
        route_handlers=[OperationsController, PlansController, PredictController, FitsController, RunsController,
                        HardwareController, WebController],
        dependencies={
            "database": Provide(_database, sync_to_thread=False),
            "registry": Provide(_registry, sync_to_thread=False),
            "plotter": Provide(_plotter, sync_to_thread=False),
            "fitter": Provide(_fitter, sync_to_thread=False),
        },
        state=State({"database": database, "registry": registry, "plotter": plotter, "fitter": fitter,
                     "api_keys": settings.api_keys, "settings": settings}),
        lifespan=[lifespan],
        exception_handlers=exception_handlers(),
        dto=StrictBody,  # every handler's data decoded strictly into its struct, once
        return_dto=None,
        middleware=middleware,
        openapi_config=openapi_config(_version()),
        request_max_body_size=settings.max_body_bytes,
    )
    fix_allow(app)
    # Outermost wrapper, so routing 404s and handled errors are counted with their final status.
    app.asgi_handler = MetricsASGI(app.asgi_handler, registry)
    return app
