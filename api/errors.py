"""The one exception hierarchy of the client library (modelled on httpx's).

    ScaleplanError
    ├── TransportError            the request did not get an HTTP answer (connection, timeout)
    └── ProblemError              the server answered with RFC 9457 problem details
        ├── BadRequest            400 malformed body
        ├── Unauthorized          401 missing API key
        ├── Forbidden             403 wrong API key
        ├── NotFound              404 unknown id or name
        ├── Conflict              409
        ├── PayloadTooLarge       413
        ├── ValidationFailed      422 the body parsed but a value is not acceptable
        ├── RateLimited           429 (``retry_after`` in seconds)
        └── ServerError           5xx
"""

from __future__ import annotations

from typing import Any


class ScaleplanError(Exception):
    """Base class of every error the client raises."""


class TransportError(ScaleplanError):
    """No HTTP response: the server could not be reached, or it did not answer in time."""


class ProblemError(ScaleplanError):
    """The server answered with an error status and a problem-details body."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        field: str | None = None,
        type: str = "about:blank",
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.type = type
        self.errors = errors or []
        self.headers = headers or {}
        where = f" (field {field})" if field else ""
        super().__init__(f"{status} {title}: {detail}{where}" if detail else f"{status} {title}{where}")


class BadRequest(ProblemError):
    """400: the body is not JSON, or not the JSON object the endpoint takes."""


class Unauthorized(ProblemError):
    """401: the endpoint needs ``Authorization: Bearer <key>`` and none was sent."""


class Forbidden(ProblemError):
    """403: the API key was not accepted."""


class NotFound(ProblemError):
    """404: no plan, fit or run with that id or name."""


class Conflict(ProblemError):
    """409: the request conflicts with stored state (an idempotency key reused for another request)."""


class PayloadTooLarge(ProblemError):
    """413: the body is larger than the server accepts."""


class ValidationFailed(ProblemError):
    """422: the body parsed, but a value is outside what the service can accept; see ``field``."""


class RateLimited(ProblemError):
    """429: too many requests from this client; wait ``retry_after`` seconds."""

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class ServerError(ProblemError):
    """5xx: the server failed; retrying later may help."""


_BY_STATUS: dict[int, type[ProblemError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
}


def problem_class(status: int) -> type[ProblemError]:
    """The exception class the client raises for an error status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, ProblemError)
