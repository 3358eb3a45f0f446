"""Validate a request body against ``ProspectsEventsRequest``, FastAPI style.

Every problem is reported, not just the first, as the 422 body's ``detail`` list:
``{"loc": ["body", "prospect_ids", 0], "msg": "...", "type": "..."}``. The types
and messages follow pydantic 2, which is what FastAPI answers with.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ._timestamps import TimestampError, parse_bound

__all__ = [
    "ENTITY_TYPES",
    "EVENT_TYPES",
    "MAX_PROSPECT_IDS",
    "EventsQuery",
    "ValidationDetail",
    "validate_body",
]

EVENT_TYPES = (
    "prospect_changed_role",
    "prospect_changed_company",
    "prospect_job_start_anniversary",
)
ENTITY_TYPES = ("business", "prospect")
MAX_PROSPECT_IDS = 40
_ID_PATTERN = "^[a-f0-9]{40}$"
_ID_RE = re.compile(r"[a-f0-9]{40}\Z")
_FIELDS = frozenset(
    {
        "prospect_ids",
        "event_types",
        "timestamp_from",
        "timestamp_to",
        "request_context",
        "entity_type",
    }
)

ValidationDetail = dict[str, Any]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class EventsQuery:
    """A valid request, reduced to what selects events.

    ``start_us`` and ``end_us`` are inclusive bounds in epoch microseconds.
    """

    prospect_ids: tuple[str, ...]
    event_types: tuple[str, ...]
    start_us: int | None = None
    end_us: int | None = None


def _detail(loc: list[str | int], msg: str, type_: str) -> ValidationDetail:
    return {"loc": ["body", *loc], "msg": msg, "type": type_}


def _choices(values: tuple[str, ...]) -> str:
    quoted = [f"'{value}'" for value in values]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def parse_object(
    raw: bytes, fields: frozenset[str]
) -> tuple[dict[str, Any] | None, list[ValidationDetail]]:
    """A body as a JSON object, FastAPI's way: ``(None, [its one problem])`` when it is not
    one, else the object and a detail for each key not among ``fields`` (more follow)."""
    if not raw.strip():
        return None, [_detail([], "Field required", "missing")]
    try:
        # The stdlib parser, as FastAPI uses: same leniency, same error positions.
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, [_detail([exc.pos], "JSON decode error", "json_invalid")]
    except (ValueError, RecursionError):  # not UTF-8, or nested past the recursion limit
        return None, [_detail([0], "JSON decode error", "json_invalid")]
    if body is None:
        return None, [_detail([], "Field required", "missing")]
    if not isinstance(body, dict):
        return None, [
            _detail(
                [],
                "Input should be a valid dictionary or object to extract fields from",
                "model_attributes_type",
            )
        ]
    extra = [
        _detail([key], "Extra inputs are not permitted", "extra_forbidden")
        for key in body
        if key not in fields
    ]
    return body, extra


def validate_body(raw: bytes) -> tuple[EventsQuery | None, list[ValidationDetail]]:
    """Decode and check a request body.

    Returns the query and an empty list when the body is valid, else ``None``
    and one detail per problem found.
    """
    body, details = parse_object(raw, _FIELDS)
    if body is None:
        return None, details
    prospect_ids = _check_prospect_ids(body, details)
    event_types = _check_event_types(body, details)
    start_us = _check_timestamp(body, "timestamp_from", details, upper=False)
    end_us = _check_timestamp(body, "timestamp_to", details, upper=True)
    entity_type = body.get("entity_type", "prospect")
    if entity_type not in ENTITY_TYPES:
        details.append(
            _detail(["entity_type"], f"Input should be {_choices(ENTITY_TYPES)}", "enum")
        )
    context = body.get("request_context")
    if context is not None and not isinstance(context, dict):
        details.append(
            _detail(["request_context"], "Input should be a valid dictionary", "dict_type")
        )

    if details:
        return None, details
    return (
        EventsQuery(
            prospect_ids=tuple(prospect_ids),
            event_types=tuple(dict.fromkeys(event_types)),
            start_us=start_us,
            end_us=end_us,
        ),
        [],
    )


def _check_list(
    body: dict[str, Any], field: str, details: list[ValidationDetail]
) -> list[Any] | None:
    if field not in body:
        details.append(_detail([field], "Field required", "missing"))
        return None
    value = body[field]
    if not isinstance(value, list):
        details.append(_detail([field], "Input should be a valid list", "list_type"))
        return None
    if not value:
        details.append(
            _detail(
                [field], "List should have at least 1 item after validation, not 0", "too_short"
            )
        )
    return value


def _check_prospect_ids(body: dict[str, Any], details: list[ValidationDetail]) -> list[str]:
    items = _check_list(body, "prospect_ids", details)
    if items is None:
        return []
    if len(items) > MAX_PROSPECT_IDS:
        details.append(
            _detail(
                ["prospect_ids"],
                f"List should have at most {MAX_PROSPECT_IDS} items after validation, "
                f"not {len(items)}",
                "too_long",
            )
        )
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, str):
            details.append(
                _detail(["prospect_ids", index], "Input should be a valid string", "string_type")
            )
            continue
        if not _ID_RE.match(item):
            details.append(
                _detail(
                    ["prospect_ids", index],
                    f"String should match pattern '{_ID_PATTERN}'",
                    "string_pattern_mismatch",
                )
            )
        if item in first_index:
            details.append(
                _detail(
                    ["prospect_ids", index],
                    f"Prospect IDs must be unique: the same ID is at index {first_index[item]}",
                    "unique_items",
                )
            )
        else:
            first_index[item] = index
    return [item for item in items if isinstance(item, str)]


def _check_event_types(body: dict[str, Any], details: list[ValidationDetail]) -> list[str]:
    items = _check_list(body, "event_types", details)
    if items is None:
        return []
    for index, item in enumerate(items):
        if item not in EVENT_TYPES:
            details.append(
                _detail(["event_types", index], f"Input should be {_choices(EVENT_TYPES)}", "enum")
            )
    return [item for item in items if item in EVENT_TYPES]


def _check_timestamp(
    body: dict[str, Any], field: str, details: list[ValidationDetail], *, upper: bool
) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        details.append(_detail([field], "Input should be a valid string", "string_type"))
        return None
    try:
        return parse_bound(value, upper=upper)
    except TimestampError:
        details.append(
            _detail(
                [field],
                "Input should be an ISO 8601 datetime (such as 2024-01-01T10:03:03.050Z) "
                "or a date in the format YYYY-MM-DD",
                "datetime_parsing",
            )
        )
        return None
