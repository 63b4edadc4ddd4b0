"""Every error the service sends is an RFC 9457 problem-details body (application/problem+json).

Handlers here turn litestar's own exceptions (routing, body decoding, validation, size limit, auth) and
the library's errors into problems that name the offending field and say what to change. Bad input never
reaches the catch-all 500 handler.

The library's errors (fits.errors) map onto statuses by class, never by reading the message (``STATUS``):
BadInput 422, NotFound 404, Conflict 409, Busy and Unavailable 503, Failed 500; the problem's ``field`` is
the exception's. The client (api.errors) maps the statuses back onto its own classes.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ParamSpec, TypeVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from api.schemas import FieldError, Problem
from fits.errors import BadInput, Busy, Conflict, Failed, NotFound, ScaleplanError, Unavailable

log = logging.getLogger("api")
P = ParamSpec("P")
T = TypeVar("T")

PROBLEM_MEDIA_TYPE = "application/problem+json"

_SLUGS = {
    400: "malformed-body",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
    429: "rate-limited",
    500: "internal-error",
    503: "unavailable",
}
_TITLES = {
    400: "Malformed request",
    422: "Validation failed",
    409: "Conflict",
}


def problem_type(status: int) -> str:
    return f"urn:scaleplan:problem:{_SLUGS.get(status, str(status))}"


class ApiProblem(HTTPException):
    """Raise from a handler to answer with a problem; ``field`` names the offending input."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        source: str = "body",
        title: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(detail=detail, status_code=status, headers=headers)
        self.title = title or _TITLES.get(status) or HTTPStatus(status).phrase
        self.field = field
        if errors is None and field:
            errors = [FieldError(field=field, message=detail.removeprefix(f"{field}: "), source=source)]
        self.errors = errors or []


def outside_the_law(fn: Callable[P, T]) -> Callable[P, T]:
    """Planner computations: arithmetic failures deep in a law (a division by an underflowed size, an
    overflow to infinity) come from extreme inputs, so they are the caller's 422, not the server's 500."""

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        from planner import PlanError

        try:
            return fn(*args, **kwargs)
        except PlanError:
            raise
        except (ArithmeticError, ValueError) as exc:
            log.warning("%s rejected as outside the law's range: %r", fn.__name__, exc)
            raise ApiProblem(
                422,
                f"the request is outside the range where the law can be evaluated ({type(exc).__name__}: "
                f"{str(exc)[:200]}); use sizes and budgets within a few orders of magnitude of real training runs",
            ) from exc

    return guarded


MAX_DETAIL = 500
"""Longest detail or field message sent back: an error about a huge value quotes a prefix of it, not all of it."""


def shorten(text: str, limit: int = MAX_DETAIL) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters in all)"


def problem_response(
    request: Request[Any, Any, Any] | None,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    field: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    errors = [e if len(e.message) <= MAX_DETAIL else msgspec.structs.replace(e, message=shorten(e.message))
              for e in errors or []]
    body = Problem(
        type=problem_type(status),
        title=title or _TITLES.get(status) or HTTPStatus(status).phrase,
        status=status,
        detail=shorten(detail),
        instance=request.url.path if request is not None else None,
        field=field,
        errors=errors,
    )
    return Response(
        msgspec.json.encode(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


# ------------------------------------------------------------------------------------------- handlers

_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]*)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]*)`")


def _field_path(key: str | None, message: str) -> str | None:
    """litestar reports the body itself as ``data``; point at the field inside it where the message names one."""
    for pattern in (_UNKNOWN_FIELD, _MISSING_FIELD):
        match = pattern.search(message)
        if match:
            inner = match.group(1)
            if key in (None, "", "data"):
                return inner
            return f"{key}.{inner}"
    if key in (None, "", "data"):
        return None
    return key


def _actionable(message: str) -> str:
    message = message.replace("Object contains unknown field", "unknown field")
    message = message.replace("Object missing required field", "missing required field")
    return message


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors: list[FieldError] = []
    malformed = False
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", ""))
        source = str(getattr(item.get("source"), "value", item.get("source") or "body"))
        key = item.get("key")
        field = _field_path(key, message)
        if source == "body" and field is None:
            # The body as a whole is wrong: absent, or JSON of the wrong kind (an array, a string).
            malformed = True
            if message.strip("'") == "data":
                message = "the request body is empty; send a JSON object"
            elif message.startswith("Expected `object`"):
                message = f"the request body must be a JSON object ({message.lower()})"
            errors.append(FieldError(field="$", message=message, source=source))
        else:
            errors.append(FieldError(field=field or str(key), message=_actionable(message), source=source))
    if not errors:
        errors.append(FieldError(field="$", message=str(exc.detail), source="body"))
    first = errors[0]
    status = 400 if malformed else 422
    detail = f"{first.field}: {first.message}" if first.field != "$" else first.message
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more; see errors)"
    return problem_response(
        request, status, detail, field=None if first.field == "$" else first.field, errors=errors
    )


def _on_api_problem(request: Request[Any, Any, Any], exc: ApiProblem) -> Response[bytes]:
    return problem_response(
        request, exc.status_code, exc.detail, title=exc.title, field=exc.field, errors=exc.errors,
        headers=exc.headers,
    )


def _on_not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[bytes]:
    detail = exc.detail
    if detail in ("", "Not Found"):
        detail = f"no resource at {request.method} {request.url.path}; the API lives under /v1 (see /schema)"
    return problem_response(request, 404, detail)


def _on_too_large(request: Request[Any, Any, Any], exc: RequestEntityTooLarge) -> Response[bytes]:
    limit = request.route_handler.resolve_request_max_body_size()
    return problem_response(
        request, 413, f"the request body is larger than the limit of {limit} bytes; send fewer points per request"
    )


def _on_unauthorized(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[bytes]:
    return problem_response(
        request, 401, exc.detail, headers={"WWW-Authenticate": 'Bearer realm="scaleplan"'}, field="Authorization",
        errors=[FieldError(field="Authorization", message=exc.detail, source="header")],
    )


def _on_forbidden(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[bytes]:
    return problem_response(
        request, 403, exc.detail, field="Authorization",
        errors=[FieldError(field="Authorization", message=exc.detail, source="header")],
    )


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    detail = exc.detail
    if status == 400 and not detail.startswith("Invalid content-length"):
        # litestar answers a body that fails to parse with a bare 400 carrying the decoder's message.
        detail = f"the request body is not valid JSON ({detail.removeprefix('JSON is malformed: ')})"
    elif detail == HTTPStatus(status).phrase and status == 405:
        detail = f"{request.method} is not supported on {request.url.path}"
    headers = dict(exc.headers or {})
    return problem_response(request, status, detail, headers=headers or None)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return problem_response(request, 500, "the server failed to answer this request; it has been logged")


STATUS: dict[type[ScaleplanError], int] = {
    NotFound: 404,
    Conflict: 409,
    Busy: 503,
    Unavailable: 503,
    Failed: 500,
    BadInput: 422,
    ScaleplanError: 500,
}
"""Status of each class of the library's error tree; the first class an error is an instance of wins (so a
planner.IdempotencyConflict, a PlanError and a Conflict, is a 409)."""

HEADER_FIELDS = {"idempotency_key": "Idempotency-Key"}
"""Library fields that arrive as request headers, by the header's name."""


def status_of(exc: ScaleplanError) -> int:
    return next(status for cls, status in STATUS.items() if isinstance(exc, cls))


def library_problem(exc: ScaleplanError, *, rename: dict[str, str] | None = None) -> ApiProblem:
    """The problem for a library error: its class's status, its field (renamed to the API's name for it)."""
    status = status_of(exc)
    field = exc.field
    source = "body"
    if field in HEADER_FIELDS:
        field, source = HEADER_FIELDS[field], "header"
    elif field is not None:
        field = (rename or {}).get(field, field)
    detail = f"{field}: {exc.message}" if field and exc.prefix_field else str(exc)
    errors = [FieldError(field=field, message=exc.message, source=source)] if field else []
    headers = {"Retry-After": "1"} if isinstance(exc, Busy) else None
    return ApiProblem(status, detail, field=field, source=source, errors=errors, headers=headers)


def value_problem(exc: ValueError, *, rename: dict[str, str] | None = None) -> ApiProblem:
    """A 422 from a ValueError out of the library: a BadInput carries its field (renamed as ``rename`` says)."""
    if isinstance(exc, ScaleplanError):
        return library_problem(exc, rename=rename)
    return ApiProblem(422, str(exc))


def _on_library_error(request: Request[Any, Any, Any], exc: ScaleplanError) -> Response[bytes]:
    problem = library_problem(exc)
    if problem.status_code >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return _on_api_problem(request, problem)


def _msgspec_value_problem(exc: msgspec.ValidationError) -> ApiProblem:
    """A 422 from msgspec validation raised inside the library (a struct's __post_init__), whose text starts
    with the field that msgspec's message names ("field: what to do")."""
    message = str(exc)
    field, sep, rest = message.partition(": ")
    known = bool(sep) and re.fullmatch(r"[A-Za-z_][\w.\[\]-]*", field) is not None
    if not known:
        return ApiProblem(422, message)
    return ApiProblem(422, f"{field}: {rest}", field=field)


_AT_PATH = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$", re.S)


def msgspec_problem(exc: msgspec.ValidationError) -> ApiProblem:
    """A 422 from msgspec's "<what> - at `$.a.b[2]`" message, with the path as the field."""
    match = _AT_PATH.match(str(exc))
    field = match.group("path").removeprefix(".") or None if match else None
    message = _actionable(match.group("message") if match else str(exc))
    unknown = _UNKNOWN_FIELD.search(message) or _MISSING_FIELD.search(message)
    if unknown:
        field = f"{field}.{unknown.group(1)}" if field else unknown.group(1)
    return ApiProblem(422, f"{field}: {message}" if field else message, field=field)


def _on_domain_value_error(request: Request[Any, Any, Any], exc: msgspec.ValidationError) -> Response[bytes]:
    return _on_api_problem(request, _msgspec_value_problem(exc))


def exception_handlers() -> dict[type[Exception], Any]:
    """The app's exception handlers; litestar picks the most specific class in the MRO."""
    handlers: dict[type[Exception], Any] = {
        ScaleplanError: _on_library_error,
        msgspec.ValidationError: _on_domain_value_error,
        ApiProblem: _on_api_problem,
        ValidationException: _on_validation,
        NotFoundException: _on_not_found,
        RequestEntityTooLarge: _on_too_large,
        NotAuthorizedException: _on_unauthorized,
        PermissionDeniedException: _on_forbidden,
        HTTPException: _on_http,
        Exception: _on_unexpected,
    }
    return handlers
