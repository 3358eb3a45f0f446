"""Event enrollments, emulated: GET, POST, PATCH and DELETE of the two enrollment endpoints.

The endpoints: ``/v1/prospects/events/enrollments`` and ``/v1/businesses/events/enrollments``.

Bodies are validated like the spec (``openapi-siblings.json``): ``additionalProperties:
false``, ``enrollment_key`` of 4 characters or more, 1 to 20 IDs of the entity's
pattern, at least one event type of the entity; every problem is a FastAPI-style 422
detail. Enrollments belong to the key that made them (the key decides the partner,
FACTS-siblings 2 item 6): each key lists, updates and deletes only its own. The pages'
URL ``/v1/prospects/enrollments`` (item 1) is served too.

The push state (enrollments, webhooks, counters) lives here, in ``app[PUSH_KEY]``; the
webhook routes and the delivery are in ``_webhooks``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from ._business import BUSINESS_EVENT_TYPES
from ._clock import EmulatorClock
from ._validation import EVENT_TYPES as PROSPECT_EVENT_TYPES
from ._validation import ValidationDetail
from ._validation import _detail as detail
from ._validation import parse_object as parse_json_object

__all__ = [
    "PUSH_KEY",
    "Gate",
    "PushState",
    "PushStats",
    "add_enrollment_routes",
    "counted",
    "owner_of",
]

MAX_ENROLL_IDS = 20
_encode = msgspec.json.Encoder().encode


@dataclasses.dataclass(frozen=True, slots=True)
class _Entity:
    name: str
    id_field: str
    pattern: str
    event_types: tuple[str, ...]

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern.strip("^$") + r"\Z")


_PROSPECT = _Entity("prospect", "prospect_ids", "^[a-f0-9]{40}$", PROSPECT_EVENT_TYPES)
_BUSINESS = _Entity("business", "business_ids", "^[a-f0-9]{32}$", BUSINESS_EVENT_TYPES)


@dataclasses.dataclass(kw_only=True, slots=True)
class StoredEnrollment:
    """One enrollment as the emulator holds it."""

    enrollment_id: str
    enrollment_key: str
    event_types: tuple[str, ...]
    ids: tuple[str, ...]
    entity: str
    owner: str

    def listed(self) -> dict[str, Any]:
        field = _PROSPECT.id_field if self.entity == "prospect" else _BUSINESS.id_field
        return {
            "enrollment_id": self.enrollment_id,
            "enrollment_key": self.enrollment_key,
            "event_types": list(self.event_types),
            field: list(self.ids),
        }


@dataclasses.dataclass(kw_only=True, eq=False)
class StoredWebhook:
    """One partner's webhook: its URL, secret, times and the key that registered it."""

    partner_id: str
    url: str
    secret: str = dataclasses.field(repr=False)
    created_at: str
    modified_at: str
    owner: str


@dataclasses.dataclass(kw_only=True, eq=False)
class PushStats:
    """Counters of the push side; ``as_dict()`` is what ``GET /_emulator/push`` answers.

    ``enroll_calls`` holds the number of IDs of each accepted enrollment POST, in order.
    ``delivered`` maps each acknowledged event_id to how many of its sends were answered
    2xx (more than 1 when a duplicate was sent); ``generated`` lists every event_id made.
    """

    requests: dict[str, int] = dataclasses.field(default_factory=dict)
    enroll_calls: list[int] = dataclasses.field(default_factory=list)
    generated: list[str] = dataclasses.field(default_factory=list)
    delivered: dict[str, int] = dataclasses.field(default_factory=dict)
    attempts: int = 0
    redeliveries: int = 0
    duplicates_sent: int = 0
    bad_signatures_sent: int = 0
    gave_up: list[str] = dataclasses.field(default_factory=list)
    refused_urls: int = 0
    simulated: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "enroll_calls": list(self.enroll_calls),
            "generated": len(self.generated),
            "delivered": len(self.delivered),
            "attempts": self.attempts,
            "redeliveries": self.redeliveries,
            "duplicates_sent": self.duplicates_sent,
            "bad_signatures_sent": self.bad_signatures_sent,
            "gave_up": len(self.gave_up),
            "refused_urls": self.refused_urls,
            "simulated": self.simulated,
        }


Check = Callable[[web.Request], Awaitable[web.Response | None]]


@dataclasses.dataclass(frozen=True, slots=True)
class Gate:
    """The app's checks, shared by every route: the key (401), then the rate limit (429).

    ``authenticate`` runs before validation, ``admit`` after it (a refused body uses no
    slot of the window), as for the events endpoint. Each returns a refusal or None.
    """

    authenticate: Check
    admit: Check


@dataclasses.dataclass(kw_only=True, eq=False)
class PushState:
    """Everything push: enrollments by id, webhooks by partner, counters, the delivery round."""

    seed: int
    clock: Callable[[], float]  # the wall clock: X-Timestamp, webhook times
    events_clock: EmulatorClock  # the app's clock: when pushed events happen, once moved
    gate: Gate
    enrollments: dict[str, StoredEnrollment] = dataclasses.field(default_factory=dict)
    webhooks: dict[str, StoredWebhook] = dataclasses.field(default_factory=dict)
    stats: PushStats = dataclasses.field(default_factory=PushStats)
    next_id: int = 0
    rounds: int = 0

    def new_enrollment_id(self) -> str:
        self.next_id += 1
        digest = hashlib.blake2b(f"{self.seed}|en|{self.next_id}".encode(), digest_size=4)
        return f"en_{digest.hexdigest()}"


PUSH_KEY = web.AppKey("explorium_events.emulator.push", PushState)


def owner_of(request: web.Request) -> str:
    """Whose enrollments and webhooks these are: a digest of the api_key, never the key."""
    key = request.headers.get("api_key", "").strip()
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def json_response(status: int, payload: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=_encode(payload), content_type="application/json")


def context() -> dict[str, Any]:
    """A ``response_context`` as the spec requires it."""
    return {
        "correlation_id": uuid.uuid4().hex,
        "request_status": "success",
        "time_took_in_seconds": 0.0,
    }


def not_found(details: str) -> web.Response:
    return json_response(404, {"details": details, "correlation_id": uuid.uuid4().hex})


def unprocessable(details: list[ValidationDetail]) -> web.Response:
    return json_response(422, {"detail": details})


def parse_object(
    raw: bytes, fields: frozenset[str], details: list[ValidationDetail]
) -> dict[str, Any] | None:
    """The JSON object of a body; problems (not JSON, not an object, extra keys) added.

    ``request_context``, an object, is allowed beside ``fields`` in every body.
    """
    body, problems = parse_json_object(raw, fields | {"request_context"})
    details.extend(problems)
    if body is None:
        return None
    request_context = body.get("request_context")
    if request_context is not None and not isinstance(request_context, dict):
        details.append(
            detail(["request_context"], "Input should be a valid dictionary", "dict_type")
        )
    return body


def check_string(
    body: dict[str, Any], field: str, details: list[ValidationDetail], *, min_length: int = 0
) -> str | None:
    if field not in body:
        details.append(detail([field], "Field required", "missing"))
        return None
    value = body[field]
    if not isinstance(value, str):
        details.append(detail([field], "Input should be a valid string", "string_type"))
        return None
    if len(value) < min_length:
        details.append(
            detail(
                [field],
                f"String should have at least {min_length} characters",
                "string_too_short",
            )
        )
        return None
    return value


def _check_list(
    body: dict[str, Any], field: str, details: list[ValidationDetail], *, most: int | None
) -> list[Any] | None:
    if field not in body:
        details.append(detail([field], "Field required", "missing"))
        return None
    value = body[field]
    if not isinstance(value, list):
        details.append(detail([field], "Input should be a valid list", "list_type"))
        return None
    if not value:
        details.append(
            detail([field], "List should have at least 1 item after validation, not 0", "too_short")
        )
    if most is not None and len(value) > most:
        details.append(
            detail(
                [field],
                f"List should have at most {most} items after validation, not {len(value)}",
                "too_long",
            )
        )
    return value


def _check_enrollment(
    raw: bytes, entity: _Entity, *, with_id: bool
) -> tuple[dict[str, Any] | None, list[ValidationDetail]]:
    details: list[ValidationDetail] = []
    fields = {"enrollment_key", "event_types", entity.id_field} | (
        {"enrollment_id"} if with_id else set()
    )
    body = parse_object(raw, frozenset(fields), details)
    if body is None:
        return None, details
    if with_id:
        check_string(body, "enrollment_id", details)
    check_string(body, "enrollment_key", details, min_length=4)
    types = _check_list(body, "event_types", details, most=None) or []
    for index, item in enumerate(types):
        if item not in entity.event_types:
            details.append(
                detail(["event_types", index], "Input should be a valid enum member", "enum")
            )
    ids = _check_list(body, entity.id_field, details, most=MAX_ENROLL_IDS) or []
    pattern = entity.regex
    for index, item in enumerate(ids):
        if not isinstance(item, str):
            details.append(
                detail([entity.id_field, index], "Input should be a valid string", "string_type")
            )
        elif not pattern.match(item):
            details.append(
                detail(
                    [entity.id_field, index],
                    f"String should match pattern '{entity.pattern}'",
                    "string_pattern_mismatch",
                )
            )
    return (None if details else body), details


def _handlers(entity: _Entity) -> dict[str, Callable[[web.Request], Awaitable[web.Response]]]:
    async def listing(request: web.Request) -> web.Response:
        push = request.app[PUSH_KEY]
        refusal = await push.gate.authenticate(request) or await push.gate.admit(request)
        if refusal is not None:
            return refusal
        owner = owner_of(request)
        mine = [
            stored.listed()
            for stored in push.enrollments.values()
            if stored.owner == owner and stored.entity == entity.name
        ]
        return json_response(200, {"response_context": context(), "enrollments": mine})

    async def add_or_update(request: web.Request) -> web.Response:
        push = request.app[PUSH_KEY]
        refusal = await push.gate.authenticate(request)
        if refusal is not None:
            return refusal
        updating = request.method == "PATCH"
        body, details = _check_enrollment(await request.read(), entity, with_id=updating)
        if body is None:
            return unprocessable(details)
        refusal = await push.gate.admit(request)
        if refusal is not None:
            return refusal
        owner = owner_of(request)
        if updating:
            stored = push.enrollments.get(body["enrollment_id"])
            if stored is None or stored.owner != owner or stored.entity != entity.name:
                return not_found(f"no enrollment {body['enrollment_id']!r}")
            enrollment_id = stored.enrollment_id
        else:
            enrollment_id = push.new_enrollment_id()
            push.stats.enroll_calls.append(len(body[entity.id_field]))
        # Replacement, not merge: every field is required (FACTS-siblings 2).
        push.enrollments[enrollment_id] = StoredEnrollment(
            enrollment_id=enrollment_id,
            enrollment_key=body["enrollment_key"],
            event_types=tuple(dict.fromkeys(body["event_types"])),
            ids=tuple(dict.fromkeys(body[entity.id_field])),
            entity=entity.name,
            owner=owner,
        )
        return json_response(
            200,
            {
                "response_context": context(),
                "enrollment_key": body["enrollment_key"],
                "enrollment_id": enrollment_id,
            },
        )

    async def delete(request: web.Request) -> web.Response:
        push = request.app[PUSH_KEY]
        refusal = await push.gate.authenticate(request)
        if refusal is not None:
            return refusal
        details: list[ValidationDetail] = []
        body = parse_object(await request.read(), frozenset({"enrollment_id"}), details)
        if body is not None:
            check_string(body, "enrollment_id", details)
        if body is None or details:
            return unprocessable(details)
        refusal = await push.gate.admit(request)
        if refusal is not None:
            return refusal
        stored = push.enrollments.get(body["enrollment_id"])
        if stored is None or stored.owner != owner_of(request) or stored.entity != entity.name:
            return not_found(f"no enrollment {body['enrollment_id']!r}")
        del push.enrollments[stored.enrollment_id]
        return json_response(200, {"response_context": context(), "status": "success"})

    return {"GET": listing, "POST": add_or_update, "PATCH": add_or_update, "DELETE": delete}


def counted(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``handler``, counting each request by method and path in ``PushStats.requests``."""

    async def count_then_handle(request: web.Request) -> web.Response:
        stats = request.app[PUSH_KEY].stats
        route = f"{request.method} {request.path}"
        stats.requests[route] = stats.requests.get(route, 0) + 1
        return await handler(request)

    return count_then_handle


def add_enrollment_routes(app: web.Application, state: PushState) -> None:
    """Serve the enrollment endpoints of both entities (and the pages' prospect URL)."""
    app[PUSH_KEY] = state
    paths = {
        "/v1/prospects/events/enrollments": _PROSPECT,
        "/v1/prospects/enrollments": _PROSPECT,
        "/v1/businesses/events/enrollments": _BUSINESS,
    }
    for path, entity in paths.items():
        for method, handler in _handlers(entity).items():
            app.router.add_route(method, path, counted(handler))
