"""Wire models of push: enrollment and webhook requests and answers, and the webhook delivery.

Same rules as ``_models``: frozen, keyword-only Structs, unknown fields allowed on
anything the server sends, one decoder per type built once. Where the docs disagree
(FACTS-siblings sections 2 and 3) the spec's shape is read and the other one tolerated:
``request_context`` for ``response_context`` in add/update answers, a delete answer
without ``response_context``, a delivery naming its type ``event_type`` (the field's
name before 2025-10-07) instead of ``event_name``. A delivery is decoded by its
``entity_type``: a prospect's into a ``WebhookEvent`` (an ``Event``), a business's into
a ``WebhookBusinessEvent`` (a ``BusinessEvent``), each with its type's data Structs.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any, Literal

import msgspec

from ._business_models import BusinessEvent, business_event_data
from ._models import Event, ResponseContext, prospect_event_data

EntityName = Literal["prospect", "business"]


class WebhookSecret:
    """A webhook's signing secret: shown as ``****`` everywhere; ``reveal()`` gives the text.

    Its repr, str and format never show it, so that logging a ``Webhook`` (or an error
    that holds one) cannot leak it; two secrets compare in constant time.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: for ``verify_webhook`` or a file of mode 0600, nowhere else."""
        return self._value

    def __repr__(self) -> str:
        return "WebhookSecret('****')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WebhookSecret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(WebhookSecret)

    def __reduce__(self) -> Any:
        raise TypeError("a WebhookSecret is not pickled: write reveal() where it belongs")


class EnrollRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The body of an enrollment add (no ``enrollment_id``) or update (with one)."""

    enrollment_key: str
    event_types: list[str]
    prospect_ids: list[str] | None = None
    business_ids: list[str] | None = None
    enrollment_id: str | None = None


class EnrollmentIdRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The body of an enrollment delete."""

    enrollment_id: str


class EnrollAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to an add or update: the enrollment's id and key."""

    enrollment_id: str
    enrollment_key: str | None = None
    response_context: ResponseContext = ResponseContext()
    request_context: ResponseContext | None = None  # the pages' spelling (FACTS 2, item 4)

    @property
    def correlation_id(self) -> str | None:
        """The correlation id, whichever key the server put it under."""
        context = self.response_context
        if context.correlation_id is None and self.request_context is not None:
            context = self.request_context
        return context.correlation_id


class Enrollment(msgspec.Struct, frozen=True, kw_only=True):
    """One active enrollment, as listed: its id, key, event types and entity IDs."""

    enrollment_id: str
    enrollment_key: str
    event_types: tuple[str, ...] = ()
    prospect_ids: tuple[str, ...] | None = None
    business_ids: tuple[str, ...] | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        """The enrolled entity IDs (prospect or business, whichever this lists)."""
        return self.prospect_ids or self.business_ids or ()


class EnrollmentList(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a list: every active enrollment of the caller."""

    enrollments: list[Enrollment]
    response_context: ResponseContext = ResponseContext()


class StatusAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a delete (enrollment or webhook) or a connectivity check."""

    response_context: ResponseContext = ResponseContext()
    status: str | None = None


class WebhookRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The body of a webhook registration."""

    partner_id: str
    webhook_url: str


class WebhookSimulation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a connectivity check sends: ``number_of_events`` (1 to 10) of ``event_name``.

    Unset fields are left to the server (one test event of its choice).
    """

    event_name: str | None = None
    number_of_events: int | None = None
    event_time: dt.datetime | None = None


class ConnectivityRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The body of a connectivity check."""

    partner_id: str
    simulation: WebhookSimulation | None = None


class WebhookAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a register or get: the URL, the times, and the secret (kept hidden)."""

    webhook_url: str
    webhook_secret: str = msgspec.field(default="")
    created_at: str | None = None
    last_modified_time: str | None = None
    response_context: ResponseContext = ResponseContext()

    def __repr__(self) -> str:
        return f"WebhookAnswer(webhook_url={self.webhook_url!r}, webhook_secret='****')"


# A delivery (FACTS-siblings 3): no event_time and no prospect_id at its top level; the
# entity is entity_id + entity_type. dict=True keeps the raw body for to_json().
class WebhookEvent(Event, frozen=True, kw_only=True, dict=True):
    """One prospect event pushed to a webhook: an ``Event`` with the delivery's own fields.

    ``prospect_id`` is the delivery's ``entity_id``; ``event_time`` is the data's
    ``event_time`` when it has one, else the moment the delivery was signed (its
    ``X-Timestamp``). ``to_json()`` returns the delivery's body exactly as it was
    received, so the sinks store it losslessly.
    """

    tenant_id: str | None = None
    partner_id: str | None = None
    entity_id: str | None = None
    entity_type: str | None = None
    enrollment_key: str | None = None


class WebhookBusinessEvent(BusinessEvent, frozen=True, kw_only=True, dict=True):
    """One business event pushed to a webhook: a ``BusinessEvent`` with the delivery's fields.

    ``business_id`` is the delivery's ``entity_id``; otherwise as ``WebhookEvent``.
    """

    tenant_id: str | None = None
    partner_id: str | None = None
    entity_id: str | None = None
    entity_type: str | None = None
    enrollment_key: str | None = None


AnyWebhookEvent = WebhookEvent | WebhookBusinessEvent


class _Delivery(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    event_name: str | None = None
    event_type: str | None = None  # the field's name before 2025-10-07
    tenant_id: str | None = None
    partner_id: str | None = None
    entity_id: str | None = None
    entity_type: str | None = None
    enrollment_key: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")


_encode = msgspec.json.Encoder().encode
_decode_delivery = msgspec.json.Decoder(_Delivery)
decode_enroll_answer = msgspec.json.Decoder(EnrollAnswer).decode
decode_enrollment_list = msgspec.json.Decoder(EnrollmentList).decode
decode_status_answer = msgspec.json.Decoder(StatusAnswer).decode
decode_webhook_answer = msgspec.json.Decoder(WebhookAnswer).decode


def encode_body(body: msgspec.Struct) -> bytes:
    """The JSON body of one request."""
    return _encode(body)


def decode_delivery(raw: bytes, *, signed_at: int) -> AnyWebhookEvent:
    """The event of a delivery body, by its ``entity_type``; msgspec.DecodeError if not one.

    ``entity_type`` "business" gives a WebhookBusinessEvent; any other a WebhookEvent,
    whose ``prospect_id`` is the ``entity_id`` of a prospect (or untyped) delivery and
    empty for a type this client does not know (its raw JSON is kept). ``signed_at``
    (the delivery's X-Timestamp) stands in for a missing ``event_time``.
    """
    delivery = _decode_delivery.decode(raw)
    name = delivery.event_name or delivery.event_type
    if not name:
        raise msgspec.ValidationError("the delivery has neither event_name nor event_type")
    event_time = _event_time(delivery.data, signed_at)
    event: AnyWebhookEvent
    is_prospect = delivery.entity_type in (None, "prospect")
    if delivery.entity_type == "business":
        event = WebhookBusinessEvent(
            event_id=delivery.event_id,
            event_name=name,
            event_time=event_time,
            business_id=delivery.entity_id or "",
            data=business_event_data(delivery.event_id, name, delivery.data),
            **_delivery_fields(delivery),
        )
    else:
        event = WebhookEvent(
            event_id=delivery.event_id,
            event_name=name,
            event_time=event_time,
            prospect_id=(delivery.entity_id or "") if is_prospect else "",
            data=prospect_event_data(delivery.event_id, name, delivery.data),
            **_delivery_fields(delivery),
        )
    event.__dict__["_raw"] = bytes(raw)
    return event


def _delivery_fields(delivery: _Delivery) -> dict[str, str | None]:
    return {
        "tenant_id": delivery.tenant_id,
        "partner_id": delivery.partner_id,
        "entity_id": delivery.entity_id,
        "entity_type": delivery.entity_type,
        "enrollment_key": delivery.enrollment_key,
    }


class _Timed(msgspec.Struct):
    event_time: Any = None


_decode_timed = msgspec.json.Decoder(_Timed)


def _event_time(data: msgspec.Raw, signed_at: int) -> dt.datetime:
    try:
        text = _decode_timed.decode(data).event_time
    except msgspec.DecodeError:  # data is not an object: no time of its own
        text = None
    if isinstance(text, str):
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    try:
        return dt.datetime.fromtimestamp(signed_at, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
