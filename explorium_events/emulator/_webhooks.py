"""Webhooks, emulated: register, get, delete and check connectivity, and the delivery trigger.

Routes: ``POST /v1/webhooks``, ``GET``/``DELETE /v1/webhooks/{partner_id}``, ``POST
/v1/webhooks/check_connectivity`` (validated like the spec; it sends its simulated
events, signed), the trigger ``POST /_emulator/webhooks/deliver`` (one round of
``_delivery.deliver``; ``{"wait": false}`` answers 202 at once) and ``GET
/_emulator/push`` (the push counters). Secrets are issued unpadded, as the spec leaves
open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from ._business import BUSINESS_EVENT_TYPES
from ._delivery import (
    Delivery,
    DeliveryOptions,
    DeliveryReport,
    deliver,
    hex_id,
    is_loopback,
    iso,
    payload,
    send,
)
from ._enrollments import (
    PUSH_KEY,
    StoredWebhook,
    check_string,
    context,
    counted,
    json_response,
    not_found,
    owner_of,
    parse_object,
    unprocessable,
)
from ._validation import EVENT_TYPES as PROSPECT_EVENT_TYPES
from ._validation import ValidationDetail

__all__ = ["DELIVER_PATH", "PUSH_STATS_PATH", "SIMULATION_TYPES", "add_webhook_routes"]

DELIVER_PATH = "/_emulator/webhooks/deliver"
PUSH_STATS_PATH = "/_emulator/push"
# The spec's simulation event names: every event type, and two names of its own.
SIMULATION_TYPES = frozenset(
    {"award", "funding_round", *PROSPECT_EVENT_TYPES, *BUSINESS_EVENT_TYPES}
)
_DATE_TIME = r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
_encode = msgspec.json.Encoder().encode


def _check_webhook_body(raw: bytes) -> tuple[dict[str, Any] | None, list[ValidationDetail]]:
    details: list[ValidationDetail] = []
    body = parse_object(raw, frozenset({"partner_id", "webhook_url"}), details)
    if body is not None:
        check_string(body, "partner_id", details)
        check_string(body, "webhook_url", details)
    return (None if details else body), details


def _check_connectivity_body(raw: bytes) -> tuple[dict[str, Any] | None, list[ValidationDetail]]:
    details: list[ValidationDetail] = []
    body = parse_object(raw, frozenset({"partner_id", "simulation"}), details)
    if body is None:
        return None, details
    check_string(body, "partner_id", details)
    simulation = body.get("simulation", {})

    def problem(field: str, msg: str, type_: str) -> None:
        loc = ["body", "simulation", *([field] if field else [])]
        details.append({"loc": loc, "msg": msg, "type": type_})

    if not isinstance(simulation, dict):
        problem("", "Input should be a valid dictionary", "dict_type")
        return None, details
    if "event_name" in simulation and simulation["event_name"] not in SIMULATION_TYPES:
        problem("event_name", "Input should be a valid enum member", "enum")
    count = simulation.get("number_of_events", 1)
    if isinstance(count, float) and count.is_integer():
        count = simulation["number_of_events"] = int(count)  # 3.0 is an integer in JSON Schema
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10:
        problem("number_of_events", "Input should be an integer from 1 to 10", "int_range")
    when = simulation.get("event_time")
    if "event_time" in simulation and not (
        isinstance(when, str) and re.fullmatch(_DATE_TIME, when)
    ):
        problem("event_time", "Input should be a valid datetime", "datetime_parsing")
    return (None if details else body), details


def _webhook_answer(webhook: StoredWebhook) -> dict[str, Any]:
    return {
        "response_context": context(),
        "created_at": webhook.created_at,
        "last_modified_time": webhook.modified_at,
        "webhook_url": webhook.url,
        "webhook_secret": webhook.secret,
    }


Handler = Callable[[web.Request], Awaitable[web.Response]]


async def _register(request: web.Request) -> web.Response:
    push = request.app[PUSH_KEY]
    refusal = await push.gate.authenticate(request)
    if refusal is not None:
        return refusal
    body, details = _check_webhook_body(await request.read())
    if body is None:
        return unprocessable(details)
    refusal = await push.gate.admit(request)
    if refusal is not None:
        return refusal
    now = iso(push.clock())
    earlier = push.webhooks.get(body["partner_id"])
    # One webhook per partner; registering again replaces the URL and issues a new secret.
    webhook = StoredWebhook(
        partner_id=body["partner_id"],
        url=body["webhook_url"],
        secret=secrets.token_urlsafe(32),
        created_at=earlier.created_at if earlier is not None else now,
        modified_at=now,
        owner=owner_of(request),
    )
    push.webhooks[webhook.partner_id] = webhook
    return json_response(200, _webhook_answer(webhook))


async def _lookup(request: web.Request) -> tuple[StoredWebhook | None, web.Response | None]:
    push = request.app[PUSH_KEY]
    refusal = await push.gate.authenticate(request) or await push.gate.admit(request)
    if refusal is not None:
        return None, refusal
    partner_id = request.match_info["partner_id"]
    webhook = push.webhooks.get(partner_id)
    if webhook is None or webhook.owner != owner_of(request):
        return None, not_found(f"no webhook for partner {partner_id!r}")
    return webhook, None


async def _get(request: web.Request) -> web.Response:
    webhook, refusal = await _lookup(request)
    if webhook is None:
        assert refusal is not None
        return refusal
    return json_response(200, _webhook_answer(webhook))


async def _delete(request: web.Request) -> web.Response:
    webhook, refusal = await _lookup(request)
    if webhook is None:
        assert refusal is not None
        return refusal
    del request.app[PUSH_KEY].webhooks[webhook.partner_id]
    return json_response(200, {"response_context": context()})


async def _check_connectivity(request: web.Request) -> web.Response:
    push = request.app[PUSH_KEY]
    refusal = await push.gate.authenticate(request)
    if refusal is not None:
        return refusal
    body, details = _check_connectivity_body(await request.read())
    if body is None:
        return unprocessable(details)
    refusal = await push.gate.admit(request)
    if refusal is not None:
        return refusal
    webhook = push.webhooks.get(body["partner_id"])
    if webhook is None or webhook.owner != owner_of(request):
        return not_found(f"no webhook for partner {body['partner_id']!r}")
    simulation = body.get("simulation") or {}
    name = simulation.get("event_name", "new_office")
    prospect = name.startswith("prospect_")
    failures: list[str] = []
    async with aiohttp.ClientSession() as session:
        for index in range(simulation.get("number_of_events", 1)):
            push.stats.simulated += 1
            event_id = hex_id(push.seed, "simulation", push.stats.simulated)
            entity_id = hex_id(
                push.seed, "entity", push.stats.simulated, size=20 if prospect else 16
            )
            simulated = msgspec.json.decode(payload(
                push, webhook=webhook, event_id=event_id, name=name, entity_id=entity_id,
                entity_type="prospect" if prospect else "business", key="connectivity-check",
                index=index,
            ))  # fmt: skip
            if "event_time" in simulation and isinstance(simulated["data"], dict):
                simulated["data"]["event_time"] = simulation["event_time"]
            delivery = Delivery(
                event_id, webhook.url, webhook.secret, _encode(simulated), False, False
            )
            if not is_loopback(webhook.url):
                push.stats.refused_urls += 1
                failures.append("the emulator delivers to loopback URLs only")
                break
            status = await send(session, push, delivery, bad=False, seconds=10.0)
            if status is None or not 200 <= status < 300:
                failures.append("no answer" if status is None else f"HTTP {status}")
    if failures:
        return json_response(
            400,
            {
                "details": f"Client webhook failed on: {failures[0]}",
                "correlation_id": uuid.uuid4().hex,
            },
        )
    return json_response(200, {"response_context": context()})


async def _deliver_route(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        fields = msgspec.json.decode(raw) if raw.strip() else {}
        wait = bool(fields.pop("wait", True)) if isinstance(fields, dict) else True
        options = DeliveryOptions(**fields)
    except (msgspec.DecodeError, TypeError, ValueError) as exc:
        return json_response(400, {"details": f"bad delivery options: {exc}"})
    if not wait:
        task = asyncio.create_task(deliver(request.app, options))
        request.app[_TASKS_KEY].tasks.add(task)
        task.add_done_callback(request.app[_TASKS_KEY].tasks.discard)
        return json_response(202, {"queued": True})
    report = await deliver(request.app, options)
    return json_response(200, report.as_dict())


async def _push_stats(request: web.Request) -> web.Response:
    return json_response(200, request.app[PUSH_KEY].stats.as_dict())


@dataclasses.dataclass(eq=False)
class _Background:
    """Deliveries started with ``"wait": false``: cancelled when the app shuts down."""

    tasks: set[asyncio.Task[DeliveryReport]] = dataclasses.field(default_factory=set)


_TASKS_KEY = web.AppKey("explorium_events.emulator.push_tasks", _Background)


async def _cancel_deliveries(app: web.Application) -> None:
    tasks = list(app[_TASKS_KEY].tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def add_webhook_routes(app: web.Application) -> None:
    """Serve the webhook endpoints, the delivery trigger and the push counters."""
    app[_TASKS_KEY] = _Background()
    app.on_shutdown.append(_cancel_deliveries)
    app.router.add_post("/v1/webhooks", counted(_register))
    app.router.add_post("/v1/webhooks/check_connectivity", counted(_check_connectivity))
    app.router.add_get("/v1/webhooks/{partner_id}", counted(_get))
    app.router.add_delete("/v1/webhooks/{partner_id}", counted(_delete))
    app.router.add_post(DELIVER_PATH, _deliver_route)
    app.router.add_get(PUSH_STATS_PATH, _push_stats)
