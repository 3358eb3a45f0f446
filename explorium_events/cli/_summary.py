"""The one end-of-run summary of a pull, for fetch (with or without --checkpoint) and demo alike.

Every valid input value is in exactly one state: done, failed, not yet tried, or a
repeat of an earlier one; the input line says so. Then what this run did, how close
it ran to the rate limit, what went wrong, and the one next step that fixes it.

At the end of every run that was not interrupted the books are checked (``books``):
every value the command counted in its input must be done, failed, invalid or a
repeat (or, after a refused key or an output that could not be written, handed back
not done). Values in no state make the run INCOMPLETE, say how many, and exit 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._accounting import unaccounted, unaccounted_message
from .._errors import AuthenticationError, PermissionDeniedError
from .._results import PullSummary
from .._settings import API_KEY_VARIABLE
from ._common import plural

FAILURES_SHOWN = 5


def key_refused(error: AuthenticationError) -> str:
    """What to say when the API refused the key (401 or 403): two lines, never the key."""
    text = f"HTTP {error.status}: {error.message or 'no message'}"
    if error.correlation_id:
        text += f" (correlation_id {error.correlation_id})"
    if isinstance(error, PermissionDeniedError):
        hint = "The key may not do this: check the account's credits and permissions."
    else:
        hint = f"Check --api-key or {API_KEY_VARIABLE}."
    return f"{text}\n{hint} Nothing was retried."


def pace(
    units: int, limit: int | None, window: float, elapsed: float
) -> tuple[float, float] | None:
    """How close a run came to the rate limit: (the fastest the limit allows, that / elapsed).

    Under a sliding window of ``limit`` units per ``window`` seconds, ``units`` can go
    out in ``ceil(units / limit)`` bursts, one window apart, so no run can take less
    than ``(ceil(units / limit) - 1) * window`` seconds. None when the limit never
    had to hold anything back (``units <= limit``, or no limit).
    """
    if not limit or units <= limit or elapsed <= 0:
        return None
    fastest = (math.ceil(units / limit) - 1) * window
    return fastest, fastest / elapsed


def books(summary: PullSummary, *, total: int, invalid: int, handed_back: bool) -> int:
    """Input values in no state at the end of a run: 0 when the books balance.

    ``total`` and ``invalid`` are what the command counted in its input (valid values,
    repeats included, and invalid ones skipped) before the pull read it again: if that
    reading came up short (an input that cannot be read twice), ``summary`` balances on
    its own and only this comparison shows the loss. ``handed_back``: the run stopped
    early (a refused key, an output that could not be written), so the IDs not yet tried
    are accounted for, in --failed-out or the checkpoint. Not checked when interrupted.
    """
    if summary.interrupted:
        return 0
    return unaccounted(
        values=total + invalid,
        repeated=summary.duplicates,
        invalid=invalid + summary.invalid,
        succeeded=summary.done,
        failed=summary.failed + (summary.not_tried if handed_back else 0),
    )


def lost_message(report: RunReport) -> str:
    """What to say of a run whose books do not balance (``report.unaccounted`` values)."""
    run = report.summary
    unique = run.unique_ids + report.unread
    return unaccounted_message(report.unaccounted, unique=unique, entity=report.entity)


@dataclass(slots=True, kw_only=True)
class RunReport:
    """Everything the summary tells: pull()'s own summary and what the command line adds.

    ``batches_ok``, ``batches_failed``, ``ids_run`` (IDs of every batch run),
    ``ids_fetched`` (those of the batches that succeeded) and ``units_sent`` count this
    run; ``failures`` holds the errors of failed batches (every run's, with a checkpoint).
    """

    summary: PullSummary
    source: str
    output_format: str
    rate_limit: int | None
    rate_window: float
    rate_cost: str
    invalid: int = 0
    unread: int = 0  # valid values the command counted that the pull never read
    invalid_examples: Sequence[str] = ()
    batches_ok: int = 0
    batches_failed: int = 0
    ids_run: int = 0
    ids_fetched: int = 0
    units_sent: int = 0
    failures: list[str] = field(default_factory=list)
    failed_out: str | None = None
    failed_out_error: str | None = None  # why --failed-out could not be written: it lacks IDs
    rerun_advice: str = "fix the cause and run the same command again"  # PullRequest's
    key_refused: str | None = None
    gave_up: str | None = None
    write_failed: str | None = None
    stopped_after: float | None = None  # seconds from the stop signal to the stop
    entity: str = "prospect"  # whose IDs: prospect or business
    unaccounted: int = 0  # input values in no state at the end (``books``): a loss


def outcome(report: RunReport) -> str:
    """How the run ended, in one word of the summary's first line (and of its JSON)."""
    run = report.summary
    if run.interrupted:
        return "interrupted"
    if report.unaccounted:
        return "incomplete"
    if report.key_refused:
        return "key_refused"
    if report.gave_up:
        return "gave_up"
    if report.write_failed:
        return "write_failed"
    return "failed" if run.failed or run.not_tried or report.unread else "done"


_HEADS = {
    "interrupted": "Interrupted after {:.1f}s",
    "incomplete": "INCOMPLETE after {:.1f}s",
    "key_refused": "Stopped after {:.1f}s: the API refused the key",
    "gave_up": "Stopped after {:.1f}s: the server answered nothing usable",
    "write_failed": "Stopped after {:.1f}s: the output could not be written",
    "failed": "Finished in {:.1f}s with failed batches",
    "done": "Done in {:.1f}s",
}


def ids_done(report: RunReport) -> int:
    """The input values done: each fetched ID, and its repeats once every ID is done.

    A failed ID is never counted done, nor a repeat of one (that is certain only once
    every ID is done).
    """
    run = report.summary
    return run.done + (run.duplicates if run.complete and not report.unread else 0)


def throughput(report: RunReport) -> tuple[float, float] | None:
    """(IDs fetched per second, requests per second) of this run; None when none was fetched."""
    elapsed = report.summary.elapsed
    if elapsed <= 0 or not report.ids_fetched:
        return None
    return report.ids_fetched / elapsed, report.summary.requests / elapsed


def summary_lines(report: RunReport) -> list[str]:
    """The end-of-run summary, one screen at most."""
    run = report.summary
    elapsed = run.elapsed
    head = _HEADS[outcome(report)].format(elapsed)
    values = run.unique_ids + run.duplicates + report.unread
    not_tried = run.not_tried + report.unread
    lines = [f"{head}: {ids_done(report):,} of {values:,} {report.entity} IDs done."]

    invalid = run.invalid + report.invalid
    skipped = f" ({invalid:,} invalid skipped)" if invalid else ""
    lines.append(
        f"  input       {report.source}: {plural(values, 'ID')} = {run.done:,} done"
        f" + {run.failed:,} failed + {not_tried:,} not yet tried"
        f" + {run.duplicates:,} repeated{skipped}"
    )
    lines.extend(f"              skipped {example}" for example in report.invalid_examples)
    batches = report.batches_ok + report.batches_failed
    lines.append(
        f"  batches     {batches:,} run: {report.batches_ok:,} ok, {report.batches_failed:,} failed"
    )
    lines.append(
        f"  requests    {run.requests:,} ({plural(run.retries, 'retry', 'retries')}, "
        f"{run.rate_limited:,} answered 429)"
    )
    lines.append(
        f"  events      {run.events_written:,} written to {run.output} ({report.output_format}); "
        f"{run.duplicates_dropped:,} duplicates dropped"
    )
    if run.checkpoint:
        lines.append(
            f"  checkpoint  {run.checkpoint}; the output holds {run.events_total:,} events "
            "from every run"
        )
    speed = throughput(report)
    if speed is not None:
        lines.append(f"  throughput  {speed[0]:,.0f} IDs/s fetched, {speed[1]:,.1f} requests/s")
    lines.extend(_rate_limit_lines(report))
    lines.extend(_trouble_lines(report))
    lines.extend(_next_steps(report))
    return lines


def _rate_limit_lines(report: RunReport) -> list[str]:
    if report.rate_limit is None:
        return ["  rate limit  none on the client side (the server's headers still applied)"]
    unit = "requests" if report.rate_cost == "request" else "IDs"
    limit = f"{report.rate_limit:,} {unit} per {report.rate_window:g}s"
    elapsed = report.summary.elapsed
    close = pace(report.units_sent, report.rate_limit, report.rate_window, elapsed)
    if close is None:
        sent = plural(report.units_sent, unit.removesuffix("s"))
        return [f"  rate limit  {limit}: never reached ({sent} sent)"]
    fastest, ratio = close
    return [
        f"  rate limit  {limit}: ran at {ratio:.0%} of its pace ({report.units_sent:,} {unit} "
        f"need >= {fastest:.1f}s; took {elapsed:.1f}s)"
    ]


def _trouble_lines(report: RunReport) -> list[str]:
    run = report.summary
    lines: list[str] = []
    if report.key_refused:
        first, *rest = report.key_refused.splitlines()
        lines.append(f"  KEY REFUSED {first}")
        lines.extend(f"              {line}" for line in rest)
    if report.gave_up:
        lines.append(f"  GAVE UP     {report.gave_up}")
    if run.failed:
        lines.append(
            f"  FAILED      {plural(run.failed_batches, 'batch', 'batches')}"
            f" ({plural(run.failed, 'ID')}) after their retries:"
        )
        for error in report.failures[:FAILURES_SHOWN]:
            line = f"              {error}"[:300]
            # Batches given up on together share one error: once is enough.
            if line != lines[-1]:
                lines.append(line)
        if run.failed_batches > FAILURES_SHOWN:
            lines.append(f"              ... and {run.failed_batches - FAILURES_SHOWN} more")
    not_tried = run.not_tried + report.unread
    if not_tried and not run.interrupted:
        lines.append(f"  NOT DONE    {plural(not_tried, 'ID')} never fetched")
    if report.unaccounted:
        lines.append(f"  LOST        {lost_message(report)}")
    return lines


def _next_steps(report: RunReport) -> list[str]:
    run = report.summary
    lines: list[str] = []
    if run.interrupted:
        after = f"{report.stopped_after:.2f}s after the signal; " if report.stopped_after else ""
        consistent = "; the checkpoint is consistent" if run.checkpoint else ""
        lines.append(
            f"  stopped     {after}{run.output} holds every batch finished before it{consistent}"
        )
    if run.checkpoint:
        if run.failed:
            lines.append(
                "  retry them  run the same command with --retry-failed: it retries exactly those"
            )
            if report.failed_out is not None and report.failed_out_error is None:
                lines.append(f"              (their IDs are also in {report.failed_out})")
        if run.not_tried or report.unread:
            lines.append(
                f"  resume      run the same command again (same --ids, --out and --checkpoint "
                f"{run.checkpoint}): it skips the finished batches"
            )
        return lines
    undone = run.failed + (0 if run.interrupted else run.not_tried + report.unread)
    if undone and report.failed_out and report.failed_out_error is not None:
        # Its IDs are not all in the file, and without a checkpoint nothing else holds
        # them: only the whole command, run again, fetches each of them.
        lines.append(
            f"  retry them  {plural(undone, 'ID')} not done, and {report.failed_out} could not "
            f"hold them: {report.rerun_advice}"
        )
    elif undone and report.failed_out:
        lines.append(
            f"  retry them  {plural(undone, 'ID')} written to {report.failed_out}; "
            f"run again with --ids {report.failed_out}"
        )
    elif undone:
        lines.append("  retry them  pass --failed-out FILE to get their IDs in a file")
    return lines


def pull_figures(report: RunReport) -> dict[str, Any]:
    """Every figure of ``summary_lines``, as JSON values (for --summary-json)."""
    run = report.summary
    values = run.unique_ids + run.duplicates + report.unread
    speed = throughput(report)
    limit: dict[str, Any] | None = None
    if report.rate_limit is not None:
        close = pace(report.units_sent, report.rate_limit, report.rate_window, run.elapsed)
        limit = {
            "limit": report.rate_limit,
            "window_seconds": report.rate_window,
            "unit": report.rate_cost,
            "units_sent": report.units_sent,
            "fastest_seconds": close[0] if close else None,
            "pace": close[1] if close else None,
        }
    return {
        "outcome": outcome(report),
        "elapsed_seconds": round(run.elapsed, 3),
        "entity": report.entity,
        "input": {
            "source": report.source,
            "ids": values,
            "done": ids_done(report),
            "fetched": run.done,
            "failed": run.failed,
            "not_tried": run.not_tried + report.unread,
            "repeated": run.duplicates,
            "invalid": run.invalid + report.invalid,
            "invalid_examples": list(report.invalid_examples),
            "unaccounted": report.unaccounted,
        },
        "batches": {
            "run": report.batches_ok + report.batches_failed,
            "ok": report.batches_ok,
            "failed": report.batches_failed,
            "failed_in_total": run.failed_batches,
        },
        "requests": {
            "sent": run.requests,
            "retries": run.retries,
            "rate_limited": run.rate_limited,
        },
        "events": {
            "written": run.events_written,
            "output": run.output,
            "format": report.output_format,
            "duplicates_dropped": run.duplicates_dropped,
            "in_output": run.events_total if run.checkpoint else None,
        },
        "checkpoint": run.checkpoint or None,
        "throughput": (
            None
            if speed is None
            else {"ids_per_second": round(speed[0], 3), "requests_per_second": round(speed[1], 3)}
        ),
        "rate_limit": limit,
        "failures": list(report.failures),
        "failed_out": report.failed_out,
        "failed_out_error": report.failed_out_error,
        "key_refused": report.key_refused,
        "gave_up": report.gave_up,
        "write_failed": report.write_failed,
        "stopped_after_seconds": report.stopped_after,
    }
