"""What differs between prospects and businesses, in one small description each: the Entity.

The API serves prospect events and business events through the same machinery: the
same 40-ID batches, limits, failure modes and answer shape. An ``Entity`` names what
differs (the endpoint, the request's ID field, the ID rule, the event types, how an
event decodes, the event's ID field, which is also the CSV and SQLite ID column), and
the one pipeline (``_ids``, ``_query``, ``_transport``, ``_engine``, ``_stream``,
``_batcher``, ``_bulk``, ``_sinks``) takes it as an argument instead of being copied.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic

from ._business_models import (
    BusinessEvent,
    BusinessEventsRequest,
    BusinessEventType,
    decode_business_event,
    decode_business_response,
    encode_business_request,
)
from ._errors import (
    ConfigurationError,
    InvalidBusinessIdError,
    InvalidIdError,
    InvalidProspectIdError,
)
from ._models import (
    Event,
    EventsRequest,
    EventsResponse,
    EventType,
    decode_event,
    decode_response,
    encode_request,
)
from ._results import E

PROSPECT_ID_RULE = (
    "40 hexadecimal characters (0-9, a-f; case and surrounding whitespace are ignored)"
)
BUSINESS_ID_RULE = (
    "32 hexadecimal characters (0-9, a-f; case and surrounding whitespace are ignored)"
)

# (IDs, event types, timestamp_from, timestamp_to) -> the request body.
_Encode = Callable[[list[str], list[str], str | None, str | None], bytes]


# eq=False: an entity is compared and hashed by identity; there are exactly two.
@dataclass(frozen=True, eq=False, slots=True, kw_only=True)
class Entity(Generic[E]):
    """One kind of entity the API serves events for."""

    name: str  # "prospect" or "business": pull(entity=...), --entity, checkpoints
    plural: str  # "prospects": the client's attribute
    path: str  # the events endpoint
    id_field: str  # the request body's list of IDs
    id_column: str  # the event's ID field; the CSV and SQLite ID column
    id_length: int  # hexadecimal characters
    id_rule: str  # the rule in words, for error messages
    event_types: tuple[str, ...]  # every type, in the spec's order: the default query
    decode_event: Callable[[bytes], E]
    decode_response: Callable[[bytes], EventsResponse[E]]  # a whole 200 answer
    invalid_error: type[InvalidIdError]
    encode: _Encode
    pattern: re.Pattern[str]

    @property
    def id_bytes(self) -> int:
        """Bytes of an ID as packed digits (``bytes.fromhex``)."""
        return self.id_length // 2

    def encode_request(
        self,
        ids: list[str],
        event_types: list[str],
        timestamp_from: str | None,
        timestamp_to: str | None,
    ) -> bytes:
        """The JSON body of one request for these IDs."""
        return self.encode(ids, event_types, timestamp_from, timestamp_to)

    def id_of(self, event: E) -> str:
        """The ID of the prospect or business an event belongs to."""
        value: str = getattr(event, self.id_column)
        return value

    def __repr__(self) -> str:
        return f"<Entity {self.name} {self.path}>"


def _prospect_body(ids: list[str], types: list[str], start: str | None, end: str | None) -> bytes:
    return encode_request(
        EventsRequest(prospect_ids=ids, event_types=types, timestamp_from=start, timestamp_to=end)
    )


def _business_body(ids: list[str], types: list[str], start: str | None, end: str | None) -> bytes:
    return encode_business_request(
        BusinessEventsRequest(
            business_ids=ids, event_types=types, timestamp_from=start, timestamp_to=end
        )
    )


PROSPECT: Entity[Event] = Entity(
    name="prospect",
    plural="prospects",
    path="/v1/prospects/events",
    id_field="prospect_ids",
    id_column="prospect_id",
    id_length=40,
    id_rule=PROSPECT_ID_RULE,
    event_types=tuple(kind.value for kind in EventType),
    decode_event=decode_event,
    decode_response=decode_response,
    invalid_error=InvalidProspectIdError,
    encode=_prospect_body,
    pattern=re.compile("[0-9a-f]{40}"),
)
BUSINESS: Entity[BusinessEvent] = Entity(
    name="business",
    plural="businesses",
    path="/v1/businesses/events",
    id_field="business_ids",
    id_column="business_id",
    id_length=32,
    id_rule=BUSINESS_ID_RULE,
    event_types=tuple(kind.value for kind in BusinessEventType),
    decode_event=decode_business_event,
    decode_response=decode_business_response,
    invalid_error=InvalidBusinessIdError,
    encode=_business_body,
    pattern=re.compile("[0-9a-f]{32}"),
)
ENTITIES: dict[str, Entity[Any]] = {entity.name: entity for entity in (PROSPECT, BUSINESS)}


def entity_named(name: str) -> Entity[Any]:
    """The entity called ``name`` ("prospect" or "business"), or a ConfigurationError."""
    entity = ENTITIES.get(name.strip().lower()) if isinstance(name, str) else None
    if entity is None:
        raise ConfigurationError(
            f"entity={name!r}: the API serves events of {' and '.join(map(repr, ENTITIES))}"
        )
    return entity
