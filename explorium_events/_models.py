"""Wire models: the request body, the response envelope, one Struct per event type.

Events are decoded in two steps because msgspec has no fallback variant for an unknown
tag (msgspec#649): the envelope with every event's common fields first, in one typed
pass (``data`` left as raw JSON), then ``data`` by the event's name. An event type this
client does not know keeps its data as a mapping. Each event's own raw JSON, for a
lossless ``to_json()``, is sliced out of the answer only when first asked for
(``RawEvents``): a second, untyped pass over the body that most events never need.

One bad event costs only itself: an event whose ``data`` does not fit its model (null,
a string, a field of the wrong type) is still delivered, with ``data`` as the plain
mapping the server sent (or None when it is not an object at all), its raw JSON intact
for ``to_json()``, and a warning naming its event_id. Only an unreadable envelope (not
JSON, no ``output_events`` list, an event without its common fields) fails a batch.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Generic, TypeVar

import msgspec

logger = logging.getLogger("explorium_events")

_E = TypeVar("_E")


class EventType(StrEnum):
    """The prospect event types the API serves."""

    PROSPECT_CHANGED_ROLE = "prospect_changed_role"
    PROSPECT_CHANGED_COMPANY = "prospect_changed_company"
    PROSPECT_JOB_START_ANNIVERSARY = "prospect_job_start_anniversary"


# gc=False on the data Structs: they hold strings, numbers and times, never a cycle;
# untracked, a million events kept by fetch() cost the garbage collector nothing.
class CompanyChangeData(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """``data`` of a ``prospect_changed_company`` event."""

    event_name: str = EventType.PROSPECT_CHANGED_COMPANY.value
    current_company_name: str | None = None
    current_company_id: str | None = None
    current_job_title: str | None = None
    previous_company_name: str | None = None
    previous_company_id: str | None = None
    previous_job_title: str | None = None


class RoleChangeData(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """``data`` of a ``prospect_changed_role`` event; the previous company is optional."""

    event_name: str = EventType.PROSPECT_CHANGED_ROLE.value
    current_job_title: str | None = None
    previous_job_title: str | None = None
    current_company_name: str | None = None
    current_company_id: str | None = None
    previous_company_name: str | None = None
    previous_company_id: str | None = None


class AnniversaryData(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """``data`` of a ``prospect_job_start_anniversary`` event."""

    event_name: str = EventType.PROSPECT_JOB_START_ANNIVERSARY.value
    full_name: str | None = None
    company_name: str | None = None
    job_title: str | None = None
    years_at_company: int | None = None
    job_anniversary_date: dt.datetime | None = None
    linkedin_url: str | None = None


EventData = CompanyChangeData | RoleChangeData | AnniversaryData | dict[str, Any]

_DATA_TYPES: dict[str, type[CompanyChangeData | RoleChangeData | AnniversaryData]] = {
    EventType.PROSPECT_CHANGED_COMPANY: CompanyChangeData,
    EventType.PROSPECT_CHANGED_ROLE: RoleChangeData,
    EventType.PROSPECT_JOB_START_ANNIVERSARY: AnniversaryData,
}


# dict=True gives each event a __dict__ in which the decoder keeps the exact JSON the
# API sent, so that to_json() writes the event out losslessly, unknown fields included.
class Event(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """One prospect event, with the API's own field names.

    ``data`` is a typed Struct for the known event types and a plain mapping for a
    type this client does not know yet, or for data that does not fit its type's model;
    None when the server's ``data`` was not an object at all (null, a string...).
    ``to_json()`` returns exactly the JSON object the API sent.
    """

    event_id: str
    event_name: str
    event_time: dt.datetime
    prospect_id: str
    data: EventData | None

    @property
    def event_type(self) -> EventType | None:
        """The event's type, or None for a type this client does not know."""
        try:
            return EventType(self.event_name)
        except ValueError:
            return None

    def to_json(self) -> bytes:
        """The event as the JSON object the API sent, byte for byte when decoded from it."""
        return raw_json(self)

    def to_dict(self) -> dict[str, Any]:
        """The event as the mapping the API sent (keys and values)."""
        decoded: dict[str, Any] = msgspec.json.decode(self.to_json())
        return decoded


# A Struct with gc=False, not a plain class: the garbage collector does not track it,
# nor, therefore, the __dict__ of each event that holds it (it never forms a cycle: it
# holds the body and, once sliced, a list of msgspec.Raw).
class RawEvents(msgspec.Struct, gc=False):
    """The raw JSON of each event of one answer, sliced out of its body when first asked for.

    Every event decoded from the answer holds this object and its index (in its
    ``__dict__``, under ``_raw`` and ``_at``), so that decoding pays nothing for a
    ``to_json()`` that may never come; the first call reads the body once more,
    untyped, for all of them.
    """

    body: bytes
    events: list[msgspec.Raw] | None = None

    def event(self, index: int) -> bytes:
        """The ``index``-th event's JSON object, byte for byte as the answer held it."""
        events = self.events
        if events is None:
            events = self.events = _decode_raw_events.decode(self.body).output_events
        return bytes(events[index])


def raw_json(event: msgspec.Struct) -> bytes:
    """The JSON an event was decoded from (see ``RawEvents``), or the event encoded."""
    raw = event.__dict__.get("_raw")
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, RawEvents):
        return raw.event(event.__dict__["_at"])
    return msgspec.json.encode(event)


class _EventEnvelope(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    event_id: str
    event_name: str
    event_time: dt.datetime
    prospect_id: str
    data: msgspec.Raw = msgspec.Raw(b"{}")


class ResponseContext(msgspec.Struct, frozen=True, kw_only=True):
    """``response_context`` of a response: correlation id and status."""

    correlation_id: str | None = None
    request_status: str | None = None
    time_took_in_seconds: float | None = None


class _ResponseEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    response_context: ResponseContext = ResponseContext()
    output_events: list[_EventEnvelope] | None = None


class _RawEventList(msgspec.Struct, frozen=True, kw_only=True):
    output_events: list[msgspec.Raw] = []


class EventsResponse(msgspec.Struct, Generic[_E], frozen=True, kw_only=True):
    """A decoded 200 answer: prospect events, or business events."""

    response_context: ResponseContext
    output_events: list[_E]


class EventsRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The request body; optional fields are left out when unset."""

    prospect_ids: list[str]
    event_types: list[str]
    timestamp_from: str | None = None
    timestamp_to: str | None = None


_decode_envelope = msgspec.json.Decoder(_ResponseEnvelope)
_decode_event_envelope = msgspec.json.Decoder(_EventEnvelope)
_decode_raw_events = msgspec.json.Decoder(_RawEventList)
_decode_mapping = msgspec.json.Decoder(dict[str, Any])
_decode_any = msgspec.json.Decoder(Any)
_DATA_DECODERS = {name: msgspec.json.Decoder(kind) for name, kind in _DATA_TYPES.items()}
_encoder = msgspec.json.Encoder()


def encode_request(request: EventsRequest) -> bytes:
    """The JSON body of one request."""
    return _encoder.encode(request)


def decode_data(
    event_id: str,
    event_name: str,
    raw_data: msgspec.Raw | bytes,
    decoders: Mapping[str, msgspec.json.Decoder[Any]],
) -> Any:
    """An event's ``data``: its type's Struct, a plain mapping, or None (see the docstring)."""
    decoder = decoders.get(event_name, _decode_mapping)
    try:
        return decoder.decode(raw_data)
    except msgspec.ValidationError as exc:
        # Off the fast path (a try costs nothing until it raises): one event's odd data
        # must not cost the event, let alone the batch of 40 IDs.
        return lenient_data(event_id, event_name, raw_data, exc)


def utc_event_time(event_time: dt.datetime) -> dt.datetime:
    """The event's time, aware: the API documents UTC offsets; a bare time is read as UTC."""
    if event_time.tzinfo is None:
        # So that sorting never mixes aware and naive datetimes.
        return event_time.replace(tzinfo=dt.UTC)
    return event_time


def decode_event(raw: bytes) -> Event:
    """Decode one event object; raises msgspec.DecodeError if its common fields are missing."""
    envelope = _decode_event_envelope.decode(raw)
    event = Event(
        event_id=envelope.event_id,
        event_name=envelope.event_name,
        event_time=utc_event_time(envelope.event_time),
        prospect_id=envelope.prospect_id,
        data=decode_data(envelope.event_id, envelope.event_name, envelope.data, _DATA_DECODERS),
    )
    event.__dict__["_raw"] = bytes(raw)
    return event


def prospect_event_data(event_id: str, event_name: str, raw_data: msgspec.Raw | bytes) -> Any:
    """A prospect event's ``data`` (``decode_data`` with the prospect types' Structs)."""
    return decode_data(event_id, event_name, raw_data, _DATA_DECODERS)


def lenient_data(
    event_id: str, event_name: str, raw_data: msgspec.Raw | bytes, problem: msgspec.ValidationError
) -> dict[str, Any] | None:
    """The data of an event that does not fit its model: a plain mapping, or None."""
    value = _decode_any.decode(raw_data)
    data = value if isinstance(value, dict) else None
    logger.warning(
        "event %s (%s): its data does not fit the model (%s); delivered with data as %s, "
        "its raw JSON intact",
        event_id,
        event_name,
        problem,
        "a plain mapping" if data is not None else "None",
    )
    return data


def decode_response(body: bytes) -> EventsResponse[Event]:
    """Decode a 200 body of prospect events; msgspec.DecodeError when it is not the shape.

    The hot path of every pull: one typed pass over the body, then per event only its
    ``data`` (the lenient part of ``decode_data``, inlined) and the Event itself.
    """
    envelope = _decode_envelope.decode(body)
    if envelope.output_events is None:
        raise msgspec.ValidationError("response has no output_events")
    source = RawEvents(body)
    decoders = _DATA_DECODERS
    events = []
    for index, wire in enumerate(envelope.output_events):
        name = wire.event_name
        data: Any
        try:
            data = decoders.get(name, _decode_mapping).decode(wire.data)
        except msgspec.ValidationError as exc:
            data = lenient_data(wire.event_id, name, wire.data, exc)
        time = wire.event_time
        event = Event(
            event_id=wire.event_id,
            event_name=name,
            event_time=time if time.tzinfo is not None else time.replace(tzinfo=dt.UTC),
            prospect_id=wire.prospect_id,
            data=data,
        )
        held = event.__dict__
        held["_raw"] = source
        held["_at"] = index
        events.append(event)
    return EventsResponse(response_context=envelope.response_context, output_events=events)
