"""Enrollments: enroll any number of IDs for pushed events, 20 a call, and list, update, delete.

``client.enrollments`` is an ``Enrollments``. Every call goes through the client's
BatchRunner, so it shares fetch's rate limiter, retries, 429 pause and key verdict::

    result = await client.enrollments.add(ids, key="crm", event_types=["prospect_changed_role"])
    result.enrolled_ids, result.failed, result.invalid   # every ID is in exactly one

Re-running the same ``add`` is safe: it first lists the caller's enrollments and leaves
out every ID already enrolled under the same key for (at least) the same event types;
those are in ``already_enrolled``. What the API itself does with a repeat is not
documented (FACTS-siblings 2). One case stays open: a call whose answer was lost (a
timeout, a dropped connection) is retried and may have created its enrollment already;
the IDs are then enrolled twice under the key, and deliveries may come twice, which a
receiver drops by ``event_id``. ``delete_key`` removes every enrollment of a key.
"""

from __future__ import annotations

import asyncio
import builtins
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from ._engine import Attempts, BatchRunner
from ._errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ExploriumError,
    InvalidProspectIdError,
    ServerUnavailableError,
    TransportError,
)
from ._ids import PROSPECT_ID_RULE, invalid_reason, normalize_prospect_id
from ._models import EventType
from ._push_models import (
    EnrollAnswer,
    Enrollment,
    EnrollmentIdRequest,
    EnrollRequest,
    Entity,
    decode_enroll_answer,
    decode_enrollment_list,
    decode_status_answer,
    encode_body,
)
from ._results import BatchFailure, FetchStats, InvalidProspectId, batch_failure
from ._transport import Call

MAX_ENROLL_IDS: Final = 20
MIN_KEY_LENGTH: Final = 4

# FACTS-siblings 1: BusinessesEventIdentifier, in the spec's order.
BUSINESS_EVENT_TYPES: Final = (
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
BUSINESS_ID_RULE: Final = (
    "32 hexadecimal characters (0-9, a-f; case and surrounding whitespace are ignored)"
)
_BUSINESS_ID = re.compile("[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class _EntityKind:
    path: str
    id_field: str
    event_types: tuple[str, ...]
    rule: str


_ENTITIES: dict[str, _EntityKind] = {
    "prospect": _EntityKind(
        "/v1/prospects/events/enrollments",
        "prospect_ids",
        tuple(kind.value for kind in EventType),
        PROSPECT_ID_RULE,
    ),
    "business": _EntityKind(
        "/v1/businesses/events/enrollments", "business_ids", BUSINESS_EVENT_TYPES, BUSINESS_ID_RULE
    ),
}


@dataclass(frozen=True, slots=True)
class EnrolledBatch:
    """One enrollment created by ``add``: its id and the (at most 20) IDs it holds."""

    enrollment_id: str
    ids: tuple[str, ...]
    correlation_id: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class EnrollResult:
    """What ``add`` did. Every input ID is in exactly one of enrolled (by batch),
    ``already_enrolled``, ``failed`` (by batch, with status, message, correlation id)
    and ``invalid``; repeats of an ID count once."""

    enrollment_key: str
    event_types: tuple[str, ...]
    entity: Entity
    enrolled: list[EnrolledBatch]
    already_enrolled: list[str]
    failed: list[BatchFailure]
    invalid: list[InvalidProspectId]
    stats: FetchStats = field(repr=False)

    @property
    def enrolled_ids(self) -> list[str]:
        """The IDs this call enrolled."""
        return [entity_id for batch in self.enrolled for entity_id in batch.ids]

    @property
    def enrollment_ids(self) -> list[str]:
        """The ``enrollment_id`` of every enrollment this call created."""
        return [batch.enrollment_id for batch in self.enrolled]

    @property
    def failed_ids(self) -> list[str]:
        """The IDs of every failed batch."""
        return [entity_id for failure in self.failed for entity_id in failure.prospect_ids]

    @property
    def ok(self) -> bool:
        """Whether every valid ID is now enrolled."""
        return not self.failed


def _kind(entity: str) -> _EntityKind:
    kind = _ENTITIES.get(entity)
    if kind is None:
        raise ConfigurationError(f"entity={entity!r}: must be 'prospect' or 'business'")
    return kind


def check_key(key: object) -> str:
    """The enrollment key, or ConfigurationError: a string of at least 4 characters."""
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
        raise ConfigurationError(
            f"enrollment key {key!r}: the API wants a string of at least {MIN_KEY_LENGTH} "
            "characters (a label of yours, such as 'crm-2026')"
        )
    return key


def check_event_types(event_types: Iterable[str] | None, entity: str = "prospect") -> list[str]:
    """The event types to enroll for (all of the entity's when None), in order, once each."""
    kind = _kind(entity)
    if event_types is None:
        return list(kind.event_types)
    if isinstance(event_types, str):
        raise ConfigurationError("event_types must be a list of event types, not one string")
    chosen: list[str] = []
    for value in event_types:
        name = str(value.value if isinstance(value, EventType) else value)
        if name not in kind.event_types:
            raise ConfigurationError(
                f"event type {name!r} is not a {entity} event type; known: "
                f"{', '.join(kind.event_types)}"
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise ConfigurationError("name at least one event type")
    return chosen


def check_ids(
    ids: Iterable[str], entity: str = "prospect"
) -> tuple[list[str], list[InvalidProspectId]]:
    """The unique valid IDs (normalised, in order) and the invalid values, with why."""
    if isinstance(ids, str | bytes):
        raise ConfigurationError(
            "ids must be an iterable of IDs, not one string; wrap it in a list"
        )
    valid: dict[str, None] = {}
    invalid: list[InvalidProspectId] = []
    for position, value in enumerate(ids):
        normalized = normalize_prospect_id(value) if isinstance(value, str) else value
        if entity == "prospect":
            reason = invalid_reason(normalized)
        elif isinstance(normalized, str) and _BUSINESS_ID.fullmatch(normalized):
            reason = None
        else:
            reason = f"not {BUSINESS_ID_RULE.split(' (')[0]}"
        if reason is not None:
            invalid.append(InvalidProspectId(str(value), position, reason))
            continue
        assert isinstance(normalized, str)
        valid.setdefault(normalized, None)
    return list(valid), invalid


class Enrollments:
    """Enroll IDs for pushed events, and list, update and delete enrollments.

    Get it as ``client.enrollments``; ``entity`` is ``"prospect"`` (the default) or
    ``"business"`` on every method.
    """

    def __init__(self, runner: BatchRunner) -> None:
        self._runner = runner

    def __repr__(self) -> str:
        return f"<Enrollments closed={self._runner.closed}>"

    async def add(
        self,
        ids: Iterable[str],
        *,
        key: str,
        event_types: Iterable[str] | None = None,
        entity: Entity = "prospect",
        skip_invalid: bool = False,
        skip_enrolled: bool = True,
    ) -> EnrollResult:
        """Enroll every ID under ``key`` for ``event_types``, 20 a call; never raises per batch.

        ``event_types`` defaults to every type of the entity. Invalid IDs raise
        InvalidProspectIdError before any request, unless ``skip_invalid`` (then they are
        in ``result.invalid``). With ``skip_enrolled`` (the default) the caller's
        enrollments are listed first and IDs already enrolled under ``key`` for these
        event types are left out (``result.already_enrolled``): running the same add
        again sends nothing. A batch that still fails after its retries is in
        ``result.failed``; a rejected key or an unavailable server fails every batch not
        yet sent, without sending it.
        """
        self._runner.check_open()
        kind = _kind(entity)
        check_key(key)
        types = check_event_types(event_types, entity)
        valid, invalid = check_ids(ids, entity)
        if invalid and not skip_invalid:
            shown = [item.value for item in invalid[:5]]
            raise InvalidProspectIdError(shown, count=len(invalid), rule=kind.rule)
        stats = FetchStats(ids=len(valid), invalid_ids=len(invalid))
        already: list[str] = []
        if skip_enrolled and valid:
            covered: set[str] = set()
            for enrollment in await self._list(kind, stats):
                if enrollment.enrollment_key == key and set(types) <= set(enrollment.event_types):
                    covered.update(enrollment.ids)
            already = [entity_id for entity_id in valid if entity_id in covered]
            valid = [entity_id for entity_id in valid if entity_id not in covered]
        enrolled: list[EnrolledBatch] = []
        failed: list[BatchFailure] = []
        batches = iter(
            [tuple(valid[at : at + MAX_ENROLL_IDS]) for at in range(0, len(valid), MAX_ENROLL_IDS)]
        )
        fatal: list[ExploriumError] = []

        async def worker() -> None:
            for batch in batches:  # one iterator shared by the workers
                stats.batches += 1
                if fatal:
                    failed.append(batch_failure(batch, fatal[0], 0))
                    continue
                attempts = Attempts()
                body = _request(kind, key, types, batch)
                call = Call("POST", kind.path, encode_body(body), decode_enroll_answer, ids=batch)
                try:
                    answer = await self._runner.call(call, stats, attempts)
                except (AuthenticationError, ServerUnavailableError) as error:
                    fatal.append(error)
                    failed.append(batch_failure(batch, error, attempts.count))
                except (ApiError, TransportError) as error:
                    failed.append(batch_failure(batch, error, attempts.count))
                else:
                    enrolled.append(
                        EnrolledBatch(
                            answer.enrollment_id, batch, answer.correlation_id, attempts.count
                        )
                    )

        workers = min(self._runner.max_concurrency, -(-len(valid) // MAX_ENROLL_IDS))
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
        stats.failed_batches = len(failed)
        return EnrollResult(
            enrollment_key=key,
            event_types=tuple(types),
            entity=entity,
            enrolled=enrolled,
            already_enrolled=already,
            failed=failed,
            invalid=invalid,
            stats=stats,
        )

    async def _list(self, kind: _EntityKind, stats: FetchStats) -> list[Enrollment]:
        call = Call("GET", kind.path, None, decode_enrollment_list)
        return (await self._runner.call(call, stats)).enrollments

    async def list(self, *, entity: Entity = "prospect") -> list[Enrollment]:
        """Every active enrollment of the caller (the API's GET; no pagination is documented)."""
        self._runner.check_open()
        return await self._list(_kind(entity), FetchStats())

    async def update(
        self,
        enrollment_id: str,
        ids: Iterable[str],
        *,
        key: str,
        event_types: Iterable[str] | None = None,
        entity: Entity = "prospect",
    ) -> EnrollAnswer:
        """Replace one enrollment's IDs (1 to 20), key and event types: the API's PATCH.

        Whether the API replaces or merges the lists is not documented; all four fields
        are required, so this sends the whole new enrollment.
        """
        self._runner.check_open()
        kind = _kind(entity)
        check_key(key)
        types = check_event_types(event_types, entity)
        valid, invalid = check_ids(ids, entity)
        if invalid:
            shown = [item.value for item in invalid[:5]]
            raise InvalidProspectIdError(shown, count=len(invalid), rule=kind.rule)
        if not 1 <= len(valid) <= MAX_ENROLL_IDS:
            raise ConfigurationError(
                f"{len(valid)} IDs: an enrollment is updated with 1 to {MAX_ENROLL_IDS} IDs; "
                "use add() for more"
            )
        body = _request(kind, key, types, valid, enrollment_id=_check_id(enrollment_id))
        call = Call("PATCH", kind.path, encode_body(body), decode_enroll_answer, ids=tuple(valid))
        return await self._runner.call(call, FetchStats())

    async def delete(self, enrollment_id: str, *, entity: Entity = "prospect") -> None:
        """Delete one enrollment by its ``enrollment_id``; ApiError when the API refuses."""
        self._runner.check_open()
        body = encode_body(EnrollmentIdRequest(enrollment_id=_check_id(enrollment_id)))
        call = Call("DELETE", _kind(entity).path, body, decode_status_answer)
        await self._runner.call(call, FetchStats())

    async def delete_key(self, key: str, *, entity: Entity = "prospect") -> builtins.list[str]:
        """Delete every enrollment under ``key``; returns their ``enrollment_id``s."""
        check_key(key)
        doomed = [
            enrollment.enrollment_id
            for enrollment in await self.list(entity=entity)
            if enrollment.enrollment_key == key
        ]
        for enrollment_id in doomed:
            await self.delete(enrollment_id, entity=entity)
        return doomed


def _request(
    kind: _EntityKind,
    key: str,
    types: list[str],
    ids: Iterable[str],
    *,
    enrollment_id: str | None = None,
) -> EnrollRequest:
    chosen = list(ids)
    prospects = kind.id_field == "prospect_ids"
    return EnrollRequest(
        enrollment_key=key,
        event_types=types,
        prospect_ids=chosen if prospects else None,
        business_ids=None if prospects else chosen,
        enrollment_id=enrollment_id,
    )


def _check_id(enrollment_id: object) -> str:
    if not isinstance(enrollment_id, str) or not enrollment_id.strip():
        raise ConfigurationError(
            f"enrollment_id {enrollment_id!r}: give the id an add or list returned"
        )
    return enrollment_id.strip()
