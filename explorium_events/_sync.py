"""Incremental sync: keeps a list of prospects current, emitting each event exactly once.

    async with EventsClient() as client:
        summary = await sync(client, "crm.txt", "events.jsonl", state="crm.sync")

Run it every day (or hour) with the same state: the first run fetches each ID's whole
retention window; each later run asks each ID only from its cursor minus a lookback,
and writes only events this state never emitted. The state (``_sync_state``) keeps,
per ID, a cursor: the moment the last run that fetched it STARTED (never an
``event_time``: anniversaries are dated in the future and job changes arrive late).

Why a lookback of 35 days by default (FACTS.md): a job change is often dated the 1st of
its month, so an event that becomes visible on the 30th may carry an ``event_time``
~30 days old; another few days cover reporting delays. Re-reading 35 days costs
nothing extra (one request per 40 IDs either way); what was emitted is dropped by
``event_id``.

The batches run through the client (its rate limiter, retries and ``give_up_after``)
and the events go through the sinks registry's ``PullOutput``, exactly as a bulk pull's
do. IDs sharing a cursor are asked together, 40 per request, so a daily sync of an
unchanged list costs one request per 40 IDs. A failed batch's IDs keep their old
cursor, and form their own group next time. Exactly once, across crashes: events are
durable in the output before the state records them (see ``_sync_state``); a JSONL or
CSV output is cut back to the recorded length on the next run, SQLite upserts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ._bulk import _until_stopped
from ._bulk_input import Scan, Source, _valid, in_stable_order
from ._bulk_run import COMMIT_BATCHES, COMMIT_INTERVAL, SEGMENT_BATCHES
from ._checks import check_seconds
from ._client import EventsClient
from ._errors import ConfigurationError
from ._models import Event, EventType
from ._query import RETENTION, build_query
from ._ratelimit_types import ServerLimit
from ._results import BatchResult, FetchStats, InvalidProspectId
from ._sinks import FORMATS, EventSink, Format, PullOutput
from ._sync_state import SyncState

logger = logging.getLogger("explorium_events")

DEFAULT_LOOKBACK = dt.timedelta(days=35)
_RETENTION_S = int(RETENTION.total_seconds())


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncSummary:
    """What one run of a sync did.

    ``synced + failed + not_tried == ids``. ``since`` is the oldest cursor among the IDs
    asked again (None when every ID was new): the run asked from ``since - lookback``.
    ``gap`` is set when that cursor is older than the API's 3-month retention: events
    dated between ``gap[0]`` and ``gap[1]`` may have been missed.
    """

    started: dt.datetime
    since: dt.datetime | None
    previous_run: dt.datetime | None
    lookback: dt.timedelta
    ids: int
    new_ids: int
    removed_ids: int
    synced: int
    failed: int
    not_tried: int
    invalid: int
    duplicates: int
    new_events: int
    events_seen: int
    pruned: int
    requests: int
    retries: int
    rate_limited: int
    elapsed: float
    interrupted: bool
    output: str
    state: str
    gap: tuple[dt.datetime, dt.datetime] | None = None
    invalid_examples: tuple[InvalidProspectId, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every ID of the list was fetched: nothing failed, nothing left."""
        return self.failed == 0 and self.not_tried == 0


def _moment(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _file_id(path: str) -> str:
    try:
        info = os.stat(path)
    except OSError:
        return ""
    return f"{info.st_dev}:{info.st_ino}"


def output_path(out: str | os.PathLike[str], started: dt.datetime) -> str:
    """``out`` with ``{started}`` replaced by the run's start, e.g. 20260712T090000Z."""
    text = os.fspath(out)
    return text.replace("{started}", started.strftime("%Y%m%dT%H%M%SZ"))


@dataclass(slots=True)
class _Pending:
    covered: list[str] = field(default_factory=list)
    emitted: list[tuple[str, int]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    batches: int = 0


class _SyncRun:
    """One run: the groups through the client, new events to the output, commits."""

    def __init__(
        self,
        *,
        client: EventsClient,
        state: SyncState,
        output: PullOutput,
        event_types: tuple[str, ...],
        started: int,
        lookback: dt.timedelta,
        commit_interval: float,
        progress: Callable[[_SyncRun], None] | None,
    ) -> None:
        self._client = client
        self._state = state
        self._output = output
        self._event_types = event_types
        self._started = started
        self._lookback = lookback
        self._commit_interval = commit_interval
        self._progress = progress
        self._clock = client.clock
        self._last_commit = self._clock.monotonic()
        self._pending = _Pending()
        self.stats = FetchStats()
        self._live: FetchStats | None = None
        self.synced = self.failed = self.new_events = self.events_seen = 0

    def live_stats(self) -> FetchStats:
        """Requests, retries and 429s so far, the stream in progress included."""
        total = FetchStats()
        for part in (self.stats, self._live):
            if part is not None:
                total.requests += part.requests
                total.retries += part.retries
                total.rate_limited += part.rate_limited
        return total

    async def go(self, groups: list[tuple[int, int]]) -> None:
        try:
            for grp, _count in groups:
                # A cursor past the run's start (a clock set back) is capped at it.
                since = None if grp < 0 else _moment(min(grp, self._started)) - self._lookback
                ids = self._state.ids_of(grp)
                segment = SEGMENT_BATCHES * self._client.batch_size
                while True:
                    # Segments bound the client's own per-stream seen-sets.
                    part = list(itertools.islice(ids, segment))
                    if not part:
                        break
                    await self._segment(part, since)
        except BaseException:
            try:
                self._commit()
            except Exception as exc:  # the first error is the one to tell
                logger.warning("the sync state was not updated after the failure: %s", exc)
            raise
        self._commit()

    async def _segment(self, ids: list[str], since: dt.datetime | None) -> None:
        stream = self._client.stream(ids, event_types=self._event_types, timestamp_from=since)
        self._live = stream.stats
        try:
            async with stream:
                async for result in stream:
                    self._finish(result)
        finally:
            self._live = None
            part = stream.stats
            self.stats.requests += part.requests
            self.stats.retries += part.retries
            self.stats.rate_limited += part.rate_limited

    def _finish(self, result: BatchResult[Event]) -> None:
        if result.failure is not None:
            self.failed += len(result.prospect_ids)  # the cursor stays where it was
        else:
            pending = self._pending
            events = result.events
            self.events_seen += len(events)
            known = self._state.emitted_among([event.event_id for event in events])
            fresh = [
                event
                for event in events
                if event.event_id not in known and event.event_id not in pending.ids
            ]
            # An event dated before what the state keeps (a server that ignores the asked
            # window, say) is kept as if dated this run, and again each run it comes back:
            # else the next run's prune forgets it and writes it twice.
            horizon = self._started - _RETENTION_S - int(self._lookback.total_seconds())
            if fresh:
                self._output.write(fresh)
                for event in fresh:
                    pending.ids.add(event.event_id)
                    moment = _seconds(event.event_time)
                    kept = self._started if moment < horizon else moment
                    pending.emitted.append((event.event_id, kept))
            pending.emitted.extend(
                (event.event_id, self._started)
                for event in events
                if event.event_id in known and _seconds(event.event_time) < horizon
            )
            pending.covered.extend(result.prospect_ids)
            self.new_events += len(fresh)
            self.synced += len(result.prospect_ids)
        self._pending.batches += 1
        if (
            self._pending.batches >= COMMIT_BATCHES
            or self._clock.monotonic() - self._last_commit >= self._commit_interval
        ):
            self._commit()
        if self._progress is not None:
            self._progress(self)

    def _commit(self) -> None:
        pending = self._pending
        if not pending.covered:
            return
        # Durable first; if the flush fails nothing is recorded and the IDs run again.
        length = self._output.flush()
        self._state.commit(
            emitted=pending.emitted,
            covered=pending.covered,
            cursor=self._started,
            output=_output_record(self._output, length),
            server_limit=ServerLimit.of(self._client.rate_limit_state()),
        )
        self._pending = _Pending()
        self._last_commit = self._clock.monotonic()


def _output_record(output: PullOutput, length: int | None) -> dict[str, str]:
    """The state's record of the output: which file, and how much of it is accounted for."""
    return {
        "output": output.name,
        "output_format": output.format,
        "output_length": "" if length is None else str(length),
        "output_file": "" if length is None else _file_id(output.name),
    }


def _seconds(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def _read_list(source: Source, found: Scan, *, skip_invalid: bool) -> Iterator[str]:
    """The list's valid IDs, normalised; counts into ``found`` (the state drops repeats)."""
    for where, value in source.values():
        found.values += 1
        normalized = _valid(value, source.entity)
        if normalized is None:
            found.note_invalid(where, value)
            continue
        yield normalized


def _settle_output(state: SyncState, output: PullOutput, fmt: Format | None) -> int:
    """Cut outputs back to what the state accounts for; the length to open ``output`` at.

    A JSONL or CSV file (or a Parquet folder) may hold events written after the last
    commit of a killed run: they are cut off (their IDs are fetched again). That holds
    for the previous output too when each run writes a new file. A file that was moved
    away, replaced or emptied since is taken as it is now: its events were delivered.
    Lengths are in the format's unit: bytes, or Parquet's parts.
    """
    previous = state.output()
    if (
        previous is not None
        and previous.length is not None
        and previous.file
        and _file_id(previous.path) == previous.file
    ):
        kind = FORMATS.get(previous.format, FORMATS["jsonl"])
        try:
            size = kind.size(previous.path)
        except (OSError, ConfigurationError):
            size = -1
        if size > previous.length:
            logger.info(
                "%s: dropping %d %s written after the last commit of the sync state",
                previous.path,
                size - previous.length,
                kind.unit,
            )
            kind.cut(previous.path, previous.length)
    if fmt is None or fmt.resume != "truncate":
        return 0
    try:
        return max(fmt.size(output.name), 0)
    except OSError:
        return 0


async def sync(
    client: EventsClient,
    prospect_ids: str | os.PathLike[str] | Iterable[str],
    out: str | os.PathLike[str] | EventSink,
    state: str | os.PathLike[str],
    *,
    lookback: dt.timedelta = DEFAULT_LOOKBACK,
    event_types: Iterable[EventType | str] | None = None,
    format: str | None = None,
    skip_invalid: bool = False,
    stop: asyncio.Event | None = None,
    progress: Callable[[SyncSummary], None] | None = None,
    commit_interval: float = COMMIT_INTERVAL,
    csv_raw_cells: bool = False,
) -> SyncSummary:
    """Bring the events of this list that are new since the last run into ``out``.

    ``prospect_ids``: a file with one ID per line, or any iterable (read once).
    ``out``: a path (``.jsonl``, ``.csv``, ``.db``, ``.parquet``; or say ``format=``),
    appended to (SQLite: upserted); ``{started}`` in it is replaced by the run's start
    time, for a new file per run; or your own EventSink. ``state``: the sync's state file (made on
    the first run; see ``_sync_state`` for its documented, versioned schema).

    Each run asks IDs new to the list for their whole window, and every other ID from
    its cursor minus ``lookback`` (default 35 days: event times are coarse and events
    arrive late), then writes only events this state never emitted. IDs gone from the
    list leave the state. Failed batches keep their cursor (see ``failed``); the run
    still completes. Setting ``stop`` ends the run promptly with what is done
    committed (``interrupted=True``); so does a crash or ``kill -9``, without the
    summary: the next run carries on, and no event is ever written twice.

    Raises ConfigurationError for a bad argument, a state made for other event types,
    or a state file that is not one; InvalidProspectIdError before any request when the
    list holds invalid values (unless ``skip_invalid``); OutputWriteError when the output
    or the state cannot be written; AuthenticationError and ServerUnavailableError as
    ``pull`` does, after committing what was done.
    """
    if not isinstance(lookback, dt.timedelta) or lookback < dt.timedelta(0):
        raise ConfigurationError(f"lookback={lookback!r}: give a timedelta of 0 or more")
    check_seconds("commit_interval", commit_interval, zero_ok=True)
    query = build_query(event_types, None, None)
    types = tuple(sorted(query.event_types))
    clock = client.clock
    began = clock.monotonic()
    started = int(clock.time())
    started_at = _moment(started)
    state_path = os.fspath(state)
    if isinstance(out, str | os.PathLike):
        out = output_path(out, started_at)
        if _same_file(out, state_path):
            raise ConfigurationError(f"the output {out} is the sync state: give each its own file")
    if isinstance(prospect_ids, str | os.PathLike):
        for other in (state_path, out):
            if isinstance(other, str) and _same_file(os.fspath(prospect_ids), other):
                raise ConfigurationError(
                    f"the list {os.fspath(prospect_ids)} is also the output or the state"
                )
    output = PullOutput(out, format, csv_raw_cells=csv_raw_cells)
    output.require_resumable("a sync (each run adds to it)")
    source = Source(in_stable_order(prospect_ids), once=True)
    found = Scan()

    with SyncState(state_path) as ledger:
        recorded = ledger.get("event_types")
        if recorded is not None and recorded != ",".join(types):
            raise ConfigurationError(
                f"the sync state {state_path} keeps {recorded}, not {','.join(types)}: "
                "use another state file for other event types"
            )
        unique, repeats = ledger.load_ids(_read_list(source, found, skip_invalid=skip_invalid))
        found.unique, found.duplicates = unique, repeats
        if found.invalid and not skip_invalid:
            raise found.invalid_error()
        if recorded is None:
            ledger.put({"event_types": ",".join(types), "created": started_at.isoformat()})
        run_number = ledger.begin_run(started)
        previous = ledger.previous_run(run_number)
        removed = ledger.forget_removed()
        pruned = ledger.prune(started - _RETENTION_S - int(lookback.total_seconds()))
        groups = ledger.groups()
        new_ids = sum(count for grp, count in groups if grp < 0)
        cursors = [grp for grp, _ in groups if grp >= 0]
        since = _moment(min(min(cursors), started)) if cursors else None
        gap = None
        if since is not None and since < started_at - RETENTION:
            gap = (since, started_at - RETENTION)
            logger.warning(
                "the last sync of some of these IDs started %s, more than %d days before "
                "this one (%s): the API keeps only the last %d days, so events dated from "
                "%s to %s may have been missed. Running anyway, from %s on",
                since.isoformat(timespec="seconds"),
                RETENTION.days,
                started_at.isoformat(timespec="seconds"),
                RETENTION.days,
                since.date().isoformat(),
                gap[1].date().isoformat(),
                gap[1].date().isoformat(),
            )
        remembered = ledger.server_limit()
        if remembered is not None:  # so that a restart into a full window costs one 429
            client._recall_server_limit(remembered)
        fmt = FORMATS.get(output.format)
        length = _settle_output(ledger, output, fmt)
        run = _SyncRun(
            client=client,
            state=ledger,
            output=output,
            event_types=query.event_types,
            started=started,
            lookback=lookback,
            commit_interval=commit_interval,
            progress=None,
        )

        def summary(*, interrupted: bool) -> SyncSummary:
            stats = run.live_stats()
            return SyncSummary(
                started=started_at,
                since=since,
                previous_run=_moment(previous.started) if previous is not None else None,
                lookback=lookback,
                ids=unique,
                new_ids=new_ids,
                removed_ids=removed,
                synced=run.synced,
                failed=run.failed,
                not_tried=unique - run.synced - run.failed,
                invalid=found.invalid,
                duplicates=repeats,
                new_events=run.new_events,
                events_seen=run.events_seen,
                pruned=pruned,
                requests=stats.requests,
                retries=stats.retries,
                rate_limited=stats.rate_limited,
                elapsed=clock.monotonic() - began,
                interrupted=interrupted,
                output=output.name,
                state=state_path,
                gap=gap,
                invalid_examples=tuple(found.examples),
            )

        if progress is not None:
            report = progress
            run._progress = lambda _run: report(summary(interrupted=False))
        status = "failed"
        interrupted = False
        output.open(durable_length=length)
        # Before the first write: a run killed before its first commit is cut back to here.
        ledger.put(_output_record(output, length if fmt and fmt.resume == "truncate" else None))
        try:
            _, interrupted = await _until_stopped(run.go(groups), stop)
            status = "interrupted" if interrupted else "done" if not run.failed else "failed"
        finally:
            output.close()
            result = summary(interrupted=interrupted)
            try:
                ledger.finish_run(
                    run_number,
                    finished=int(clock.time()),
                    status=status,
                    counts={
                        "ids": unique,
                        "new_ids": new_ids,
                        "removed_ids": removed,
                        "failed_ids": result.failed,
                        "new_events": result.new_events,
                        "requests": result.requests,
                    },
                )
            except Exception as exc:
                logger.warning("the run was not logged in %s: %s", state_path, exc)
        return result
