"""How an operation's answers are documented: its success with one example, then the problems it can answer."""

from __future__ import annotations

from typing import Any

from litestar.datastructures import ResponseHeader
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example

from api.openapi import problem_responses


def answers(status: int, model: Any, description: str, shown: Example, *problems: int) -> dict[int, ResponseSpec]:
    """``responses=`` for a route: ``status`` returns ``model`` (shown by one example); ``problems`` are the
    error statuses it can answer with (each documented as a problem+json body)."""
    return {status: ResponseSpec(model, description=description, examples=[shown]), **problem_responses(*problems)}


def created(what: str) -> dict[str, Any]:
    """The route options of a POST that stores a ``what``: 201 Created with the new resource's Location."""
    return {"status_code": 201, "response_headers": [
        ResponseHeader(name="Location", description=f"Path of the stored {what}.", documentation_only=True)]}
