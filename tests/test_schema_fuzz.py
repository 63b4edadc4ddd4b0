"""Schemathesis against the service's own OpenAPI document: generated requests, valid and invalid, to every
operation; no answer may be a 5xx or break the documented schema (status, content type, body, headers),
and invalid input must be rejected with a 4xx."""

from __future__ import annotations

import contextlib
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app

KEY = "fuzz-key"
MIN_REQUESTS = 1000
# positive_data_acceptance is left out on purpose: the document states every rule between fields a schema can
# (and the server answers 404 for names not stored, 409 for values contradicting each other or the fit), but
# posted points that cannot determine a fit (all of one model size, no finite exponent) are a 422 no schema
# can foresee.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Expensive operations get fewer examples; everything else gets DEFAULT_EXAMPLES per generation mode.
DEFAULT_EXAMPLES = 50
EXAMPLES = {
    "POST /v1/fits": 12,
    "GET /v1/frontier.png": 4,
}


def _has_inputs(operation) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


def _fuzz(operation, mode: GenerationMode, sent: Counter, statuses: Counter, failures: dict[str, str]) -> None:
    """Send generated requests for one operation in one generation mode, recording what came back."""
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @settings(
        max_examples=EXAMPLES.get(operation.label, DEFAULT_EXAMPLES),
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case):
        response = case.call(headers={"Authorization": f"Bearer {KEY}"})
        sent[operation.label] += 1
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks)
        except (Exception, BaseExceptionGroup) as exc:  # collect them all; one report at the end
            failures.setdefault(f"{operation.label} [{mode.value}] {response.status_code}", str(exc)[:1500])

    with contextlib.suppress(Unsatisfiable):  # nothing in this operation can be made invalid
        exercise()


@pytest.mark.timeout(240)
def test_generated_requests_get_no_5xx_and_match_the_schema(tmp_path):
    app = create_app(tmp_path / "fuzz.db", api_keys=KEY, rate_limit=0)
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: dict[str, str] = {}
    # The database opens lazily on the first request (schemathesis drives the app without its lifespan).
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    # An oversized body is rejected with 413, which is as much a rejection as a 4xx on its content.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        _fuzz(operation, GenerationMode.POSITIVE, sent, statuses, failures)
        if _has_inputs(operation):
            _fuzz(operation, GenerationMode.NEGATIVE, sent, statuses, failures)

    total = sum(sent.values())
    print(f"\n{total} requests over {len(sent)} operations; statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(f"{where}: {what}" for where, what in failures.items())
    assert not any(status >= 500 for status in statuses)
    assert total >= MIN_REQUESTS, dict(sent)
