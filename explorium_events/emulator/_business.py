"""The emulator's ``POST /v1/businesses/events``: validation like the spec, deterministic events.

``BusinessesEventsRequest`` is checked as ``_validation`` checks the prospect request,
FastAPI style, every problem reported: ``business_ids`` (1 to 40, unique, each
``^[a-f0-9]{32}$``), ``event_types`` (at least one of the 39), the optional timestamps,
``entity_type`` and ``request_context``, and no other field.

Events are a pure function of the business ID, the seed and ``now`` (BLAKE2b, as in
``_data``): about 35% of businesses have none, most others 1 to 3, a few up to 5, of
any of the 39 types, at whole seconds in the 90 days before ``now``. Each event's
``data`` has the fields its type's page lists (``new_funding_round`` uses the type
page's ``founding_*`` spelling for half the events and the data reference's
``funding_*`` for the other half, as the docs disagree). Event objects keep the key
order of the docs' example: ``event_name``, ``event_time``, ``event_id``, ``data``,
``business_id``.

The endpoint shares everything else with the prospect one: the key check, the one
sliding window per key, the faults and the counters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable
from typing import Any

from ._clock import EmulatorClock, served_events
from ._config import EmulatorConfig
from ._data import (
    _COMPANY_STEMS,
    _FUNCTIONS,
    _bound,
    _company,
    _number,
    _person,
    _pick,
    _title,
    filtered_newest_first,
)
from ._data import _hash as _digest
from ._timestamps import format_event_time, to_micros
from ._validation import (
    ENTITY_TYPES,
    EventsQuery,
    ValidationDetail,
    _check_list,
    _check_timestamp,
    _choices,
    _detail,
    parse_object,
    validate_body,
)

__all__ = [
    "BUSINESSES",
    "BUSINESS_EVENTS_PATH",
    "BUSINESS_EVENT_TYPES",
    "PROSPECTS",
    "Endpoint",
    "events_for_business",
    "expected_business_events",
    "make_business_ids",
    "select_business_events",
    "served_business_events",
    "validate_business_body",
]

BUSINESS_EVENTS_PATH = "/v1/businesses/events"
BUSINESS_EVENT_TYPES = (
    "ipo_announcement", "new_funding_round", "new_investment", "new_product", "new_office",
    "closing_office", "new_partnership", "increase_in_engineering_department",
    "increase_in_sales_department", "increase_in_marketing_department",
    "increase_in_operations_department", "increase_in_customer_service_department",
    "increase_in_all_departments", "decrease_in_engineering_department",
    "decrease_in_sales_department", "decrease_in_marketing_department",
    "decrease_in_operations_department", "decrease_in_customer_service_department",
    "decrease_in_all_departments", "employee_joined_company", "hiring_in_creative_department",
    "hiring_in_education_department", "hiring_in_engineering_department",
    "hiring_in_finance_department", "hiring_in_health_department",
    "hiring_in_human_resources_department", "hiring_in_legal_department",
    "hiring_in_marketing_department", "hiring_in_operations_department",
    "hiring_in_professional_service_department", "hiring_in_sales_department",
    "hiring_in_support_department", "hiring_in_trade_department",
    "hiring_in_unknown_department", "company_award", "outages_and_security_breaches",
    "cost_cutting", "merger_and_acquisitions", "lawsuits_and_legal_issues",
)  # fmt: skip
MAX_BUSINESS_IDS = 40
_ID_PATTERN = "^[a-f0-9]{32}$"
_ID_RE = re.compile(r"[a-f0-9]{32}\Z")
_FIELDS = frozenset(
    {"business_ids", "event_types", "timestamp_from", "timestamp_to", "request_context",
     "entity_type"}
)  # fmt: skip
_HISTORY_SECONDS = 90 * 86_400
_COUNT_THRESHOLDS = (35, 62, 82, 95, 98, 100)


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """One events endpoint: how its body is checked and how its events are selected.

    The query's ``prospect_ids`` holds the request's IDs, whichever entity's they are;
    ``select`` takes the emulator's clock (``clock=``) and the query's filters.
    """

    validate: Callable[[bytes], tuple[EventsQuery | None, list[ValidationDetail]]]
    select: Callable[..., list[dict[str, Any]]]


# -- validation ----------------------------------------------------------------------------


def validate_business_body(raw: bytes) -> tuple[EventsQuery | None, list[ValidationDetail]]:
    """Decode and check a ``BusinessesEventsRequest`` body, every problem reported.

    The IDs come back in the query's ``prospect_ids`` (the emulator's one query type).
    """
    body, details = parse_object(raw, _FIELDS)
    if body is None:
        return None, details
    ids = _check_business_ids(body, details)
    types = _check_event_types(body, details)
    start_us = _check_timestamp(body, "timestamp_from", details, upper=False)
    end_us = _check_timestamp(body, "timestamp_to", details, upper=True)
    if body.get("entity_type", "business") not in ENTITY_TYPES:
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
    query = EventsQuery(
        prospect_ids=tuple(ids),
        event_types=tuple(dict.fromkeys(types)),
        start_us=start_us,
        end_us=end_us,
    )
    return query, []


def _check_business_ids(body: dict[str, Any], details: list[ValidationDetail]) -> list[str]:
    items = _check_list(body, "business_ids", details)
    if items is None:
        return []
    if len(items) > MAX_BUSINESS_IDS:
        details.append(
            _detail(
                ["business_ids"],
                f"List should have at most {MAX_BUSINESS_IDS} items after validation, "
                f"not {len(items)}",
                "too_long",
            )
        )
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        where: list[str | int] = ["business_ids", index]
        if not isinstance(item, str):
            details.append(_detail(where, "Input should be a valid string", "string_type"))
            continue
        if not _ID_RE.match(item):
            details.append(
                _detail(
                    where, f"String should match pattern '{_ID_PATTERN}'", "string_pattern_mismatch"
                )
            )
        if item in first_index:
            details.append(
                _detail(
                    where,
                    f"Business IDs must be unique: the same ID is at index {first_index[item]}",
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
        if item not in BUSINESS_EVENT_TYPES:
            details.append(
                _detail(
                    ["event_types", index],
                    f"Input should be {_choices(BUSINESS_EVENT_TYPES)}",
                    "enum",
                )
            )
    return [item for item in items if item in BUSINESS_EVENT_TYPES]


# -- events --------------------------------------------------------------------------------


def _article(seed: int, key: tuple[object, ...], what: str, company: str) -> dict[str, Any]:
    slug = f"{company}-{what}".lower().replace(" ", "-")
    return {
        "title": f"{company}: {what}",
        "snippet": f"{company} announced {what.lower()} this week.",
        "link": f"https://news.example.com/{slug}-{_number(seed, *key, 'link') % 100_000}",
    }


def _amount(seed: int, key: tuple[object, ...], label: str, low: int, high: int) -> int:
    return low + _number(seed, *key, label) % (high - low)


def _department(event_type: str) -> str:
    words = event_type.split("_in_", 1)[1].removesuffix("_department").removesuffix("_departments")
    return words.replace("_", " ").title()


def _business_data(
    seed: int, business_id: str, event_type: str, index: int, event_time: str
) -> dict[str, Any]:
    key = (business_id, event_type, index)
    company, _ = _company(seed, business_id, "self")
    other, _ = _company(seed, *key, "other")
    data: dict[str, Any] = {"event_name": event_type, "event_time": event_time}
    if event_type == "ipo_announcement":
        shares = _amount(seed, key, "shares", 1_000_000, 50_000_000)
        price = _amount(seed, key, "price", 10, 90) + 0.5
        data |= {
            "ipo_date": event_time[:10],
            "company_name": company,
            "offer_amount": shares * price,
            "number_of_shares": shares,
            "stock_exchange": _pick(("NASDAQ", "NYSE", "LSE"), seed, *key, "exchange"),
            "price_per_share": price,
            "ticker": company.split()[0][:4].upper(),
            "status": "priced",
        }
    elif event_type == "new_funding_round":
        stage = _pick(("Seed", "Series A", "Series B", "Series C"), seed, *key, "stage")
        spelling = "founding" if _number(seed, *key, "spelling") % 2 else "funding"
        data |= {
            f"{spelling}_date": event_time[:10],
            "amount_raised": float(_amount(seed, key, "raised", 1, 200) * 1_000_000),
            f"{spelling}_stage": stage,
            "investors": [other, _company(seed, *key, "third")[0]],
            "lead_investor": other,
            **_article(seed, key, f"{stage} round", company),
        }
    elif event_type == "new_investment":
        data |= {
            "investment_type": _pick(("acquisition", "minority stake"), seed, *key, "kind"),
            "investment_target": other,
            "investment_amount": float(_amount(seed, key, "amount", 1, 90) * 1_000_000),
            "investment_amount_currency": "USD",
            **_article(seed, key, f"investment in {other}", company),
        }
    elif event_type == "new_product":
        product = f"{_pick(_COMPANY_STEMS, seed, *key, 'product')} {index + 1}"
        data |= {
            "product_name": product,
            "product_description": f"A new {_pick(_FUNCTIONS, seed, *key, 'fn').lower()} tool",
            **_article(seed, key, f"launch of {product}", company),
        }
    elif event_type in ("new_office", "closing_office"):
        city = _pick(("Austin", "Berlin", "Lisbon", "Singapore", "Toronto"), seed, *key, "city")
        count = _amount(seed, key, "employees", 5, 500)
        if event_type == "new_office":
            data |= {"purpose_of_new_office": "expansion", "office_location": city,
                     "number_of_employees": count}  # fmt: skip
        else:
            data |= {"reason_for_closure": "consolidation", "office_location": city,
                     "number_of_employees_affected": count}  # fmt: skip
        data |= _article(seed, key, f"office in {city}", company)
    elif event_type == "new_partnership":
        data |= {"partner_company": other, "purpose_of_partnership": "distribution",
                 **_article(seed, key, f"partnership with {other}", company)}  # fmt: skip
    elif event_type == "company_award":
        data |= {"award_name": "Best Place to Work", "award_reason": "culture",
                 "awarding_body": other, **_article(seed, key, "an award", company)}  # fmt: skip
    elif event_type == "merger_and_acquisitions":
        data |= {
            "merger_or_acquisition": _pick(("merger", "acquisition"), seed, *key, "kind"),
            "description": f"{company} and {other} combine",
            "companies_involved": [company, other],
            "acquisition_price_amount": float(_amount(seed, key, "price", 10, 900) * 1_000_000),
            "strategic_objective": "market share",
            "acquisition_price_currency": "USD",
            **_article(seed, key, f"deal with {other}", company),
        }
    elif event_type == "lawsuits_and_legal_issues":
        data |= {"case_type": "patent", "court": "District Court",
                 **_article(seed, key, "a lawsuit", company)}  # fmt: skip
    elif event_type == "outages_and_security_breaches":
        data |= {"incident_type": "outage", "impacted_systems": ["api", "web"],
                 "number_of_affected_customers": _amount(seed, key, "customers", 10, 10_000),
                 **_article(seed, key, "an outage", company)}  # fmt: skip
    elif event_type == "cost_cutting":
        data |= {"action_taken": "layoffs", "departments_affected": ["Sales", "Operations"],
                 "expected_savings_amount": float(_amount(seed, key, "savings", 1, 50) * 1e6),
                 "expected_savings_currency": "USD",
                 **_article(seed, key, "cost cuts", company)}  # fmt: skip
    elif event_type == "employee_joined_company":
        full_name, linkedin_url = _person(seed, f"{business_id}-{index}")
        data |= {"job_company_name": company, "job_department": _pick(_FUNCTIONS, seed, *key),
                 "full_name": full_name, "change_type": "joined",
                 "job_role_title": _title(seed, *key), "linkedin_url": linkedin_url}  # fmt: skip
    elif event_type.startswith("hiring_in_"):
        department = _department(event_type)
        data |= {"location": "Remote", "job_count": _amount(seed, key, "jobs", 1, 40),
                 "job_titles": [f"{department} Engineer", f"{department} Lead"],
                 "department": department}  # fmt: skip
    else:  # increase_in_* / decrease_in_*
        grew = event_type.startswith("increase_")
        change = _amount(seed, key, "change", 101, 160) if grew else _amount(seed, key, "c", 50, 99)
        data |= {"department_change": change, "change_type": "Increase" if grew else "Decrease"}
    return data


def events_for_business(
    seed: int, now_us: int, business_id: str
) -> list[tuple[int, dict[str, Any]]]:
    """Every event of one business as ``(event_time_us, event)`` pairs, unsorted."""
    newest_second = now_us // 1_000_000 - 1
    draw = _number(seed, business_id, "business-count") % 100
    count = next(number for number, limit in enumerate(_COUNT_THRESHOLDS) if draw < limit)
    events: list[tuple[int, dict[str, Any]]] = []
    for index in range(count):
        event_type = BUSINESS_EVENT_TYPES[
            _number(seed, business_id, "business-type", index) % len(BUSINESS_EVENT_TYPES)
        ]
        second = newest_second - _number(seed, business_id, "age", index) % _HISTORY_SECONDS
        time_us = second * 1_000_000
        event_time = format_event_time(time_us)
        events.append(
            (
                time_us,
                {
                    "event_name": event_type,
                    "event_time": event_time,
                    "event_id": _digest(seed, business_id, event_type, index).hex(),
                    "data": _business_data(seed, business_id, event_type, index, event_time),
                    "business_id": business_id,
                },
            )
        )
    return events


def select_business_events(
    *,
    seed: int,
    now_us: int,
    prospect_ids: Iterable[str],
    event_types: Iterable[str],
    start_us: int | None,
    end_us: int | None,
) -> list[dict[str, Any]]:
    """The events of these businesses (``prospect_ids`` holds their IDs) that pass the filters.

    Newest first, ties by ``event_id``; bounds inclusive.
    """
    return filtered_newest_first(
        (
            pair
            for business_id in prospect_ids
            for pair in events_for_business(seed, now_us, business_id)
        ),
        event_types=event_types,
        start_us=start_us,
        end_us=end_us,
    )


def make_business_ids(count: int, seed: int = 0) -> list[str]:
    """``count`` made-up, valid, distinct business IDs; the same ones for the same seed.

    Any 32-hex-digit ID is a business to the emulator; these are the IDs
    ``explorium-events demo`` pulls beside its prospects.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, not {count!r}")
    return [
        hashlib.md5(f"explorium-events-demo-business-{seed}-{number}".encode()).hexdigest()
        for number in range(count)
    ]


def expected_business_events(
    business_ids: Iterable[str],
    *,
    config: EmulatorConfig,
    event_types: Iterable[str] | None = None,
    timestamp_from: str | dt.datetime | dt.date | None = None,
    timestamp_to: str | dt.datetime | dt.date | None = None,
) -> list[dict[str, Any]]:
    """Exactly the business events the emulator serves for this request, without faults.

    As ``expected_events`` for prospects: newest first; ``event_types=None`` is all 39.

    Raises:
        ValueError: an unknown event type or an unparseable timestamp.
    """
    types = tuple(BUSINESS_EVENT_TYPES if event_types is None else event_types)
    unknown = sorted(set(types) - set(BUSINESS_EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown business event types {unknown}")
    return select_business_events(
        seed=config.seed,
        now_us=to_micros(config.anchor()),
        prospect_ids=dict.fromkeys(business_ids),
        event_types=types,
        start_us=_bound(timestamp_from, upper=False),
        end_us=_bound(timestamp_to, upper=True),
    )


def served_business_events(*, clock: EmulatorClock, **query: Any) -> list[dict[str, Any]]:
    """The business events served at ``clock``: still those of its origin.

    Business events do not move with the emulator's clock yet (no timeline, no
    retention cut-off as it advances): ``sync`` is for prospects only.
    """
    return select_business_events(now_us=clock.origin_us, **query)


PROSPECTS = Endpoint(validate=validate_body, select=served_events)
BUSINESSES = Endpoint(validate=validate_business_body, select=served_business_events)
