"""Schemathesis drives the emulator's enrollment and webhook endpoints with the published spec.

``openapi-siblings.json`` is a verbatim copy of the spec of these endpoints. The spec
documents only 200 and 422; the strict runs use a copy amended in memory with what the
emulator also answers, each backed by FACTS-siblings: 401 for a missing or wrong key,
and 404 for an enrollment id or partner that the caller does not have (the spec says
nothing of that case; the FastAPI convention is 404). A connectivity check whose
receiver fails answers 400 "Client webhook failed on: ..." (error-handling.mdx); the
positive run meets it for partners registered with a URL that does not answer, and
checks its text instead of the schema.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorium_events.emulator import Emulator, EmulatorConfig

schemathesis = pytest.importorskip("schemathesis", reason="needs the `test` extra (schemathesis)")
requests = pytest.importorskip("requests")
GenerationMode = schemathesis.GenerationMode

SPEC_PATH = Path(__file__).with_name("openapi-siblings.json")
KEY = "schema-test-key"
EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
OPERATIONS = [
    ("/v1/prospects/events/enrollments", "GET"),
    ("/v1/prospects/events/enrollments", "POST"),
    ("/v1/prospects/events/enrollments", "PATCH"),
    ("/v1/prospects/events/enrollments", "DELETE"),
    ("/v1/businesses/events/enrollments", "GET"),
    ("/v1/businesses/events/enrollments", "POST"),
    ("/v1/businesses/events/enrollments", "PATCH"),
    ("/v1/businesses/events/enrollments", "DELETE"),
    ("/v1/webhooks", "POST"),
    ("/v1/webhooks/{partner_id}", "GET"),
    ("/v1/webhooks/{partner_id}", "DELETE"),
    ("/v1/webhooks/check_connectivity", "POST"),
]
WITH_BODY = [(path, method) for path, method in OPERATIONS if method not in ("GET",)]
WITH_BODY.remove(("/v1/webhooks/{partner_id}", "DELETE"))


def amended_spec() -> dict[str, Any]:
    """The published spec plus the 401 and 404 answers of the module docstring."""
    spec: dict[str, Any] = copy.deepcopy(json.loads(SPEC_PATH.read_text()))
    error = {
        "type": "object",
        "required": ["details"],
        "properties": {"details": {"type": "string"}, "correlation_id": {"type": "string"}},
    }
    for path, method in OPERATIONS:
        responses = spec["paths"][path][method.lower()]["responses"]
        content = {"application/json": {"schema": error}}
        responses["401"] = {"description": "Missing or invalid API key", "content": content}
        responses["404"] = {"description": "No such enrollment or webhook", "content": content}
    return spec


SCHEMA = schemathesis.openapi.from_dict(amended_spec())


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """One emulator in a background thread for the module's synchronous tests."""
    loop = asyncio.new_event_loop()
    emulator = Emulator(EmulatorConfig(api_key=KEY, rate_limit=1_000_000))
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
    with requests.Session() as http:
        yield http


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_schema_valid_requests_are_answered_and_conform(
    base_url: str, session: Any, path: str, method: str
) -> None:
    """Any request the spec allows gets 200 (or 404 for an unknown id) that conforms."""
    operation = SCHEMA[path][method]

    @EXAMPLES
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(GenerationMode.POSITIVE))
        response = case.call(base_url=base_url, session=session, headers={"api_key": KEY})
        if response.status_code == 400 and path.endswith("check_connectivity"):
            assert response.json()["details"].startswith("Client webhook failed on: ")
            return
        case.validate_response(response, headers={"api_key": KEY})
        assert response.status_code in (200, 404), response.text

    run()


@pytest.mark.parametrize(("path", "method"), WITH_BODY)
def test_schema_invalid_requests_are_refused_and_conform(
    base_url: str, session: Any, path: str, method: str
) -> None:
    """Any body the spec forbids is refused with a conforming 422 (401 for a garbled key)."""
    operation = SCHEMA[path][method]

    @EXAMPLES
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(GenerationMode.NEGATIVE))
        response = case.call(base_url=base_url, session=session, headers={"api_key": KEY})
        case.validate_response(response, headers={"api_key": KEY})
        assert response.status_code in (401, 404, 422), response.text

    run()


def test_a_registered_webhook_and_an_enrollment_conform_end_to_end(
    base_url: str, session: Any
) -> None:
    """The documented examples: add, list, update, delete; register, get, delete."""
    headers = {"api_key": KEY}
    prospect = "a" * 40
    enroll = SCHEMA["/v1/prospects/events/enrollments"]
    added = enroll["POST"].Case(
        body={"enrollment_key": "crm-2026", "event_types": ["prospect_changed_role"],
              "prospect_ids": [prospect]},
        headers=headers, media_type="application/json",
    )  # fmt: skip
    response = added.call(base_url=base_url, session=session)
    added.validate_response(response)
    enrollment_id = response.json()["enrollment_id"]
    for method, body in (
        ("GET", None),
        ("PATCH", {"enrollment_id": enrollment_id, "enrollment_key": "crm-2027",
                   "event_types": ["prospect_changed_company"], "prospect_ids": [prospect]}),
        ("DELETE", {"enrollment_id": enrollment_id}),
    ):  # fmt: skip
        case = enroll[method].Case(body=body, headers=headers, media_type="application/json")
        response = case.call(base_url=base_url, session=session)
        case.validate_response(response)
        assert response.status_code == 200, response.text
    register = SCHEMA["/v1/webhooks"]["POST"].Case(
        body={"partner_id": "ExpTest", "webhook_url": "http://127.0.0.1:1/hook"},
        headers=headers, media_type="application/json",
    )  # fmt: skip
    response = register.call(base_url=base_url, session=session)
    register.validate_response(response)
    for method in ("GET", "DELETE"):
        case = SCHEMA["/v1/webhooks/{partner_id}"][method].Case(
            path_parameters={"partner_id": "ExpTest"}, headers=headers
        )
        response = case.call(base_url=base_url, session=session)
        case.validate_response(response)
        assert response.status_code == 200, response.text
