"""client.enrollments and client.webhooks: chunked, rate-limited, retried, accounted, idempotent."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from explorium_events import (
    BadRequestError,
    BusinessEventType,
    ConfigurationError,
    EventsClient,
    InvalidBusinessIdError,
    InvalidProspectIdError,
    MalformedResponse,
    RetryPolicy,
    WebhookSecret,
    WebhookSimulation,
)
from explorium_events.emulator import Emulator, EmulatorConfig
from tests.conftest import TEST_KEY, FakeClock, prospect_id

ROLE = ["prospect_changed_role"]


def business_id(number: int) -> str:
    return hashlib.md5(f"business-{number}".encode()).hexdigest()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(rate_limit=None)) as emu:
        yield emu


def client_for(url: str, **settings: Any) -> EventsClient:
    settings.setdefault("retry", RetryPolicy(initial=0.0, cap=0.0, max_attempts=3))
    return EventsClient(api_key=TEST_KEY, base_url=url, **settings)


async def test_add_enrolls_every_id_in_calls_of_at_most_20(emulator: Emulator) -> None:
    """45 IDs: three POSTs of 20, 20 and 5, and every ID ends enrolled under its batch's id."""
    ids = [prospect_id(n) for n in range(45)]
    async with client_for(emulator.url) as client:
        result = await client.enrollments.add(ids, key="crm-test", event_types=ROLE)
    assert sorted(emulator.push.enroll_calls) == [5, 20, 20]
    assert sorted(result.enrolled_ids) == sorted(ids)
    assert len(set(result.enrollment_ids)) == 3
    assert result.ok and not result.failed and not result.invalid and not result.already_enrolled


async def test_running_the_same_add_again_sends_no_enrollment(emulator: Emulator) -> None:
    """The second run lists first, finds every ID enrolled, and creates nothing."""
    ids = [prospect_id(n) for n in range(30)]
    async with client_for(emulator.url) as client:
        await client.enrollments.add(ids, key="crm-test", event_types=ROLE)
        again = await client.enrollments.add(ids, key="crm-test", event_types=ROLE)
        listed = await client.enrollments.list()
    assert emulator.push.enroll_calls == [20, 10] or sorted(emulator.push.enroll_calls) == [10, 20]
    assert sorted(again.already_enrolled) == sorted(ids) and not again.enrolled
    assert sum(len(item.ids) for item in listed) == 30


async def test_a_new_event_type_or_key_enrolls_again(emulator: Emulator) -> None:
    """IDs enrolled for role changes only are enrolled again for company changes too."""
    ids = [prospect_id(n) for n in range(3)]
    async with client_for(emulator.url) as client:
        await client.enrollments.add(ids, key="crm-test", event_types=ROLE)
        wider = await client.enrollments.add(
            ids, key="crm-test", event_types=["prospect_changed_role", "prospect_changed_company"]
        )
    assert sorted(wider.enrolled_ids) == sorted(ids)


async def test_invalid_ids_are_refused_before_any_request_unless_skipped(
    emulator: Emulator,
) -> None:
    """An invalid ID raises before anything is sent; with skip_invalid it is listed instead."""
    ids = [prospect_id(1), "not-an-id", prospect_id(1).upper(), prospect_id(2)]
    async with client_for(emulator.url) as client:
        with pytest.raises(InvalidProspectIdError, match="not-an-id"):
            await client.enrollments.add(ids, key="crm-test", event_types=ROLE)
        assert emulator.push.requests == {}
        result = await client.enrollments.add(
            ids, key="crm-test", event_types=ROLE, skip_invalid=True
        )
    assert [item.value for item in result.invalid] == ["not-an-id"]
    assert sorted(result.enrolled_ids) == sorted([prospect_id(1), prospect_id(2)])


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"key": "abc"}, "at least 4"),
        ({"key": "crm-test", "event_types": ["new_office"]}, "not a prospect event type"),
        ({"key": "crm-test", "event_types": []}, "at least one"),
        ({"key": "crm-test", "entity": "person"}, "'prospect' and 'business'"),
    ],
)
async def test_bad_settings_are_configuration_errors(
    emulator: Emulator, settings: dict[str, Any], match: str
) -> None:
    """A short key, a foreign event type, no type, an unknown entity: named, before any I/O."""
    async with client_for(emulator.url) as client:
        with pytest.raises(ConfigurationError, match=match):
            await client.enrollments.add([prospect_id(1)], **settings)
    assert emulator.push.requests == {}


async def test_businesses_enroll_with_their_own_id_rule(emulator: Emulator) -> None:
    """entity="business": 32-hex IDs go to the business endpoint; a prospect ID is invalid."""
    ids = [business_id(n) for n in range(25)]
    async with client_for(emulator.url) as client:
        result = await client.enrollments.add(
            [*ids, prospect_id(1)],
            key="crm-test",
            event_types=["new_funding_round"],
            entity="business",
            skip_invalid=True,
        )
        listed = await client.enrollments.list(entity="business")
    assert sorted(result.enrolled_ids) == sorted(ids)
    assert [item.value for item in result.invalid] == [prospect_id(1)]
    assert sorted(i for item in listed for i in item.ids) == sorted(ids)
    assert emulator.push.requests["POST /v1/businesses/events/enrollments"] == 2


async def test_business_ids_follow_the_business_rule_and_enum(emulator: Emulator) -> None:
    """An invalid business ID is an InvalidBusinessIdError naming the 32-character rule;
    BusinessEventType members are their names; all 39 types are the default."""
    async with client_for(emulator.url) as client:
        with pytest.raises(InvalidBusinessIdError, match="32 hexadecimal") as caught:
            await client.enrollments.add([prospect_id(1)], key="crm-test", entity="business")
        assert caught.value.invalid == (prospect_id(1),)
        chosen = await client.enrollments.add(
            [business_id(1)],
            key="crm-test",
            event_types=[BusinessEventType.NEW_OFFICE, "new_product"],
            entity="business",
        )
        every = await client.enrollments.add([business_id(2)], key="crm-all", entity="business")
    assert chosen.event_types == ("new_office", "new_product")
    assert every.event_types == tuple(kind.value for kind in BusinessEventType)
    assert len(every.event_types) == 39


async def test_update_replaces_and_delete_key_removes_every_enrollment(emulator: Emulator) -> None:
    """PATCH sends the whole enrollment; delete_key leaves nothing behind under the key."""
    async with client_for(emulator.url) as client:
        added = await client.enrollments.add(
            [prospect_id(n) for n in range(25)], key="crm-test", event_types=ROLE
        )
        first = added.enrollment_ids[0]
        await client.enrollments.update(first, [prospect_id(99)], key="crm-test", event_types=ROLE)
        listed = {item.enrollment_id: item for item in await client.enrollments.list()}
        assert listed[first].ids == (prospect_id(99),)
        with pytest.raises(ConfigurationError, match="1 to 20"):
            await client.enrollments.update(
                first, [prospect_id(n) for n in range(21)], key="crm-test", event_types=ROLE
            )
        deleted = await client.enrollments.delete_key("crm-test")
        assert sorted(deleted) == sorted(added.enrollment_ids)
        assert await client.enrollments.list() == []
        with pytest.raises(BadRequestError) as caught:
            await client.enrollments.delete(first)
    assert caught.value.status == 404


Handler = Callable[[dict[str, Any], int], web.StreamResponse]


async def serve(handler: Handler) -> tuple[TestServer, list[dict[str, Any]]]:
    """A loopback server: GET lists nothing; each POST body goes to ``handler`` with its number."""
    seen: list[dict[str, Any]] = []

    async def enroll(request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            return web.json_response({"response_context": {}, "enrollments": []})
        body = await request.json()
        seen.append(body)
        return handler(body, len(seen))

    app = web.Application()
    app.router.add_route("*", "/v1/prospects/events/enrollments", enroll)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server, seen


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def _ok(body: dict[str, Any], number: int) -> web.Response:
    return web.json_response(
        {"response_context": {"correlation_id": f"c{number}"}, "enrollment_key": "crm-test",
         "enrollment_id": f"en_{number}"}
    )  # fmt: skip


async def test_a_failing_batch_is_retried_then_reported_with_status_and_correlation_id() -> None:
    """A 503 is retried; a batch refused with 422 ends in failed, the other batches enrolled."""
    refused = prospect_id(25)

    def handler(body: dict[str, Any], number: int) -> web.StreamResponse:
        if number == 1:
            return web.json_response({"error": "busy"}, status=503)
        if refused in body["prospect_ids"]:
            return web.json_response(
                {"detail": [{"loc": ["body", "prospect_ids", 0], "msg": "nope"}],
                 "correlation_id": "corr-422"}, status=422,
            )  # fmt: skip
        return _ok(body, number)

    server, _ = await serve(handler)
    try:
        async with client_for(url_of(server), max_concurrency=1) as client:
            result = await client.enrollments.add(
                [prospect_id(n) for n in range(50)], key="crm-test", event_types=ROLE
            )
    finally:
        await server.close()
    assert len(result.failed) == 1
    failure = result.failed[0]
    assert refused in failure.prospect_ids and failure.status == 422
    assert failure.correlation_id == "corr-422" and failure.attempts == 1
    assert len(result.enrolled_ids) == 30 and result.stats.retries == 1
    assert not result.ok
    assert set(result.enrolled_ids) | set(result.failed_ids) == {prospect_id(n) for n in range(50)}


async def test_a_rejected_key_fails_every_batch_after_one_request() -> None:
    """401: the key is rejected once, and no later batch is sent with it."""
    server, seen = await serve(lambda body, number: web.json_response({"error": "no"}, status=401))
    try:
        async with client_for(url_of(server), max_concurrency=1) as client:
            result = await client.enrollments.add(
                [prospect_id(n) for n in range(100)], key="crm-test", event_types=ROLE
            )
    finally:
        await server.close()
    assert len(seen) == 1
    assert len(result.failed_ids) == 100 and {f.status for f in result.failed} == {401}


async def test_enrollment_calls_share_the_clients_rate_limit() -> None:
    """At 2 requests per 60 s, the 5 POSTs (and the list before them) wait for the window."""
    clock = FakeClock()
    server, seen = await serve(_ok)
    try:
        async with client_for(
            url_of(server), rate_limit=2, rate_window=60.0, clock=clock
        ) as client:
            result = await client.enrollments.add(
                [prospect_id(n) for n in range(100)], key="crm-test", event_types=ROLE
            )
    finally:
        await server.close()
    assert len(seen) == 5 and result.ok
    assert clock.now >= 120.0  # 6 requests at 2 per minute: two full windows waited


async def test_webhook_register_get_delete_keep_the_secret_hidden(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The secret comes back as a WebhookSecret: repr shows ****, reveal() the text."""
    caplog.set_level(logging.DEBUG)
    async with client_for(emulator.url) as client:
        hook = await client.webhooks.register("partner-1", "http://127.0.0.1:1/hook")
        shown = await client.webhooks.get("partner-1")
        await client.webhooks.delete("partner-1")
        with pytest.raises(BadRequestError) as caught:
            await client.webhooks.get("partner-1")
    secret = hook.secret.reveal()
    assert isinstance(hook.secret, WebhookSecret) and len(secret) >= 40
    assert shown.secret == hook.secret and shown.url == "http://127.0.0.1:1/hook"
    for text in (repr(hook), str(hook), f"{hook.secret}", caplog.text, str(caught.value)):
        assert secret not in text
    assert caught.value.status == 404


async def test_a_malformed_webhook_answer_never_quotes_its_body() -> None:
    """A 200 that is not the documented shape fails without quoting the secret it carries."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"webhook_secret": "s3cr3t-s3cr3t-s3cr3t", "oops": True})

    app = web.Application()
    app.router.add_post("/v1/webhooks", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with client_for(url_of(server)) as client:
            with pytest.raises(MalformedResponse) as caught:
                await client.webhooks.register("p", "http://127.0.0.1:1/")
    finally:
        await server.close()
    assert "s3cr3t" not in str(caught.value) and caught.value.__cause__ is None


async def test_check_connectivity_validates_the_simulation_count(emulator: Emulator) -> None:
    """number_of_events outside 1 to 10 is a ConfigurationError before any request."""
    async with client_for(emulator.url) as client:
        with pytest.raises(ConfigurationError, match="1 to 10"):
            await client.webhooks.check_connectivity(
                "p", simulation=WebhookSimulation(number_of_events=11)
            )
        with pytest.raises(BadRequestError):  # no webhook registered: 404
            await client.webhooks.check_connectivity("p")
