"""OpenAPI 3.1 document settings and the problem-details responses every operation declares."""

from __future__ import annotations

from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag

from api.auth import BEARER_SCHEME
from api.examples import problem_example
from api.problems import PROBLEM_MEDIA_TYPE
from api.schemas import Problem

_DESCRIPTIONS = {
    400: ("Malformed request", "The body is not JSON, or not a JSON object.", "the request body is not valid JSON "
          "(unexpected character (byte 1))", None),
    401: ("Unauthorized", "No API key was sent (writes need 'Authorization: Bearer <key>').",
          "this endpoint changes stored state; send 'Authorization: Bearer <api key>'", "Authorization"),
    403: ("Forbidden", "The API key is not valid for this server.", "the API key is not valid for this server",
          "Authorization"),
    404: ("Not Found", "No resource with that id or name.", "no plan with id 12345", None),
    409: ("Conflict", "The request conflicts with what is stored.",
          "Idempotency-Key 'abc' was already used for a different request", "Idempotency-Key"),
    413: ("Request Entity Too Large", "The body is larger than the server accepts.",
          "the request body is larger than the limit of 2097152 bytes; send fewer points per request", None),
    422: ("Validation failed", "The body parsed, but a value is not acceptable; `field` names it.",
          "budget.flops: Expected `float` > 0.0", "budget.flops"),
    429: ("Too Many Requests", "This client sent too many requests; see Retry-After.",
          "too many requests from 10.0.0.7: the limit is 100 per second with bursts of 200; retry after 0.50 s",
          None),
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """Problem-details responses for the given statuses, plus those any request can get: 400 and 422 (bad
    input anywhere), 429 (rate limit). Declaring 400 also replaces litestar's default 400 schema."""
    out = {}
    for status in sorted({*statuses, 400, 422, 429}):
        title, description, detail, field = _DESCRIPTIONS[status]
        out[status] = ResponseSpec(
            data_container=Problem,
            description=description,
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
            examples=[problem_example(status, title, detail, field)],
        )
    return out


WRITE_SECURITY = [{BEARER_SCHEME: []}]


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="scaleplan",
        version=version,
        description=(
            "Compute-budget planning for language-model pre-training, answered from versioned scaling-law fits. "
            "Errors are RFC 9457 problem details (application/problem+json). Writes (creating or activating "
            "fits, ingesting runs) need 'Authorization: Bearer <api key>'; reads and plans are open."
        ),
        path="/schema",
        render_plugins=[ScalarRenderPlugin()],
        components=Components(
            security_schemes={
                BEARER_SCHEME: SecurityScheme(
                    type="http", scheme="bearer", description="An API key from SCALEPLAN_API_KEYS on the server."
                )
            }
        ),
        tags=[
            Tag(name="plans", description="Compute-budget plans: what to train for a budget, and the expected loss."),
            Tag(name="predict", description="Loss predictions and the compute-efficient frontier of a fit."),
            Tag(name="fits", description="Stored, versioned scaling-law fits."),
            Tag(name="runs", description="Training runs and the verifier's checks of plans."),
            Tag(name="operations", description="Health, readiness and metrics."),
        ],
        use_handler_docstrings=True,
    )
