"""The result types of a pull: what a batch, a fetch, a stream and pull() hand back. Pure data.

They sit below the client and the error tree (``FetchError`` and
``InvalidProspectIdError`` carry a ``FetchResult``), so they import nothing but the
models and the books' arithmetic (``_accounting``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ._accounting import unaccounted
from ._business_models import BusinessEvent
from ._models import Event

AnyEvent = Event | BusinessEvent
"""A prospect event or a business event: what flows through the one pipeline."""
E = TypeVar("E", Event, BusinessEvent)
"""The kind of event of one pull: Event (prospects) or BusinessEvent (businesses)."""


@dataclass(frozen=True, slots=True)
class InvalidProspectId:
    """An input value that is not a prospect ID: the value as given, its 0-based position, why."""

    value: str
    position: int
    reason: str


@dataclass(frozen=True, slots=True)
class BatchFailure:
    """A batch that still failed after its retries: what it was, and what went wrong.

    ``error`` is the ExploriumError that ended the batch (typed as Exception only so that
    this module stays below the error tree, which imports it).
    """

    prospect_ids: tuple[str, ...]
    status: int | None
    message: str
    correlation_id: str | None
    attempts: int
    error: Exception = field(repr=False)

    @property
    def ids(self) -> tuple[str, ...]:
        """The batch's IDs: prospect IDs, or business IDs in a business pull."""
        return self.prospect_ids


@dataclass(frozen=True, slots=True)
class BatchResult(Generic[E]):
    """The outcome of one batch: its events (newest first) or its failure.

    In a business pull ``prospect_ids`` holds the batch's business IDs (``ids`` reads
    either way).
    """

    prospect_ids: tuple[str, ...]
    events: tuple[E, ...]
    failure: BatchFailure | None
    attempts: int
    correlation_id: str | None

    @property
    def ids(self) -> tuple[str, ...]:
        """The batch's IDs: prospect IDs, or business IDs in a business pull."""
        return self.prospect_ids

    @property
    def ok(self) -> bool:
        """Whether the batch succeeded."""
        return self.failure is None


@dataclass(slots=True)
class FetchStats:
    """What a fetch or stream did, counted as it went."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    batches: int = 0
    failed_batches: int = 0
    ids: int = 0
    duplicate_ids: int = 0
    invalid_ids: int = 0
    events: int = 0
    duplicates_dropped: int = 0
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class FetchResult(Generic[E]):
    """Everything a fetch produced: prospect events, or business events.

    Every input ID is in exactly one of ``succeeded``, ``failed`` (by batch) and ``invalid``.
    """

    events: list[E]
    failed: list[BatchFailure]
    invalid: list[InvalidProspectId]
    succeeded: list[str]
    stats: FetchStats

    @property
    def failed_ids(self) -> list[str]:
        """The IDs (prospect or business) of every failed batch."""
        return [prospect_id for failure in self.failed for prospect_id in failure.prospect_ids]


def batch_failure(batch: tuple[str, ...], error: Exception, attempts: int) -> BatchFailure:
    """The failure record of ``batch``, ended by ``error`` after ``attempts`` attempts."""
    status = getattr(error, "status", None)
    return BatchFailure(
        prospect_ids=batch,
        status=status if isinstance(status, int) else None,
        message=getattr(error, "message", str(error)),
        correlation_id=getattr(error, "correlation_id", None),
        attempts=attempts,
        error=error,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PullSummary:
    """Where a pull stands: every input value is in exactly one state.

    ``done + failed + not_tried + invalid + duplicates == input_values``. ``done`` and
    ``failed`` count over every run of the pull; ``events_written``, ``requests`` and
    the like count this run only. Without a checkpoint ``checkpoint`` is ``""`` and the
    input's counts grow as it is read.
    """

    input_values: int
    unique_ids: int
    done: int
    failed: int
    not_tried: int
    invalid: int
    duplicates: int
    failed_batches: int
    events_total: int
    events_written: int
    batches_run: int
    requests: int
    retries: int
    rate_limited: int
    duplicates_dropped: int
    elapsed: float
    interrupted: bool
    checkpoint: str
    output: str
    invalid_examples: tuple[InvalidProspectId, ...] = ()

    @property
    def unaccounted(self) -> int:
        """Input values neither done, failed, invalid nor a repeat: what is left, or was lost.

        After a run that was not stopped this must be 0 (see ``_accounting.py``).
        """
        return unaccounted(
            values=self.input_values,
            repeated=self.duplicates,
            invalid=self.invalid,
            succeeded=self.done,
            failed=self.failed,
        )

    @property
    def complete(self) -> bool:
        """Whether every unique valid ID is done: nothing failed, nothing left or lost."""
        return self.failed == 0 and self.not_tried == 0 and self.unaccounted == 0
