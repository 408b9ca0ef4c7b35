"""Fuzzing the HTTP API with Schemathesis: cases generated from serve's own OpenAPI schema, for every
route, must never get a 5xx, and every response (its status, content type and body) must match the
schema the server publishes. Schemathesis's "schema-valid data is accepted" check is left out: an
OpenAPI schema can say that ``image`` is binary, not that it is a picture of a digit, so most
generated images are rightly refused with a documented 400."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from digitsum.predict import load_model
from digitsum.serve import create_app

CASES = 300  # per route and mode: GET routes without inputs have one case; POST /api/predict gets 600
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz(operation, mode: GenerationMode, statuses: list[int]) -> None:
    """Send up to CASES requests generated for one operation (valid by its schema, or not); record each status."""

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def one(case):
        response = case.call()
        statuses.append(response.status_code)
        assert response.status_code < 500, response.text
        case.validate_response(response, checks=CHECKS)

    one()


def test_every_generated_request_gets_a_documented_answer_never_a_5xx(small_run):
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(load_model(small_run)))
    seen: dict[str, list[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        route = f"{operation.method.upper()} {operation.path}"
        modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * (operation.method.upper() == "POST")
        for mode in modes:  # a GET without inputs has no invalid request to make
            fuzz(operation, mode, seen.setdefault(route, []))
    assert set(seen) == {"GET /healthz", "GET /api/info", "POST /api/predict"}
    assert sum(len(s) for s in seen.values()) >= 500
    assert {400, 422} <= set(seen["POST /api/predict"])  # generated bodies are mostly not images; bad numbers
