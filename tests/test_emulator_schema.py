"""Schemathesis drives the emulator with the published OpenAPI spec and finds no disagreement.

``openapi-events.json`` is a verbatim copy of the events part of Explorium's published
spec. The published schema is looser than the documented API in two places, so the
strict runs use a copy amended in memory, each change backed by FACTS.md:

1. ``timestamp_from`` / ``timestamp_to``: the schema's second ``anyOf`` branch is any
   string, while its own description (and FACTS) allow only an ISO datetime or
   ``YYYY-MM-DD``. The amended copy says ``format: date``.
2. Responses: the spec documents only 200 (as "any") and 422. The amended copy adds
   the documented 200 body, 401 and 429, and the ``X-RateLimit-*`` headers on all of
   them, so that schemathesis checks those too.

A third run, against the published schema as it is, proves that free-text timestamps
are the only thing it and the emulator disagree on.

``POST /v1/businesses/events`` is driven the same way from ``openapi-siblings.json`` (the
business part of the same published spec, ../shared/api), with the same two amendments.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorium_events.emulator import Emulator, EmulatorConfig

# schemathesis belongs to the `test` extra; without it this module is skipped, visibly.
schemathesis = pytest.importorskip("schemathesis", reason="needs the `test` extra (schemathesis)")
requests = pytest.importorskip("requests")  # schemathesis depends on it
GenerationMode = schemathesis.GenerationMode
FailureGroup = pytest.importorskip("schemathesis.core.failures").FailureGroup

SPEC_PATH = Path(__file__).with_name("openapi-events.json")
PATH = "/v1/prospects/events"
KEY = "schema-test-key"
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
EXAMPLES = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI must not flake
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def published_spec() -> dict[str, Any]:
    """Return the published spec, unchanged."""
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return spec


def amended_spec() -> dict[str, Any]:
    """Return the published spec with the two amendments of the module docstring."""
    return _amend(
        published_spec(),
        path=PATH,
        request="ProspectsEventsRequest",
        id_field="prospect_id",
        id_pattern="^[a-f0-9]{40}$",
        identifier="ProspectsEventIdentifier",
    )


def _amend(
    published: dict[str, Any],
    *,
    path: str,
    request: str,
    id_field: str,
    id_pattern: str,
    identifier: str,
) -> dict[str, Any]:
    """A copy of ``published`` with the two amendments, for one events endpoint."""
    spec = copy.deepcopy(published)
    request_fields = spec["components"]["schemas"][request]["properties"]
    for field in ("timestamp_from", "timestamp_to"):
        request_fields[field]["anyOf"] = [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
        ]

    digits = {"type": "string", "pattern": "^[0-9]+$"}
    rate_headers = {
        name: {"required": True, "schema": digits}
        for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
    }
    hex32 = {"type": "string", "pattern": "^[a-f0-9]{32}$"}
    event = {
        "type": "object",
        "required": ["event_id", "event_name", "event_time", id_field, "data"],
        "properties": {
            "event_id": hex32,
            "event_name": {"$ref": f"#/components/schemas/{identifier}"},
            "event_time": {"type": "string", "format": "date-time"},
            id_field: {"type": "string", "pattern": id_pattern},
            "data": {"type": "object", "required": ["event_name"]},
        },
    }
    success = {
        "type": "object",
        "required": ["response_context", "output_events"],
        "properties": {
            "response_context": {
                "type": "object",
                "required": ["correlation_id", "request_status", "time_took_in_seconds"],
                "properties": {
                    "correlation_id": hex32,
                    "request_status": {"enum": ["success", "miss", "failure"]},
                    "time_took_in_seconds": {"type": "number"},
                },
            },
            "output_events": {"type": "array", "items": event},
        },
    }

    def json_body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"application/json": {"schema": schema}}

    responses = spec["paths"][path]["post"]["responses"]
    responses["200"]["content"] = json_body(success)
    responses["200"]["headers"] = rate_headers
    responses["422"]["headers"] = rate_headers
    responses["401"] = {
        "description": "Missing or invalid API key",
        "headers": rate_headers,
        "content": json_body(
            {
                "type": "object",
                "required": ["details", "correlation_id"],
                "properties": {"details": {"type": "string"}, "correlation_id": hex32},
            }
        ),
    }
    responses["429"] = {
        "description": "Rate limit exceeded",
        "headers": {**rate_headers, "Retry-After": {"required": True, "schema": digits}},
        "content": json_body(
            {
                "type": "object",
                "required": ["error", "message", "retry_after"],
                "properties": {
                    "error": {"const": "rate_limit_exceeded"},
                    "message": {"type": "string"},
                    "retry_after": {"type": "integer", "minimum": 0},
                },
            }
        ),
    }
    return spec


STRICT = schemathesis.openapi.from_dict(amended_spec())[PATH]["POST"]
PUBLISHED = schemathesis.openapi.from_dict(published_spec())[PATH]["POST"]

SIBLINGS_PATH = Path(__file__).with_name("openapi-siblings.json")
BUSINESS_PATH = "/v1/businesses/events"


def published_siblings_spec() -> dict[str, Any]:
    """Return the published spec of the business (and other sibling) endpoints, unchanged."""
    spec: dict[str, Any] = json.loads(SIBLINGS_PATH.read_text())
    return spec


BUSINESS_STRICT = schemathesis.openapi.from_dict(
    _amend(
        published_siblings_spec(),
        path=BUSINESS_PATH,
        request="BusinessesEventsRequest",
        id_field="business_id",
        id_pattern="^[a-f0-9]{32}$",
        identifier="BusinessesEventIdentifier",
    )
)[BUSINESS_PATH]["POST"]
BUSINESS_PUBLISHED = schemathesis.openapi.from_dict(published_siblings_spec())[BUSINESS_PATH][
    "POST"
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """Serve one emulator from a background thread for the module's synchronous tests."""
    # The limit stays on (its headers are checked) but far above what the tests send.
    config = EmulatorConfig(api_key=KEY, rate_limit=1_000_000, now=NOW)
    loop = asyncio.new_event_loop()
    emulator = Emulator(config)
    loop.run_until_complete(emulator.start())
    thread = threading.Thread(target=loop.run_forever, name="emulator", daemon=True)
    thread.start()
    try:
        yield emulator.url
    finally:
        asyncio.run_coroutine_threadsafe(emulator.aclose(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    """One HTTP session, so that the cases reuse connections."""
    with requests.Session() as http:
        yield http


@EXAMPLES
@given(data=st.data())
def test_schema_valid_requests_get_200_and_pass_every_check(
    base_url: str, session: Any, data: st.DataObject
) -> None:
    """Any request the amended schema allows is answered 200 and conforms to the responses."""
    case = data.draw(STRICT.as_strategy(GenerationMode.POSITIVE))
    response = case.call(base_url=base_url, session=session, headers={"api_key": KEY})
    case.validate_response(response, headers={"api_key": KEY})
    assert response.status_code == 200, response.text


@EXAMPLES
@given(data=st.data())
def test_schema_invalid_requests_are_refused_and_pass_every_check(
    base_url: str, session: Any, data: st.DataObject
) -> None:
    """Any request the amended schema forbids is refused with a conforming 401 or 422."""
    case = data.draw(STRICT.as_strategy(GenerationMode.NEGATIVE))
    response = case.call(base_url=base_url, session=session, headers={"api_key": KEY})
    case.validate_response(response, headers={"api_key": KEY})
    # 401 when the mutation dropped or garbled the api_key header itself.
    assert response.status_code in (401, 422), response.text


def test_reference_example_request_passes_every_check(base_url: str, session: Any) -> None:
    """The reference page's example request conforms, checked case by case."""
    case = STRICT.Case(
        body={
            "event_types": ["prospect_changed_role", "prospect_changed_company"],
            "prospect_ids": [
                "20ae6cbf564ee683e66685e429844a5ff8ffc30f",
                "4c485f009d59e319dc039cdf3e935b85014e6a33",
                "fd4c46716295a2e4731417eee802a883280e4d57",
                "a7bbe0674c63338e62ae4c10751ae19da5723e5a",
            ],
            "timestamp_from": "2024-01-01T10:03:03.050Z",
        },
        headers={"api_key": KEY},
        media_type="application/json",
    )
    response = case.call(base_url=base_url, session=session)
    case.validate_response(response)
    assert response.status_code == 200


def test_published_spec_disagrees_only_on_free_text_timestamps(base_url: str, session: Any) -> None:
    """Against the unamended spec, every failure is a 422 on a timestamp that is not a date."""
    disagreements: list[dict[str, Any]] = []

    @EXAMPLES
    @given(case=PUBLISHED.as_strategy(GenerationMode.POSITIVE))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, headers={"api_key": KEY})
        try:
            case.validate_response(response, headers={"api_key": KEY})
        except FailureGroup:
            disagreements.append(response.json())

    run()
    assert disagreements, "the published spec should let free-text timestamps through"
    for answer in disagreements:
        locations = {tuple(item["loc"]) for item in answer["detail"]}
        assert locations <= {("body", "timestamp_from"), ("body", "timestamp_to")}, answer


@EXAMPLES
@given(data=st.data())
def test_schema_valid_business_requests_get_200_and_pass_every_check(
    base_url: str, session: Any, data: st.DataObject
) -> None:
    """Any business request the amended sibling schema allows is answered 200, conforming."""
    case = data.draw(BUSINESS_STRICT.as_strategy(GenerationMode.POSITIVE))
    response = case.call(base_url=base_url, session=session, headers={"api_key": KEY})
    case.validate_response(response, headers={"api_key": KEY})
    assert response.status_code == 200, response.text


@EXAMPLES
@given(data=st.data())
def test_schema_invalid_business_requests_are_refused_and_pass_every_check(
    base_url: str, session: Any, data: st.DataObject
) -> None:
    """Any business request the amended sibling schema forbids gets a conforming 401 or 422."""
    case = data.draw(BUSINESS_STRICT.as_strategy(GenerationMode.NEGATIVE))
    response = case.call(base_url=base_url, session=session, headers={"api_key": KEY})
    case.validate_response(response, headers={"api_key": KEY})
    assert response.status_code in (401, 422), response.text


def test_reference_business_example_request_passes_every_check(base_url: str, session: Any) -> None:
    """A request shaped like the business reference page's example conforms, with events."""
    case = BUSINESS_STRICT.Case(
        body={
            "business_ids": [f"{n:032x}" for n in range(1, 41)],
            "event_types": ["new_funding_round", "new_office", "hiring_in_sales_department"],
            "timestamp_from": "2024-10-01",
        },
        headers={"api_key": KEY},
        media_type="application/json",
    )
    response = case.call(base_url=base_url, session=session)
    case.validate_response(response)
    assert response.status_code == 200
    assert response.json()["output_events"], "40 businesses should have some events"


def test_published_business_spec_disagrees_only_on_free_text_timestamps(
    base_url: str, session: Any
) -> None:
    """Against the unamended sibling spec, every failure is a 422 on a free-text timestamp."""
    disagreements: list[dict[str, Any]] = []

    @EXAMPLES
    @given(case=BUSINESS_PUBLISHED.as_strategy(GenerationMode.POSITIVE))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, headers={"api_key": KEY})
        try:
            case.validate_response(response, headers={"api_key": KEY})
        except FailureGroup:
            disagreements.append(response.json())

    run()
    assert disagreements, "the published spec should let free-text timestamps through"
    for answer in disagreements:
        locations = {tuple(item["loc"]) for item in answer["detail"]}
        assert locations <= {("body", "timestamp_from"), ("body", "timestamp_to")}, answer
