"""``explorium-events fetch --checkpoint``: a bulk pull from the command line.

The pull itself is ``explorium_events.pull``; this module gives it what a person at a
terminal needs: Ctrl-C and SIGTERM that stop it within a moment with the checkpoint
consistent (exit status 130, and a line that says how to resume), a progress line whose
ETA follows the rate limit in force, and a summary in which every input value is
counted in exactly one state.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from explorium_events import (
    AuthenticationError,
    Checkpoint,
    ConfigurationError,
    EventsClient,
    PullSummary,
    pull,
)

from ._accounting import unaccounted, unaccounted_message
from ._paths import read_once
from ._progress import Progress, Snapshot

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_FAILURES_SHOWN = 5


@dataclass(slots=True)
class BulkOutcome:
    """What the run came to: the lines to show, the exit status, when a stop was asked."""

    lines: list[str] = field(default_factory=list)
    status: int = EXIT_OK
    summary: PullSummary | None = None
    stop_requested_at: float | None = None
    stopped_at: float | None = None


@dataclass(slots=True)
class BulkRequest:
    """Everything the command line decided about one checkpointed pull."""

    ids: Iterable[str]
    source: str
    valid: int  # valid values, repeats included, as counted when the input was checked
    invalid: int
    invalid_examples: list[str]
    out: str
    fmt: str
    checkpoint: str
    retry_failed: bool
    failed_out: str | None
    event_types: list[str] | None
    since: dt.date | dt.datetime | None
    until: dt.date | dt.datetime | None


def run_bulk(client: EventsClient, request: BulkRequest, progress: Progress) -> BulkOutcome:
    """Run the pull in a fresh event loop; never raises for a stop, a refused key or a mismatch."""
    outcome = BulkOutcome()
    try:
        asyncio.run(_run(client, request, progress, outcome))
    except KeyboardInterrupt:  # a Ctrl-C before our handler was in place, or on Windows
        outcome.status = EXIT_INTERRUPTED
        outcome.lines.append(f"Interrupted. To resume, {_resume_line(request)}.")
    return outcome


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event, outcome: BulkOutcome) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop``; a second one cancels the run outright."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and task is not None:
            task.cancel()
        outcome.stop_requested_at = outcome.stop_requested_at or time.monotonic()
        stop.set()

    installed = []
    for number in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(number, on_signal)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
            continue
        installed.append(number)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)


async def _tick(progress: Progress, snapshot: Callable[[], Snapshot]) -> None:
    while True:
        progress.update(snapshot())
        await asyncio.sleep(progress.interval)


async def _run(
    client: EventsClient, request: BulkRequest, progress: Progress, outcome: BulkOutcome
) -> None:
    stop = asyncio.Event()
    latest: list[PullSummary] = []
    first: list[PullSummary] = []
    started = time.monotonic()
    # When the number of requests last changed: how long the pull has been held back.
    last_request = [0, started]

    def on_progress(summary: PullSummary) -> None:
        if not first:
            first.append(summary)
        latest[:] = [summary]

    def snapshot() -> Snapshot:
        now = time.monotonic()
        summary = latest[0] if latest else None
        limiter = client.rate_limit_state()
        requests = summary.requests if summary is not None else 0
        if requests != last_request[0]:
            last_request[:] = [requests, now]
        at_start = first[0] if first else summary
        return Snapshot(
            ids_done=(summary.done + summary.failed) if summary else 0,
            ids_total=summary.unique_ids if summary else 0,
            events=summary.events_total if summary else 0,
            requests=requests,
            retries=summary.retries if summary else 0,
            rate_limited=summary.rate_limited if summary else 0,
            elapsed=now - started,
            limiter=limiter,
            ids_at_start=(at_start.done + at_start.failed) if at_start else 0,
            batch_size=client.batch_size,
            held_for=now - float(last_request[1]),
        )

    ticker = asyncio.create_task(_tick(progress, snapshot)) if progress.enabled else None
    try:
        with _stop_on_signals(stop, outcome):
            async with client:
                summary = await pull(
                    client,
                    request.ids,
                    request.out,
                    request.checkpoint,
                    format=request.fmt,
                    event_types=request.event_types,
                    timestamp_from=request.since,
                    timestamp_to=request.until,
                    # The command line checked the input whole, line numbers and all.
                    skip_invalid=True,
                    retry_failed=request.retry_failed,
                    progress=on_progress,
                    stop=stop,
                )
        outcome.summary = summary
        outcome.stopped_at = time.monotonic()
        outcome.lines.extend(summary_lines(summary, request))
        if summary.interrupted and outcome.stop_requested_at is not None:
            took = outcome.stopped_at - outcome.stop_requested_at
            outcome.lines.append(
                f"  stopped     {took:.2f}s after the signal; the checkpoint is consistent"
            )
        outcome.status = _status(summary, request)
    except AuthenticationError as error:
        outcome.status = EXIT_FAILED
        outcome.lines.append(
            f"The API refused the key (HTTP {error.status}"
            + (f", correlation_id {error.correlation_id}" if error.correlation_id else "")
            + "): nothing more was sent. Check --api-key or EXPLORIUM_API_KEY, then run the "
            "same command again: the batches finished so far are kept."
        )
    except ConfigurationError as error:
        outcome.status = EXIT_USAGE
        outcome.lines.append(f"error: {error}")
    except asyncio.CancelledError:  # a second Ctrl-C: the checkpoint was still committed
        outcome.status = EXIT_INTERRUPTED
        outcome.stopped_at = time.monotonic()
        outcome.lines.append(f"Interrupted. To resume, {_resume_line(request)}.")
    finally:
        if ticker is not None:
            ticker.cancel()
            await asyncio.wait([ticker])
            if latest and progress.enabled:
                progress.update(snapshot(), force=True)
        progress.clear()
    # After a refused key too: the batches that failed before it are in the checkpoint.
    if request.failed_out is not None and outcome.status != EXIT_USAGE:
        _write_failed(request)


def _unaccounted(summary: PullSummary, request: BulkRequest) -> int:
    """The books of the run, against what the command line counted when it checked the input.

    The pull counts the input again as it reads it; if that reading came up short (an
    input that cannot be read twice), ``summary`` balances on its own and only this
    comparison shows the loss.
    """
    return unaccounted(
        values=request.valid + request.invalid,
        repeated=summary.duplicates,
        invalid=request.invalid + summary.invalid,
        succeeded=summary.done,
        failed=summary.failed,
    )


def _status(summary: PullSummary, request: BulkRequest) -> int:
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if _unaccounted(summary, request) != 0:
        return EXIT_FAILED
    return EXIT_OK if summary.complete else EXIT_FAILED


def _write_failed(request: BulkRequest) -> None:
    assert request.failed_out is not None
    with (
        Checkpoint.read(request.checkpoint) as checkpoint,
        open(request.failed_out, "w", encoding="utf-8") as out,
    ):
        for record in checkpoint.failed_batches():
            out.write("".join(f"{pid}\n" for pid in record.prospect_ids))


def _resume_line(request: BulkRequest) -> str:
    return (
        f"run the same command again (same --ids, --out and --checkpoint "
        f"{request.checkpoint}): it skips the finished batches"
    )


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else plural or word + 's'}"


def summary_lines(summary: PullSummary, request: BulkRequest) -> list[str]:
    """The end-of-run summary: the states of every input value, this run, what to do next."""
    missing = 0 if summary.interrupted else _unaccounted(summary, request)
    if summary.interrupted:
        head = f"Interrupted after {summary.elapsed:.1f}s"
    elif missing:
        head = f"INCOMPLETE after {summary.elapsed:.1f}s"
    elif summary.failed:
        head = f"Finished in {summary.elapsed:.1f}s with failed batches"
    else:
        head = f"Done in {summary.elapsed:.1f}s"
    values = summary.input_values + request.invalid
    invalid = summary.invalid + request.invalid
    lines = [
        f"{head}: {summary.done:,} of {summary.unique_ids:,} prospect IDs done.",
        f"  input       {request.source}: {_plural(values, 'value')} = {summary.done:,} done"
        f" + {summary.failed:,} failed + {summary.not_tried:,} not yet tried"
        f" + {invalid:,} invalid + {summary.duplicates:,} repeated",
    ]
    lines.extend(f"              skipped {example}" for example in request.invalid_examples)
    lines.append(
        f"  this run    {_plural(summary.batches_run, 'batch', 'batches')}, "
        f"{_plural(summary.requests, 'request')} "
        f"({_plural(summary.retries, 'retry', 'retries')}, {summary.rate_limited:,} answered "
        f"429), {_plural(summary.events_written, 'event')} written"
    )
    if summary.elapsed > 0 and summary.batches_run:
        lines.append(f"  throughput  {summary.requests / summary.elapsed:,.1f} requests/s")
    lines.append(
        f"  output      {summary.output} ({request.fmt}): {summary.events_total:,} events "
        "from every run"
    )
    lines.append(f"  checkpoint  {summary.checkpoint}")
    if summary.failed:
        lines.append(
            f"  FAILED      {_plural(summary.failed_batches, 'batch', 'batches')} "
            f"({summary.failed:,} IDs) after their retries; the first:"
        )
        with Checkpoint.read(summary.checkpoint) as checkpoint:
            for number, record in enumerate(checkpoint.failed_batches()):
                if number == _FAILURES_SHOWN:
                    lines.append(f"              ... and {summary.failed_batches - number} more")
                    break
                lines.append(f"              {record.error}"[:300])
        lines.append(
            "  retry them  run the same command with --retry-failed: it retries exactly those"
        )
        if request.failed_out is not None:
            lines.append(f"              (their IDs are also in {request.failed_out})")
    if summary.interrupted:
        lines.append(f"  resume      {_resume_line(request)}")
    if missing:
        unique = request.valid - summary.duplicates
        lines.append(f"  LOST        {unaccounted_message(missing, unique=unique)}")
    return lines


def bulk_usage_problem(
    *, ids: str | None, out: str | None, checkpoint: str, append: bool, failed_out: str | None
) -> str | None:
    """Why these flags cannot go with --checkpoint, or None.

    (Whether --checkpoint is the input or another output is for ``_paths.clash``.)
    """
    if ids in (None, "-"):
        return (
            "--checkpoint needs --ids FILE: standard input cannot be read again on resume; "
            "save the IDs to a file first (e.g. `... > ids.txt`), then pass --ids ids.txt"
        )
    once = read_once(ids)
    if once is not None:
        # A resume must read the same input again: a pipe or FIFO is gone once read.
        return (
            f"--checkpoint needs --ids FILE that can be read again on resume, and {ids} is "
            f"{once}; save the IDs to a file first (e.g. `cat ... > ids.txt`), then pass "
            "--ids ids.txt"
        )
    if out in (None, "-"):
        return "--checkpoint needs --out FILE: standard output cannot be resumed"
    if append:
        return "--checkpoint appends on resume by itself: drop --append"
    return None
