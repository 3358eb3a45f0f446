"""Bulk pulls: millions of prospect or business IDs into a file or a database, resumable.

    async with EventsClient() as client:
        summary = await pull(client, "ids.txt", "events.jsonl", "events.checkpoint")
        summary = await pull(client, "accounts.txt", "accounts.db", "accounts.ckpt",
                             entity="business")

This module sets a pull up and sees it to its end; its input is ``_bulk_input``'s, its
output the sinks registry's (``_sinks``), and the run through the batches, with their
writing, commits and counts, ``_bulk_run``'s. How it holds together:

- **Resumable.** With a checkpoint the input is read twice: a scan fingerprints the
  deduplicated stream of valid IDs and counts the input; the pull then reads it again,
  in batches numbered by position in that stream. The checkpoint (``_checkpoint.py``)
  records each finished batch; a rerun skips what is done and does the rest. A
  checkpoint refuses a pull with a different input, query or output.
- **Exactly once.** Events are written as each batch arrives; the output is made
  durable before those batches are marked done (``_bulk_run`` tells how).
- **Without a checkpoint** (``checkpoint=None``) the same run reads its input once (a
  generator or a pipe will do), counts and deduplicates as it goes, and records nothing.
- **Bounded memory.** IDs stream from the input; the seen-set keeps 20-byte digests
  packed in byte buckets (about 25 bytes an ID); the client works through the input in
  segments, so its own per-stream seen-sets stay small; no events are kept beyond the
  batch being written.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterable
from enum import StrEnum
from typing import Any, TypeVar

from ._bulk_input import Scan, Source, in_stable_order, read_once, scan_input, unique_ids
from ._bulk_run import COMMIT_INTERVAL, _Run
from ._checkpoint import Checkpoint, FinishedBatch, InputTotals, PullSpec
from ._checks import check_seconds
from ._client import EventsClient
from ._entity import entity_named
from ._query import Timestamp, build_query
from ._results import PullSummary
from ._sinks import EventSink, PullOutput

_T = TypeVar("_T")


async def pull(
    client: EventsClient,
    prospect_ids: str | os.PathLike[str] | Iterable[str],
    out: str | os.PathLike[str] | EventSink,
    checkpoint: str | os.PathLike[str] | None,
    *,
    format: str | None = None,
    event_types: Iterable[StrEnum | str] | None = None,
    timestamp_from: Timestamp | None = None,
    timestamp_to: Timestamp | None = None,
    skip_invalid: bool = False,
    retry_failed: bool = False,
    progress: Callable[[PullSummary], None] | None = None,
    stop: asyncio.Event | None = None,
    commit_interval: float = COMMIT_INTERVAL,
    csv_raw_cells: bool = False,
    on_batch: Callable[[FinishedBatch], None] | None = None,
    on_unfinished: Callable[[tuple[str, ...]], None] | None = None,
    entity: str = "prospect",
) -> PullSummary:
    """Pull the events of a large list of prospects into ``out``, resumably, exactly once.

    ``entity="business"`` pulls business events of business IDs instead (32 hexadecimal
    characters; business event types; a CSV with a ``business_id`` column, an SQLite
    ``business_events`` table). The checkpoint records the entity: a checkpoint of a
    prospect pull refuses a business pull, and the other way round.

    ``prospect_ids`` is a text file with one ID per line (with a checkpoint, a regular
    file: a pipe or FIFO cannot be read again, so it is refused), or a collection that
    can be read more than once (a list; a set is pulled in sorted order, so that another
    process, whatever its hash seed, can resume it). ``out`` is a path (``.jsonl``,
    ``.csv``, ``.db`` for SQLite, ``.parquet`` for a Parquet folder, or ``.json`` for one
    JSON array, which no checkpoint can resume; or say ``format=``) or your own EventSink.
    ``checkpoint`` is the path of the pull's checkpoint: run the same call again after
    any interruption, a crash or ``kill -9`` included, and it carries on where the last
    durable commit left off.

    ``checkpoint=None`` pulls once, without resume: the input is read once, lazily (a
    generator, a pipe or a FIFO will do), deduplicated as it goes, and nothing is
    recorded; a path output is written anew. Without ``skip_invalid`` the first invalid
    ID ends the reading: the batches before it complete, then InvalidProspectIdError.

    Batches that fail after their retries are recorded and skipped by later runs, unless
    ``retry_failed=True``, which retries exactly those (and does any not yet tried).
    ``progress`` is called with a PullSummary after every batch. Setting ``stop`` ends
    the run promptly: no new requests, the checkpoint committed, and the summary
    returned with ``interrupted=True``; cancelling the task also commits, then raises.

    A CSV output neutralises text cells that would start a spreadsheet formula (a
    leading ``'``) unless ``csv_raw_cells=True``.

    ``on_batch`` is called with each batch once it is final: its events durable in the
    output (at the commit that follows it), or failed after its retries. Without a
    checkpoint, ``on_unfinished`` is called, before an error other than the server's
    silence is raised (a refused key, an output that cannot be written), with each batch
    of IDs not done: the one being written, any whose flush failed, those in flight and
    the rest of the input; so every ID is reported done, failed or unfinished.

    Raises OutputWriteError naming the output when it cannot be written (disk full,
    file too large): the checkpoint then holds only batches whose events are whole and
    durable in the output, and the same call, once the cause is fixed, carries on from
    there. Raises InvalidProspectIdError before any request when the input holds invalid IDs
    (unless ``skip_invalid``), CheckpointMismatchError when ``checkpoint`` belongs to a
    different pull, ConfigurationError when the output no longer matches the checkpoint,
    AuthenticationError when the key is refused (what was done stays recorded), and
    ServerUnavailableError when the server answered nothing usable for the client's
    ``give_up_after``: every batch not yet done is then recorded as failed, for
    ``retry_failed=True`` once the server is back.
    """
    kind = entity_named(entity)
    view = client.entity(kind.name)
    query = build_query(event_types, timestamp_from, timestamp_to, entity=kind)
    check_seconds("commit_interval", commit_interval, zero_ok=True)
    once = checkpoint is None
    source = Source(in_stable_order(prospect_ids), once=once, entity=kind)
    output = PullOutput(out, format, csv_raw_cells=csv_raw_cells, entity=kind.name)
    if checkpoint is not None:
        output.require_resumable("a checkpoint")

    def run_for(ledger: Checkpoint | None, found: Scan) -> _Run:
        return _Run(
            client=client,
            view=view,
            query=query,
            checkpoint=ledger,
            output=output,
            scan=found,
            retry_failed=retry_failed,
            progress=progress,
            commit_interval=commit_interval,
            on_batch=on_batch,
            on_unfinished=on_unfinished,
        )

    if checkpoint is None:
        found = Scan(entity=kind)
        output.open()
        try:
            run = run_for(None, found)
            ids = read_once(source, found, skip_invalid=skip_invalid)
            _, run.interrupted = await _until_stopped(run.go(ids), stop)
        finally:
            output.close()
        if found.error is not None:
            raise found.error
        return run.summary()

    scanned, _ = await _until_stopped(scan_input(source), stop)
    if scanned is None:  # stopped before anything was sent: nothing to record
        return run_for(None, Scan(entity=kind)).summary(
            interrupted=True, checkpoint=os.fspath(checkpoint)
        )
    if scanned.invalid and not skip_invalid:
        raise scanned.invalid_error()
    spec = PullSpec(
        input_fingerprint=scanned.fingerprint,
        unique_ids=scanned.unique,
        event_types=tuple(sorted(query.event_types)),
        timestamp_from=query.timestamp_from,
        timestamp_to=query.timestamp_to,
        batch_size=client.batch_size,
        output=output.name,
        output_format=output.format,
        entity=kind.name,
    )
    with Checkpoint.open(checkpoint, spec) as ledger:
        ledger.set_input_totals(
            InputTotals(
                values=scanned.values,
                unique=scanned.unique,
                invalid=scanned.invalid,
                duplicates=scanned.duplicates,
                name=source.name,
            )
        )
        new = ledger.new
        output.open(
            durable_length=0 if new else ledger.output_length,
            finished=not new and bool(ledger.counts().done_batches),
            ledger=ledger.path,
        )
        remembered = ledger.server_limit
        if remembered is not None:  # so that a restart into a full window costs one 429
            client._recall_server_limit(remembered)
        try:
            run = run_for(ledger, scanned)
            ids = unique_ids(source, scanned)
            _, run.interrupted = await _until_stopped(run.go(ids), stop)
        finally:
            output.close()
        return run.summary()


async def _until_stopped(
    work: Coroutine[Any, Any, _T], stop: asyncio.Event | None
) -> tuple[_T | None, bool]:
    """Run ``work`` to its end, or cancel it once ``stop`` is set: (its result, stopped)."""
    if stop is None:
        return await work, False
    task = asyncio.create_task(work, name="explorium-events-pull")
    stopper = asyncio.create_task(stop.wait(), name="explorium-events-pull-stop")
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for each in (task, stopper):
            each.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
    if task.cancelled():
        return None, True
    return task.result(), False  # the work's own error, if it had one
