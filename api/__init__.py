"""scaleplan's HTTP service and its Python client.

The public API is what this module exports: the clients and their exceptions. The service itself is
built by ``api.app.create_app`` and served by ``python -m api``.
"""

from api.client import AsyncClient, Client
from api.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RateLimited,
    ScaleplanError,
    ServerError,
    TransportError,
    Unauthorized,
    ValidationFailed,
)
from api.schemas import FitCreated, FitPoint, FitRequest, ModelShape, PlanPage, Problem, RunIngest

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "FitCreated",
    "FitPoint",
    "FitRequest",
    "Forbidden",
    "ModelShape",
    "NotFound",
    "PayloadTooLarge",
    "PlanPage",
    "Problem",
    "ProblemError",
    "RateLimited",
    "RunIngest",
    "ScaleplanError",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "ValidationFailed",
]
