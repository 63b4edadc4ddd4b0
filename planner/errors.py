"""Errors raised by the planner, in the fits.errors tree. Each names the request field a person has to change."""

from __future__ import annotations

from fits.errors import BadInput, Conflict, NotFound


class PlanError(BadInput):
    """A plan cannot be made from this request; ``field`` names the offending input (dotted for nested ones)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class IdempotencyConflict(PlanError, Conflict):
    """An idempotency key already stored for a different request (``field`` is ``idempotency_key``)."""


class PlanNotFound(NotFound):
    """No stored plan with that id."""

    default_message = "plan not found"
