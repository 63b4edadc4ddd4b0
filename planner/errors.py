"""Errors raised by the planner, in the fits.errors tree. Each names the request field a person has to change."""

from __future__ import annotations

from fits.errors import BadInput, Conflict, NotFound


class PlanError(BadInput):
    """A plan cannot be made from this request; ``field`` names the offending input (dotted for nested ones)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class IdempotencyConflict(PlanError, Conflict):
    """An idempotency key already stored for a different request (``field`` is ``idempotency_key``)."""


class NotStored(PlanError, NotFound):
    """The request names what is not stored: a fit id or name, an active fit of a (law, scope), an accelerator
    the catalogue does not hold. A 404 over HTTP: the request is well formed, the thing it names is missing."""

    prefix_field = True  # "fit: no fit named ...", as every PlanError reads


class Contradiction(PlanError, Conflict):
    """A request whose values are each valid but contradict each other, or the fit they name, in a way a JSON
    schema cannot state: a minimum above its maximum, more experts per token than experts, a budget below one
    step of the smallest model at that context length, a loss the fit never reaches, experts on a dense law.
    A 409 over HTTP, like any other conflict (422 is kept for values invalid in themselves)."""


class PlanNotFound(NotFound):
    """No stored plan with that id."""

    default_message = "plan not found"
