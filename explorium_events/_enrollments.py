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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ._engine import Attempts, BatchRunner
from ._entity import Entity, entity_named
from ._errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ExploriumError,
    ServerUnavailableError,
    TransportError,
)
from ._ids import invalid_reason, normalize_prospect_id
from ._push_models import (
    EnrollAnswer,
    Enrollment,
    EnrollmentIdRequest,
    EnrollRequest,
    EntityName,
    decode_enroll_answer,
    decode_enrollment_list,
    decode_status_answer,
    encode_body,
)
from ._results import BatchFailure, FetchStats, InvalidProspectId, batch_failure
from ._transport import Call

MAX_ENROLL_IDS: Final = 20
MIN_KEY_LENGTH: Final = 4


def enrollments_path(entity: Entity[Any]) -> str:
    """The enrollment endpoint of ``entity``: its events endpoint's ``/enrollments``."""
    return f"{entity.path}/enrollments"


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
    entity: EntityName
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


def check_key(key: object) -> str:
    """The enrollment key, or ConfigurationError: a string of at least 4 characters."""
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
        raise ConfigurationError(
            f"enrollment key {key!r}: the API wants a string of at least {MIN_KEY_LENGTH} "
            "characters (a label of yours, such as 'crm-2026')"
        )
    return key


def check_event_types(event_types: Iterable[str] | None, entity: str = "prospect") -> list[str]:
    """The event types to enroll for (all of the entity's when None), in order, once each.

    ``EventType`` and ``BusinessEventType`` members are their names.
    """
    kind = entity_named(entity)
    if event_types is None:
        return list(kind.event_types)
    if isinstance(event_types, str):
        raise ConfigurationError("event_types must be a list of event types, not one string")
    chosen: list[str] = []
    for value in event_types:
        name = str(value)  # a StrEnum member is its value
        if name not in kind.event_types:
            raise ConfigurationError(
                f"event type {name!r} is not a {kind.name} event type; known: "
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
    """The unique valid IDs (normalised, in order) and the invalid values, with why.

    The ID rule is the entity's (``_ids.invalid_reason``): 40 hex characters for a
    prospect, 32 for a business.
    """
    kind = entity_named(entity)
    if isinstance(ids, str | bytes):
        raise ConfigurationError(
            "ids must be an iterable of IDs, not one string; wrap it in a list"
        )
    valid: dict[str, None] = {}
    invalid: list[InvalidProspectId] = []
    for position, value in enumerate(ids):
        normalized = normalize_prospect_id(value) if isinstance(value, str) else value
        reason = invalid_reason(normalized, entity=kind)
        if reason is not None:
            invalid.append(InvalidProspectId(str(value), position, reason))
            continue
        assert isinstance(normalized, str)
        valid.setdefault(normalized, None)
    return list(valid), invalid


def _refuse_invalid(kind: Entity[Any], invalid: list[InvalidProspectId]) -> None:
    shown = [item.value for item in invalid[:5]]
    raise kind.invalid_error(shown, count=len(invalid), rule=kind.id_rule)


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
        entity: EntityName = "prospect",
        skip_invalid: bool = False,
        skip_enrolled: bool = True,
    ) -> EnrollResult:
        """Enroll every ID under ``key`` for ``event_types``, 20 a call; never raises per batch.

        ``event_types`` defaults to every type of the entity. Invalid IDs raise
        InvalidProspectIdError (InvalidBusinessIdError for businesses) before any
        request, unless ``skip_invalid`` (then they are in ``result.invalid``). With
        ``skip_enrolled`` (the default) the caller's enrollments are listed first and IDs
        already enrolled under ``key`` for these event types are left out
        (``result.already_enrolled``): running the same add again sends nothing. A batch
        that still fails after its retries is in ``result.failed``; a rejected key or an
        unavailable server fails every batch not yet sent, without sending it.
        """
        self._runner.check_open()
        kind = entity_named(entity)
        check_key(key)
        types = check_event_types(event_types, entity)
        valid, invalid = check_ids(ids, entity)
        if invalid and not skip_invalid:
            _refuse_invalid(kind, invalid)
        stats = FetchStats(ids=len(valid), invalid_ids=len(invalid))
        already: list[str] = []
        if skip_enrolled and valid:
            covered: set[str] = set()
            for enrollment in await self._list(kind, stats):
                if enrollment.enrollment_key == key and set(types) <= set(enrollment.event_types):
                    covered.update(enrollment.ids)
            already = [entity_id for entity_id in valid if entity_id in covered]
            valid = [entity_id for entity_id in valid if entity_id not in covered]
        path = enrollments_path(kind)
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
                call = Call("POST", path, encode_body(body), decode_enroll_answer, ids=batch)
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

    async def _list(self, kind: Entity[Any], stats: FetchStats) -> list[Enrollment]:
        call = Call("GET", enrollments_path(kind), None, decode_enrollment_list)
        return (await self._runner.call(call, stats)).enrollments

    async def list(self, *, entity: EntityName = "prospect") -> list[Enrollment]:
        """Every active enrollment of the caller (the API's GET; no pagination is documented)."""
        self._runner.check_open()
        return await self._list(entity_named(entity), FetchStats())

    async def update(
        self,
        enrollment_id: str,
        ids: Iterable[str],
        *,
        key: str,
        event_types: Iterable[str] | None = None,
        entity: EntityName = "prospect",
    ) -> EnrollAnswer:
        """Replace one enrollment's IDs (1 to 20), key and event types: the API's PATCH.

        Whether the API replaces or merges the lists is not documented; all four fields
        are required, so this sends the whole new enrollment.
        """
        self._runner.check_open()
        kind = entity_named(entity)
        check_key(key)
        types = check_event_types(event_types, entity)
        valid, invalid = check_ids(ids, entity)
        if invalid:
            _refuse_invalid(kind, invalid)
        if not 1 <= len(valid) <= MAX_ENROLL_IDS:
            raise ConfigurationError(
                f"{len(valid)} IDs: an enrollment is updated with 1 to {MAX_ENROLL_IDS} IDs; "
                "use add() for more"
            )
        body = _request(kind, key, types, valid, enrollment_id=_check_id(enrollment_id))
        call = Call(
            "PATCH",
            enrollments_path(kind),
            encode_body(body),
            decode_enroll_answer,
            ids=tuple(valid),
        )
        return await self._runner.call(call, FetchStats())

    async def delete(self, enrollment_id: str, *, entity: EntityName = "prospect") -> None:
        """Delete one enrollment by its ``enrollment_id``; ApiError when the API refuses."""
        self._runner.check_open()
        body = encode_body(EnrollmentIdRequest(enrollment_id=_check_id(enrollment_id)))
        call = Call("DELETE", enrollments_path(entity_named(entity)), body, decode_status_answer)
        await self._runner.call(call, FetchStats())

    async def delete_key(self, key: str, *, entity: EntityName = "prospect") -> builtins.list[str]:
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
    kind: Entity[Any],
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
