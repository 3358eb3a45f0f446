"""``--entity prospect|business`` for the command line, and both entities' event types and aliases.

    explorium-events fetch --entity business --ids accounts.csv --event-types funding,ipo

One flag definition (``add_entity_flag``) and one parser of ``--event-types`` that knows
both entities' names and aliases (``parse_event_types``); ``event_types_problem`` then
says, once the entity is known, whether the types asked for are that entity's.
"""

from __future__ import annotations

import argparse

from .._business_models import BusinessEventType
from .._models import EventType

ENTITIES = ("prospect", "business")

_B = BusinessEventType
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "prospect": {
        "role": (EventType.PROSPECT_CHANGED_ROLE.value,),
        "company": (EventType.PROSPECT_CHANGED_COMPANY.value,),
        "anniversary": (EventType.PROSPECT_JOB_START_ANNIVERSARY.value,),
    },
    "business": {
        "ipo": (_B.IPO_ANNOUNCEMENT.value,),
        "funding": (_B.NEW_FUNDING_ROUND.value,),
        "investment": (_B.NEW_INVESTMENT.value,),
        "product": (_B.NEW_PRODUCT.value,),
        "office": (_B.NEW_OFFICE.value,),
        "closing": (_B.CLOSING_OFFICE.value,),
        "partnership": (_B.NEW_PARTNERSHIP.value,),
        "joined": (_B.EMPLOYEE_JOINED_COMPANY.value,),
        "award": (_B.COMPANY_AWARD.value,),
        "outage": (_B.OUTAGES_AND_SECURITY_BREACHES.value,),
        "cost": (_B.COST_CUTTING.value,),
        "merger": (_B.MERGER_AND_ACQUISITIONS.value,),
        "lawsuit": (_B.LAWSUITS_AND_LEGAL_ISSUES.value,),
        "hiring": tuple(kind.value for kind in _B if kind.startswith("hiring_in_")),
        "increase": tuple(kind.value for kind in _B if kind.startswith("increase_in_")),
        "decrease": tuple(kind.value for kind in _B if kind.startswith("decrease_in_")),
    },
}
_TYPES = {
    "prospect": frozenset(kind.value for kind in EventType),
    "business": frozenset(kind.value for kind in BusinessEventType),
}
ENTITY_HELP = (
    "whose events: prospect (--ids holds prospect IDs, 40 hex characters, or a CSV's "
    "prospect_id column) or business (business IDs, 32 hex characters, or a CSV's "
    "business_id column) (default: %(default)s)"
)
EVENT_TYPES_HELP = (
    "comma-separated event types (default: all of the entity's). Prospect: "
    "prospect_changed_role (role), prospect_changed_company (company), "
    "prospect_job_start_anniversary (anniversary). Business (--entity business): any of "
    "the 39 types, or short: " + ", ".join(ALIASES["business"]) + " (hiring, increase and "
    "decrease name every department's type)"
)


def add_entity_flag(parser: argparse.ArgumentParser) -> None:
    """``--entity {prospect,business}``, prospect by default."""
    parser.add_argument("--entity", choices=ENTITIES, default="prospect", help=ENTITY_HELP)


def _entity_of(name: str) -> str | None:
    return next((entity for entity in ENTITIES if name in _TYPES[entity]), None)


def parse_event_types(text: str) -> list[str]:
    """An ``--event-types`` value: names and aliases of either entity, expanded, in order."""
    chosen: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        expanded = ALIASES["prospect"].get(name) or ALIASES["business"].get(name) or (name,)
        for each in expanded:
            if _entity_of(each) is None:
                known = ", ".join(kind.value for kind in EventType)
                raise argparse.ArgumentTypeError(
                    f"unknown event type {part.strip()!r}; known: {known} "
                    f"(or short: {', '.join(ALIASES['prospect'])}); with --entity business, "
                    f"a business event type (or short: {', '.join(ALIASES['business'])})"
                )
            if each not in chosen:
                chosen.append(each)
    if not chosen:
        raise argparse.ArgumentTypeError("name at least one event type")
    return chosen


def event_types_problem(
    entity: str, event_types: list[str] | None, *, what: str = "pull"
) -> str | None:
    """Why ``event_types`` do not fit ``entity``, or None when they do (or none were given).

    ``what`` names the work in the message ("this pull is of business events").
    """
    for name in event_types or ():
        owner = _entity_of(name)
        if owner != entity:
            return (
                f"--event-types: {name!r} is a {owner} event type, and this {what} is of "
                f"{entity} events; pass --entity {owner}, or {entity} event types"
            )
    return None
