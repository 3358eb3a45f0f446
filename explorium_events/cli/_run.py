"""The one pull path of the command line: fetch, with or without --checkpoint, and demo.

Every pull goes through ``explorium_events.pull``; this module gives it what a person
at a terminal needs: the output opened here when it is standard output or --append
(pull() opens a path itself, so it can resume it), --failed-out, Ctrl-C (and SIGTERM
with a checkpoint) that stop within a moment with whole batches kept, one progress
line, one summary, and one exit status: 0 only when the books balance, every ID the
command counted in its input done, invalid or a repeat (``_summary.books``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Self, TextIO

from .._bulk import pull
from .._checkpoint import Checkpoint, FinishedBatch
from .._client import EventsClient
from .._errors import (
    AuthenticationError,
    ConfigurationError,
    OutputWriteError,
    ServerUnavailableError,
)
from .._models import Event
from .._results import PullSummary
from .._sinks import BuiltinSink, open_sink
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
    PROG,
    UsageError,
    say,
    silence_stdout,
)
from ._progress import Progress, Snapshot, logs_around
from ._request import PullRequest, commit_interval
from ._summary import RunReport, books, key_refused, lost_message, pull_figures, summary_lines
from ._summary_json import write_summary


def run_pull(client: EventsClient, request: PullRequest, progress: Progress) -> int:
    """Run the pull in a fresh event loop, tell how it went, and return the exit status."""
    with PullRun(request, progress) as run:
        try:
            asyncio.run(run.go(client))
        except KeyboardInterrupt:  # before our handler was in place, or raised in a callback
            run.interrupted = True
        return run.finish()


class _Watched:
    """A sink that shows each batch's events to ``watch`` once they are written."""

    def __init__(self, sink: BuiltinSink, watch: Callable[[Sequence[Event]], None]) -> None:
        self._sink = sink
        self._watch = watch
        self.name, self.format = sink.name, sink.format

    def write(self, events: Sequence[Event]) -> int:
        count = self._sink.write(events)
        self._watch(events)
        return count

    def flush_durably(self) -> None:
        self._sink.flush_durably()

    def discard_undurable(self) -> None:
        discard = getattr(self._sink, "discard_undurable", None)
        if discard is not None:
            discard()

    def close(self) -> None:
        self._sink.close()


class PullRun:
    """One pull from the command line: its outputs, its progress, and what it came to.

    Use it as a context manager (it closes what it opened); ``await go(client)`` in an
    event loop, then ``finish()`` prints the summary and returns the exit status.
    """

    def __init__(self, request: PullRequest, progress: Progress) -> None:
        self.request = request
        self.progress = progress
        self.interrupted = False
        self._client: EventsClient | None = None
        self._latest: PullSummary | None = None
        self._first: PullSummary | None = None
        self._requests_seen = (0, 0.0)  # when the number of requests last changed
        self._started = 0.0
        self.final: PullSummary | None = None  # the summary, once finish() has told it
        self.figures: dict[str, Any] = {}  # the summary's figures, once finish() has told it
        self._batches_ok = self._batches_failed = self._ids_run = self._units_sent = 0
        self._ids_fetched = 0
        self.pipe_closed = False  # the reader of standard output went away
        self._failures: list[str] = []
        self._key_refused: str | None = None
        self._gave_up: str | None = None
        self._write_failed: str | None = None
        self._failed_out_error: str | None = None  # --failed-out could not be written
        self._usage: str | None = None
        self._stop_requested_at: float | None = None
        self._stopped_at: float | None = None
        self._sink: BuiltinSink | None = None
        self._failed_file: TextIO | None = None
        if request.checkpoint is None:
            # pull() writes a path anew and cannot resume standard output: open it here.
            self._sink = self._open(request.out, request)
            self._failed_file = self._open_failed_out(request.failed_out)

    def _open(self, out: str | None, request: PullRequest) -> BuiltinSink:
        try:
            return open_sink(
                out,
                request.fmt,
                append=request.append,
                csv_raw_cells=request.csv_raw_cells,
                entity=request.entity,
            )
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
        except ConfigurationError as exc:  # SQLite to standard output, say
            raise UsageError(str(exc)) from None

    def _open_failed_out(self, path: str | None) -> TextIO | None:
        if path is None:
            return None
        try:
            return open(path, "w", encoding="utf-8")  # closed by close()
        except OSError as exc:
            self.close()
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the output and --failed-out, if this run opened them. Idempotent."""
        sink, failed, self._sink, self._failed_file = self._sink, self._failed_file, None, None
        try:
            if failed is not None:
                failed.close()
        finally:
            if sink is not None:
                sink.close()

    # -- what pull() tells us -----------------------------------------------------------------

    def _on_progress(self, summary: PullSummary) -> None:
        if self._first is None:
            self._first = summary
        self._latest = summary

    def _on_batch(self, record: FinishedBatch) -> None:
        size = len(record.prospect_ids)
        self._ids_run += size
        self._units_sent += record.attempts * (size if self._cost_is_per_id() else 1)
        if not record.failed:
            self._batches_ok += 1
            self._ids_fetched += size
            return
        self._batches_failed += 1
        if self.request.checkpoint is None:  # else the checkpoint holds every run's failures
            self._failures.append(record.error or "failed")
            self._hand_back(record.prospect_ids)

    def _hand_back(self, prospect_ids: tuple[str, ...]) -> None:
        """IDs not done: into --failed-out at once, so that a crash later loses none."""
        failed = self._failed_file
        if failed is None:
            return
        try:
            failed.write("".join(f"{pid}\n" for pid in prospect_ids))
            failed.flush()
        except OSError as exc:  # a full disk: told at the end, naming the file
            self._failed_file = None
            with contextlib.suppress(OSError):  # its buffer cannot be flushed either
                failed.close()
            self._failed_out_failed(exc)

    def _failed_out_failed(self, exc: OSError) -> None:
        assert self.request.failed_out is not None
        self._failed_out_error = str(OutputWriteError(self.request.failed_out, exc))

    def _cost_is_per_id(self) -> bool:
        assert self._client is not None
        return self._client.rate_limit_state().cost == "id"

    def _snapshot(self) -> Snapshot:
        assert self._client is not None
        client, summary, first = self._client, self._latest, self._first
        now = client.clock.monotonic()
        requests = summary.requests if summary is not None else 0
        if requests != self._requests_seen[0]:
            self._requests_seen = (requests, now)

        def settled(summary: PullSummary | None) -> int:
            return summary.done + summary.failed + summary.duplicates if summary else 0

        values = summary.unique_ids + summary.duplicates if summary else 0
        return Snapshot(
            ids_done=settled(summary),
            ids_total=max(self.request.total, values),
            events=summary.events_written if summary else 0,
            requests=requests,
            retries=summary.retries if summary else 0,
            rate_limited=summary.rate_limited if summary else 0,
            elapsed=now - self._started,
            limiter=client.rate_limit_state(),
            ids_at_start=settled(first),
            batch_size=client.batch_size,
            held_for=now - self._requests_seen[1],
        )

    # -- the run --------------------------------------------------------------------------------

    async def go(
        self,
        client: EventsClient,
        beside: Callable[[asyncio.Event], Awaitable[None]] | None = None,
    ) -> None:
        """Pull, with the progress line drawn and the stop signals caught; never raises for
        a refused key, a silent server, an output that cannot be written, or a stop.

        ``beside(stop)``, if given, runs at the same time with the same open client (so
        in the same rate-limit budget) and the same stop signal; it must not raise.
        """
        request = self.request
        self._client = client
        self._started = client.clock.monotonic()
        self._requests_seen = (0, self._started)
        stop = asyncio.Event()
        ticker = asyncio.create_task(self._tick()) if self.progress.enabled else None
        out: str | BuiltinSink | _Watched
        if self._sink is None:
            assert request.out is not None  # a checkpointed pull writes to a file
            out = request.out
        else:
            out = self._sink if request.watch is None else _Watched(self._sink, request.watch)
        try:
            with self._stop_on_signals(stop), logs_around(self.progress):
                async with client:
                    pulled = pull(
                        client,
                        request.ids,
                        out,
                        request.checkpoint,
                        format=request.fmt,
                        event_types=request.event_types,
                        timestamp_from=request.since,
                        timestamp_to=request.until,
                        # The command line checked the input whole, line numbers and all.
                        skip_invalid=True,
                        retry_failed=request.retry_failed,
                        progress=self._on_progress,
                        stop=stop,
                        commit_interval=commit_interval(request),
                        csv_raw_cells=request.csv_raw_cells,
                        on_batch=self._on_batch,
                        on_unfinished=self._hand_back,
                        entity=request.entity,
                    )
                    if beside is None:
                        self._latest = await pulled
                    else:
                        side = asyncio.ensure_future(beside(stop))
                        try:
                            self._latest, _ = await asyncio.gather(pulled, side)
                        except BaseException:  # the pull failed: stop beside before closing
                            side.cancel()
                            await asyncio.wait([side])
                            raise
        except AuthenticationError as error:
            self._key_refused = key_refused(error)
        except ServerUnavailableError as error:
            self._gave_up = error.message
        except OutputWriteError as error:
            if isinstance(error.__cause__, BrokenPipeError):
                self.pipe_closed = True  # the reader went away (`| head`): stop quietly
            else:
                self._write_failed = str(error)
        except BrokenPipeError:
            self.pipe_closed = True
        except ConfigurationError as error:  # a checkpoint of another pull, say
            self._usage = str(error)
        except asyncio.CancelledError:  # a second Ctrl-C: whole batches were still kept
            self.interrupted = True
        finally:
            self._stopped_at = client.clock.monotonic()
            if ticker is not None:
                ticker.cancel()
                await asyncio.wait([ticker])  # unlike awaiting it, never swallows our cancel
                self.progress.update(self._snapshot(), force=True)
            self.progress.clear()

    async def _tick(self) -> None:
        while True:
            self.progress.update(self._snapshot())
            await asyncio.sleep(self.progress.interval)

    @contextlib.contextmanager
    def _stop_on_signals(self, stop: asyncio.Event) -> Iterator[None]:
        """SIGINT (and SIGTERM, with a checkpoint) set ``stop``; a second one cancels the run."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert self._client is not None
        clock = self._client.clock

        def on_signal() -> None:
            if stop.is_set() and task is not None:
                task.cancel()
            if self._stop_requested_at is None:
                self._stop_requested_at = clock.monotonic()
            stop.set()

        wanted = [signal.SIGINT]
        if self.request.checkpoint is not None:
            wanted.append(signal.SIGTERM)
        installed = []
        for number in wanted:
            if signal.getsignal(number) is signal.SIG_IGN:
                continue  # ignored by whoever started us (nohup, a background job): keep it so
            try:
                loop.add_signal_handler(number, on_signal)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not main thread
                continue
            installed.append(number)
        try:
            yield
        finally:
            for number in installed:
                loop.remove_signal_handler(number)

    # -- the end --------------------------------------------------------------------------------

    def finish(self) -> int:
        """Print the summary (and what stopped the run); return the exit status."""
        request = self.request
        if self._usage is not None:
            raise UsageError(self._usage)
        if self.pipe_closed:
            silence_stdout()  # before close() flushes what the closed pipe refused
        self.close()
        summary = self._latest or request.nothing_done()
        if self.interrupted and not summary.interrupted:
            summary = replace(summary, interrupted=True)
        failures = self._failures
        if request.checkpoint is not None:
            failures, problem = self._from_checkpoint(request.checkpoint, request.failed_out)
            if problem is not None:
                self._failed_out_failed(problem)
        limiter = self._client.rate_limit_state() if self._client is not None else None
        stopped_after = None
        if summary.interrupted and self._stop_requested_at is not None and self._stopped_at:
            stopped_after = max(self._stopped_at - self._stop_requested_at, 0.0) or None
        report = RunReport(
            summary=summary,
            source=request.source,
            output_format=request.fmt,
            # The server may have said its limit is lower: the limiter knows.
            rate_limit=limiter.limit if limiter else None,
            rate_window=limiter.window if limiter else 60.0,
            rate_cost=limiter.cost if limiter else "request",
            invalid=request.invalid,
            unread=max(request.total - summary.unique_ids - summary.duplicates, 0),
            invalid_examples=request.invalid_examples,
            batches_ok=self._batches_ok,
            batches_failed=self._batches_failed,
            ids_run=self._ids_run,
            ids_fetched=self._ids_fetched,
            units_sent=(
                summary.requests
                if limiter is None or limiter.cost == "request"
                else self._units_sent
            ),
            failures=failures,
            failed_out=request.failed_out,
            failed_out_error=self._failed_out_error,
            rerun_advice=request.rerun_advice(),
            key_refused=self._key_refused,
            gave_up=self._gave_up,
            write_failed=self._write_failed,
            stopped_after=stopped_after,
            entity=request.entity,
            unaccounted=books(
                summary,
                total=request.total,
                invalid=request.invalid,
                handed_back=bool(self._key_refused or self._write_failed),
            ),
        )
        self.final = summary
        status = self._tell(report)
        self.figures = pull_figures(report)
        if self.pipe_closed:
            self.figures["outcome"] = "pipe_closed"
        write_summary(request.summary_json, request.command, status, self.figures)
        return status

    def _tell(self, report: RunReport) -> int:
        """Print the summary (unless -q or a closed pipe) and the errors; the exit status."""
        request, summary = self.request, report.summary
        if self.pipe_closed:
            return EXIT_PIPE  # quietly: the reader asked for no more, as `yes | head` does
        if not request.quiet:
            say(*summary_lines(report))
        if self._failed_out_error:
            say(
                f"{PROG} {request.command}: error: {self._failed_out_error}: it lacks IDs "
                f"that were not fetched; {request.rerun_advice()}"
            )
        if summary.interrupted:
            say(f"{PROG} {request.command}: interrupted")
            return EXIT_INTERRUPTED
        if self._write_failed:
            say(f"{PROG} {request.command}: error: {self._write_failed}")
            return EXIT_FAILED
        if self._failed_out_error:
            return EXIT_FAILED
        if report.unaccounted:
            say(f"{PROG} {request.command}: error: {lost_message(report)}")
            return EXIT_FAILED
        if request.quiet and (self._key_refused or self._gave_up):
            say(f"{PROG} {request.command}: error: {self._key_refused or self._gave_up}")
        trouble = self._key_refused or self._gave_up or not summary.complete
        return EXIT_FAILED if trouble else EXIT_OK

    @property
    def write_failed(self) -> bool:
        """Whether the output could not be written."""
        return self._write_failed is not None

    @staticmethod
    def _from_checkpoint(
        checkpoint: str, failed_out: str | None
    ) -> tuple[list[str], OSError | None]:
        """Every run's failed batches: their errors, and their IDs into --failed-out (and
        the error that kept them out of it: a full disk)."""
        errors: list[str] = []
        problem: OSError | None = None
        try:
            reader = Checkpoint.read(checkpoint)
        except ConfigurationError:  # stopped before the checkpoint was made
            reader = None
        try:
            with contextlib.ExitStack() as stack:
                target = None
                if failed_out is not None:
                    target = stack.enter_context(open(failed_out, "w", encoding="utf-8"))
                if reader is not None:
                    stack.enter_context(reader)
                    for record in reader.failed_batches():
                        errors.append(record.error)
                        if target is not None and problem is None:
                            try:
                                target.write("".join(f"{pid}\n" for pid in record.prospect_ids))
                            except OSError as exc:
                                problem = exc
        except OSError as exc:  # opening it, or flushing it on close
            problem = problem or exc
        return errors, problem
