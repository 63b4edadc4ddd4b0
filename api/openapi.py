"""OpenAPI 3.1 document settings, the problem-details responses every operation declares, and the exact request
schemas (``exact_schema``)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag

from api.auth import BEARER_SCHEME
from api.examples import problem_example
from api.problems import PROBLEM_MEDIA_TYPE
from api.schemas import MAX_ID, Problem

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
    415: ("Unsupported Media Type", "The body is not sent as application/json.",
          "the request body must be application/json, not text/plain", "Content-Type"),
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
        render_plugins=[ScalarRenderPlugin(), ExactJsonPlugin()],
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


# ------------------------------------------------------------------------------- exact request schemas

_CONSTRAINTS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
                "minItems", "maxItems")


def _present(field: str, kind: str) -> dict[str, Any]:
    """Schema of "``field`` is given and not null"."""
    return {"required": [field], "properties": {field: {"type": kind}}}


def _implies(field: str, kind: str, then: dict[str, Any]) -> dict[str, Any]:
    return {"if": _present(field, kind), "then": then}


PLAN_RULES: dict[str, Any] = {
    # planner.request.validate's rules between fields, as JSON Schema: exactly one budget; hours and deadlines
    # need hardware; max_epochs needs unique_tokens; law needs scope; fit excludes law and scope.
    "oneOf": [_present("compute_flops", "number"), _present("pf_days", "number"),
              {"required": ["hours", "hardware"], "properties": {"hours": {"type": "number"},
                                                                  "hardware": {"type": "object"}}},
              _present("target_loss", "number")],
    "allOf": [
        _implies("deadline_hours", "number", _present("hardware", "object")),
        _implies("max_epochs", "number", _present("unique_tokens", "number")),
        _implies("law", "string", _present("scope", "string")),
        _implies("fit", "integer", {"not": {"anyOf": [_present("law", "string"), _present("scope", "string")]}}),
        _implies("fit", "string", {"not": {"anyOf": [_present("law", "string"), _present("scope", "string")]}}),
    ],
}


RUN_RULES: dict[str, Any] = {
    # api.ingest's rules between fields: the model as n_params or shape (not both), the batch given somehow.
    "allOf": [
        {"oneOf": [_present("n_params", "integer"), _present("shape", "object")]},
        {"anyOf": [_present("batch_tokens", "integer"), _present("batch_size", "integer")]},
    ],
}


PREDICT_RULES: dict[str, Any] = {
    # planner.request.validate_predict: tokens, or steps with batch_tokens; never tokens and steps together.
    "oneOf": [_present("tokens", "number"),
              {"required": ["steps", "batch_tokens"], "properties": {"steps": {"type": "number"},
                                                                      "batch_tokens": {"type": "number"}}}],
    "not": {"required": ["tokens", "steps"], "properties": {"tokens": {"type": "number"},
                                                            "steps": {"type": "number"}}},
}


def _points_need(*fields: str) -> dict[str, Any]:
    return {"properties": {"points": {"items": {"required": list(fields),
                                                "properties": {f: {"type": "number"} for f in fields}}}}}


FIT_RULES: dict[str, Any] = {
    # fits.fitting's rules on points by family: N, D, loss (chinchilla, kaplan-nd); N, B, step, loss (kaplan-ns).
    "allOf": [
        {"if": {"required": ["law"], "properties": {"law": {"enum": ["chinchilla", "kaplan-nd"]}}},
         "then": _points_need("D")},
        {"if": {"required": ["law"], "properties": {"law": {"const": "kaplan-ns"}}},
         "then": _points_need("B", "step")},
    ],
}


def _lift(source: dict[str, Any]) -> dict[str, Any]:
    """The constraints of one msgspec property schema, from its non-null alternatives, keyed for the top level
    (numeric keys apply only to numbers, string keys only to strings, so one level holds them all)."""
    out = {k: source[k] for k in _CONSTRAINTS if k in source}
    for alternative in source.get("anyOf", []):
        out.update({k: alternative[k] for k in _CONSTRAINTS if k in alternative})
    return out


def _merge(target: dict[str, Any], source: dict[str, Any]) -> None:
    target.update(_lift(source))
    items = next((s["items"] for s in [source, *source.get("anyOf", [])] if "items" in s), None)
    inner = next((t["items"] for t in [target, *target.get("oneOf", [])] if "items" in t), None)
    if items is not None and inner is not None:
        _merge(inner, items)
    if "prefixItems" in source and "prefixItems" in target:
        for t, s in zip(target["prefixItems"], source["prefixItems"], strict=False):
            _merge(t, s)


def _integers(node: Any) -> None:
    """Integer bounds written as integers (litestar writes ``le=2**63 - 1`` as 9.223372036854776e+18)."""
    if isinstance(node, dict):
        types = [node.get("type"), *(alt.get("type") for alt in node.get("oneOf", []) if isinstance(alt, dict))]
        kinds = {k for t in types for k in (t if isinstance(t, list) else [t]) if isinstance(k, str)}
        if "integer" in kinds and "number" not in kinds:
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                value = node.get(key)
                if isinstance(value, float) and value.is_integer():
                    # float(2**63 - 1) rounds up to 2**63: the bound was the largest SQLite integer
                    node[key] = MAX_ID if int(value) == MAX_ID + 1 else int(value)
        for value in node.values():
            _integers(value)
    elif isinstance(node, list):
        for value in node:
            _integers(value)


def exact_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """The generated document made to say exactly what the server enforces on requests.

    litestar drops a constraint whose bound is falsy (``gt=0`` on an optional number) and writes integer
    bounds as floats; msgspec's own schema of each request struct has every bound, so its constraints are
    copied onto the components of the same name, and planner.request's rules between fields are added.
    """
    from api.schemas import FitPoint, FitRequest, ModelShape, RunIngest
    from planner import PlanRequest, PredictRequest
    from planner.request import Hardware

    requests = [PlanRequest, PredictRequest, FitRequest, RunIngest]
    _, exact = msgspec.json.schema_components(requests)
    strict = {t.__name__ for t in [*requests, Hardware, FitPoint, ModelShape]
              if t.__struct_config__.forbid_unknown_fields}
    components = doc.get("components", {}).get("schemas", {})
    for name, source in exact.items():
        target = components.get(name)
        if target is None or name == "RunPoint":  # RunPoint is also a response: left as served
            continue
        if name in strict:
            target["additionalProperties"] = False  # the struct refuses unknown fields
        for prop, spec in target.get("properties", {}).items():
            if prop in source.get("properties", {}):
                _merge(spec, source["properties"][prop])
    if "PlanRequest" in components:
        components["PlanRequest"].update(PLAN_RULES)
    if "RunIngest" in components:
        components["RunIngest"].update(RUN_RULES)
    if "FitRequest" in components:
        components["FitRequest"].update(FIT_RULES)
    if "PredictRequest" in components:
        components["PredictRequest"].update(PREDICT_RULES)
    _integers(doc)
    return doc


class ExactJsonPlugin(JsonRenderPlugin):
    """``/schema/openapi.json``: the generated document passed through ``exact_schema`` once."""

    def __init__(self) -> None:
        super().__init__(path="/openapi.json")
        self._done: set[int] = set()

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        if id(openapi_schema) not in self._done:  # the plugin caches the dict: tighten it in place, once
            exact_schema(openapi_schema)
            self._done.add(id(openapi_schema))
        return super().render(request, openapi_schema)
