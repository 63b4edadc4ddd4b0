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
from planner.request import BUDGET_FIELDS, MOE_FIELDS

_DESCRIPTIONS = {
    400: ("Malformed request", "The body is not JSON, or not a JSON object.", "the request body is not valid JSON "
          "(unexpected character (byte 1))", None),
    401: ("Unauthorized", "No API key was sent (writes need 'Authorization: Bearer <key>').",
          "this endpoint changes stored state; send 'Authorization: Bearer <api key>'", "Authorization"),
    403: ("Forbidden", "The API key is not valid for this server.", "the API key is not valid for this server",
          "Authorization"),
    404: ("Not Found", "No resource with that id or name.", "no plan with id 12345", None),
    409: ("Conflict", "The request conflicts with what is stored, or its values, each valid, contradict each "
                      "other or the fit they name in a way the schema cannot state (a minimum above its maximum, "
                      "tokens that are not step × batch, a budget below one step of the smallest model, a loss "
                      "the fit never reaches).",
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
    # planner.request.validate's rules between fields, as JSON Schema: exactly one budget; hours, money and
    # deadlines need hardware; max_epochs needs unique_tokens; law needs scope; fit excludes law and scope; the
    # other mixture-of-experts fields need moe_experts.
    "oneOf": [_present(name, "number") for name in BUDGET_FIELDS],
    "allOf": [
        _implies("hours", "number", _present("hardware", "object")),
        _implies("budget_usd", "number", _present("hardware", "object")),
        _implies("deadline_hours", "number", _present("hardware", "object")),
        _implies("max_epochs", "number", _present("unique_tokens", "number")),
        _implies("law", "string", _present("scope", "string")),
        _implies("fit", "integer", {"not": {"anyOf": [_present("law", "string"), _present("scope", "string")]}}),
        _implies("fit", "string", {"not": {"anyOf": [_present("law", "string"), _present("scope", "string")]}}),
        *(_implies(name, "number", _present("moe_experts", "integer")) for name in MOE_FIELDS[1:]),
    ],
}


FIT_SELECTION: dict[str, Any] = {
    # The same rules on the query of /v1/frontier: a fit, or the active fit of law + scope (or of a scope).
    "allOf": [
        _implies("law", "string", _present("scope", "string")),
        _implies("fit", "string", {"not": {"anyOf": [_present("law", "string"), _present("scope", "string")]}}),
    ],
}


RUN_RULES: dict[str, Any] = {
    # api.ingest's rules between fields: the model as n_params or shape (not both), the batch given somehow.
    "allOf": [
        {"oneOf": [_present("n_params", "integer"), _present("shape", "object")]},
        {"anyOf": [_present("batch_tokens", "integer"), _present("batch_size", "integer")]},
        {"properties": {"points": {"items": {"anyOf": [_present("val_loss", "number"),
                                                       _present("train_loss", "number")]}}}},
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


def fit_rules() -> dict[str, Any]:
    """fits.fitting's rules on the points of each fittable family, from the family itself: every point carries
    the family's columns, and there are at least as many points as the family has coefficients."""
    from typing import get_args

    from api.schemas import FittableLaw
    from fits.laws.registry import get_law

    rules = []
    for name in get_args(FittableLaw):
        law = get_law(name)
        columns = [c for c in law.fit_columns if c not in ("N", "loss")]
        points = {"minItems": len(law.coefficients),
                  "items": {"required": columns, "properties": {c: {"type": "number"} for c in columns}}}
        rules.append({"if": {"required": ["law"], "properties": {"law": {"const": name}}},
                      "then": {"properties": {"points": points}}})
    return {"allOf": rules}


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


_SELECTION = ("fit", "law", "scope")


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query value's schema without its null alternative (an absent parameter is left out, never null)."""
    alternatives = [a for a in schema.pop("oneOf", []) if a.get("type") != "null"]
    if len(alternatives) == 1:
        schema.update(alternatives[0])
    elif alternatives:
        schema["oneOf"] = alternatives
    return schema


def _fit_selection(operation: dict[str, Any]) -> None:
    """The query parameters fit, law and scope of ``operation`` as one form-exploded object (serialised as the
    same three parameters), so that the rules between them (FIT_SELECTION) can be stated: OpenAPI has no rules
    between separate parameters."""
    parameters = operation.get("parameters", [])
    chosen = [p for p in parameters if p.get("in") == "query" and p.get("name") in _SELECTION]
    if len(chosen) != len(_SELECTION):
        return
    properties = {p["name"]: _not_null({**p["schema"], "description": p.get("description", "")}) for p in chosen}
    selection = {
        "name": "fit_selection", "in": "query", "required": False, "style": "form", "explode": True,
        "description": "Which fit: `fit` (name or id), or `law` with `scope`, or `scope` alone; default "
                       "besiroglu2024. Sent as the query parameters fit, law and scope.",
        "schema": {"type": "object", "properties": properties, "additionalProperties": False, **FIT_SELECTION},
        "examples": {"by-name": {"summary": "Kaplan 2020", "value": {"fit": "kaplan2020"}},
                     "law-and-scope": {"summary": "the active chinchilla fit of massivetext",
                                       "value": {"law": "chinchilla", "scope": "massivetext"}}},
    }
    operation["parameters"] = [p for p in parameters if p not in chosen] + [selection]


def exact_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """The generated document made to say exactly what the server enforces on requests.

    litestar drops a constraint whose bound is falsy (``gt=0`` on an optional number) and writes integer
    bounds as floats; msgspec's own schema of each request struct has every bound, so its constraints are
    copied onto the components of the same name, and planner.request's rules between fields are added.
    """
    from api.schemas import CompareRequest, FitPoint, FitRequest, IngestPoint, ModelShape, RunIngest
    from planner import PlanRequest, PredictRequest
    from planner.request import Hardware

    requests = [PlanRequest, PredictRequest, FitRequest, RunIngest, CompareRequest]
    _, exact = msgspec.json.schema_components(requests)
    strict = {t.__name__ for t in [*requests, Hardware, FitPoint, IngestPoint, ModelShape]
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
        components["FitRequest"].update(fit_rules())
    if "PredictRequest" in components:
        components["PredictRequest"].update(PREDICT_RULES)
    if "CompareRequest" in components:  # planner.compare: comparing needs at least a GPU count
        components["CompareRequest"]["allOf"] = [{"properties": {"request": _present("hardware", "object")}}]
    result = components.get("FitResult", {}).get("properties", {})
    # a derived value the fit cannot give (an overflow, a NaN) is sent as null, as msgspec encodes NaN
    if "additionalProperties" in result.get("derived", {}):
        result["derived"]["additionalProperties"] = {"type": ["number", "null"]}
    if "items" in result.get("derived_intervals", {}).get("additionalProperties", {}):
        result["derived_intervals"]["additionalProperties"]["items"] = {"type": ["number", "null"]}
    for path in ("/v1/frontier", "/v1/frontier.png"):
        if "get" in doc.get("paths", {}).get(path, {}):
            _fit_selection(doc["paths"][path]["get"])
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
