"""What one pull of the command line is asked to do, and how often it commits.

A command (fetch, demo) fills a ``PullRequest``; ``_run`` carries it out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .._bulk_run import COMMIT_INTERVAL
from .._models import Event
from .._results import PullSummary
from .._sinks import FORMATS


@dataclass(slots=True, kw_only=True)
class PullRequest:
    """Everything a command decided about one pull.

    ``ids`` are the input's valid values (repeats included: the pull drops them), and
    ``total`` how many that is; ``invalid`` and ``invalid_examples`` are what the
    command's own check of the input skipped. ``out`` None is standard output.
    ``watch`` sees each batch's events as they are written (the demo's check).
    """

    command: str
    ids: Iterable[str]
    total: int
    source: str
    out: str | None
    fmt: str
    invalid: int = 0
    invalid_examples: Sequence[str] = ()
    append: bool = False
    checkpoint: str | None = None
    retry_failed: bool = False
    failed_out: str | None = None
    event_types: list[str] | None = None
    since: dt.date | dt.datetime | None = None
    until: dt.date | dt.datetime | None = None
    csv_raw_cells: bool = False
    entity: str = "prospect"  # whose IDs: prospect or business
    quiet: bool = False  # -q: no summary (errors still)
    summary_json: str | None = None  # --summary-json: where the figures go, or None
    watch: Callable[[Sequence[Event]], None] | None = None

    def nothing_done(self) -> PullSummary:
        """The summary of this pull stopped before it began."""
        return PullSummary(
            input_values=self.total,
            unique_ids=self.total,
            done=0,
            failed=0,
            not_tried=self.total,
            invalid=0,
            duplicates=0,
            failed_batches=0,
            events_total=0,
            events_written=0,
            batches_run=0,
            requests=0,
            retries=0,
            rate_limited=0,
            duplicates_dropped=0,
            elapsed=0.0,
            interrupted=False,
            checkpoint=self.checkpoint or "",
            output=self.out or "standard output",
        )

    def rerun_advice(self) -> str:
        """How to fetch what this run did not, when nothing else holds those IDs.

        Running the same command again does, unless that writes something a second time:
        with --append the done batches' events into the same file, and to standard output
        to its reader again (a checkpoint would skip them).
        """
        if self.checkpoint is None and self.out is None:
            repeats = "the done batches' events go to standard output again"
        elif self.checkpoint is None and self.append:
            repeats = f"--append adds the done batches' events to {self.out} a second time"
        else:
            return "fix the cause and run the same command again"
        return (
            f"fix the cause and run the command again, knowing that {repeats} "
            "(use --checkpoint FILE to resume instead)"
        )


def commit_interval(request: PullRequest) -> float:
    """Seconds between the pull's durable flushes (each followed by a checkpoint commit).

    With a checkpoint, pull()'s usual interval. Without one, a batch counts as done, and
    a failed one reaches --failed-out, once a commit has made it durable: so every batch
    commits on its own (0). Not for a format whose every durable flush makes a file
    (parquet: a part per batch would be thousands of tiny files): it keeps the usual
    interval, a part a second, and the batches of the last second reach --failed-out
    (if they failed) that much later; an orderly stop or an error still hands every
    batch not done to --failed-out. ``kill -9`` loses them: use --checkpoint.
    """
    if request.checkpoint is not None or not FORMATS[request.fmt].flush_per_batch:
        return COMMIT_INTERVAL
    return 0.0
