"""The bulk pull's checkpoint: what it records, what it refuses, how its counts add up."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from pathlib import Path

import pytest

from explorium_events import CheckpointMismatchError, ConfigurationError
from explorium_events._checkpoint import (
    STATE_DONE,
    STATE_FAILED,
    STATE_PENDING,
    Checkpoint,
    FinishedBatch,
    PullSpec,
)
from explorium_events._ratelimit import ServerLimit
from tests.conftest import prospect_id

SPEC = PullSpec(
    input_fingerprint="f" * 64,
    unique_ids=200,
    event_types=("prospect_changed_company", "prospect_changed_role"),
    timestamp_from="2026-09-01",
    timestamp_to=None,
    batch_size=40,
    output="/data/events.jsonl",
    output_format="jsonl",
)


def batch_ids(position: int, size: int = 40) -> tuple[str, ...]:
    return tuple(prospect_id(position * 40 + number) for number in range(size))


def test_a_new_checkpoint_starts_with_every_batch_pending(tmp_path: Path) -> None:
    """A fresh checkpoint is new, has one pending state per batch and nothing counted."""
    with Checkpoint.open(tmp_path / "pull.ckpt", SPEC) as checkpoint:
        assert checkpoint.new
        assert checkpoint.states() == bytearray([STATE_PENDING] * 5)
        counts = checkpoint.counts()
        assert (counts.done_ids, counts.failed_ids, counts.events) == (0, 0, 0)
        assert checkpoint.output_length == 0


def test_reopening_for_the_same_pull_keeps_what_was_recorded(tmp_path: Path) -> None:
    """Done and failed batches and the output length survive closing and reopening."""
    path = tmp_path / "pull.ckpt"
    with Checkpoint.open(path, SPEC) as checkpoint:
        checkpoint.record(
            [
                FinishedBatch(position=0, prospect_ids=batch_ids(0), events=7, attempts=1),
                FinishedBatch(
                    position=3,
                    prospect_ids=batch_ids(3),
                    failed=True,
                    status=503,
                    error="server error",
                    correlation_id="c" * 32,
                    attempts=6,
                ),
            ],
            output_length=1234,
        )
    with Checkpoint.open(path, SPEC) as checkpoint:
        assert not checkpoint.new
        assert checkpoint.states() == bytearray(
            [STATE_DONE, STATE_PENDING, STATE_PENDING, STATE_FAILED, STATE_PENDING]
        )
        assert checkpoint.output_length == 1234
        counts = checkpoint.counts()
        assert (counts.done_ids, counts.failed_ids, counts.events) == (40, 40, 7)
        assert (counts.done_batches, counts.failed_batches) == (1, 1)


def test_failed_batches_keep_their_ids_error_status_and_correlation_id(tmp_path: Path) -> None:
    """A failed batch is stored with everything needed to retry it and to ask support."""
    with Checkpoint.open(tmp_path / "pull.ckpt", SPEC) as checkpoint:
        checkpoint.record(
            [
                FinishedBatch(
                    position=4,
                    prospect_ids=batch_ids(4, 17),
                    failed=True,
                    status=None,
                    error="connection dropped",
                    correlation_id=None,
                    attempts=6,
                ),
                FinishedBatch(
                    position=2,
                    prospect_ids=batch_ids(2),
                    failed=True,
                    status=500,
                    error="HTTP 500",
                    correlation_id="a" * 32,
                    attempts=6,
                ),
            ],
            output_length=None,
        )
        failed = list(checkpoint.failed_batches())
    assert [record.position for record in failed] == [2, 4]
    assert failed[0].prospect_ids == batch_ids(2)
    assert (failed[0].status, failed[0].error, failed[0].correlation_id) == (
        500,
        "HTTP 500",
        "a" * 32,
    )
    assert failed[1].prospect_ids == batch_ids(4, 17)
    assert failed[1].status is None


def test_a_failed_batch_that_succeeds_later_counts_as_done_only(tmp_path: Path) -> None:
    """Recording a retried batch as done replaces its failure: no ID is counted twice."""
    with Checkpoint.open(tmp_path / "pull.ckpt", SPEC) as checkpoint:
        failed = FinishedBatch(
            position=1, prospect_ids=batch_ids(1), failed=True, status=503, error="busy"
        )
        checkpoint.record([failed], output_length=0)
        checkpoint.record(
            [FinishedBatch(position=1, prospect_ids=batch_ids(1), events=3)], output_length=99
        )
        counts = checkpoint.counts()
        assert (counts.done_ids, counts.failed_ids, counts.failed_batches) == (40, 0, 0)
        assert list(checkpoint.failed_batches()) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"input_fingerprint": "0" * 64}, "the input IDs differ"),
        ({"event_types": ("prospect_changed_role",)}, "the event types"),
        ({"timestamp_from": "2026-10-01"}, "the window start"),
        ({"timestamp_to": "2026-11-01"}, "the window end"),
        ({"output": "/data/other.jsonl"}, "the output: /data/events.jsonl in the checkpoint"),
        ({"output_format": "csv"}, "the output format"),
        ({"batch_size": 20}, "the batch size"),
    ],
)
def test_a_different_pull_is_refused_naming_what_differs(
    tmp_path: Path, change: dict[str, object], words: str
) -> None:
    """Opening a checkpoint for a pull that differs in any way raises and says how."""
    path = tmp_path / "pull.ckpt"
    Checkpoint.open(path, SPEC).close()
    other = dataclasses.replace(SPEC, **change)  # type: ignore[arg-type]
    with pytest.raises(CheckpointMismatchError, match="belongs to a different pull") as caught:
        Checkpoint.open(path, other)
    assert any(words in difference for difference in caught.value.differences)
    assert words in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    """Neither a text file nor some other SQLite database is taken for a checkpoint."""
    text = tmp_path / "notes.txt"
    text.write_text("not a database, clearly " * 100)
    with pytest.raises(ConfigurationError, match="not a checkpoint"):
        Checkpoint.open(text, SPEC)
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE things (x)")
    with pytest.raises(ConfigurationError, match="not a checkpoint"):
        Checkpoint.open(other, SPEC)


def test_read_opens_an_existing_checkpoint_whatever_its_pull(tmp_path: Path) -> None:
    """Checkpoint.read gives the stored spec and counts without knowing the pull."""
    path = tmp_path / "pull.ckpt"
    with Checkpoint.open(path, SPEC) as checkpoint:
        checkpoint.record([FinishedBatch(position=0, prospect_ids=batch_ids(0))], output_length=5)
    with Checkpoint.read(path) as checkpoint:
        assert checkpoint.spec == SPEC
        assert checkpoint.counts().done_ids == 40
    with pytest.raises(ConfigurationError, match="no such checkpoint"):
        Checkpoint.read(tmp_path / "missing.ckpt")


def test_a_second_run_on_the_same_checkpoint_at_once_is_refused(tmp_path: Path) -> None:
    """While one run holds the checkpoint, another is refused; after it closes, welcome."""
    path = tmp_path / "pull.ckpt"
    with Checkpoint.open(path, SPEC):
        with pytest.raises(ConfigurationError, match="another process is pulling"):
            Checkpoint.open(path, SPEC)
    with Checkpoint.open(path, SPEC) as again:
        assert not again.new


@pytest.mark.parametrize(
    "stored", ['{"limit": 0, "cost": "request"}', '{"limit": 10, "cost": "byte"}', "[10]", "ten"]
)
def test_a_remembered_limit_that_is_not_one_is_ignored(tmp_path: Path, stored: str) -> None:
    """A server_limit edited by hand into nonsense reads as none, not as an error."""
    path = tmp_path / "pull.ckpt"
    with Checkpoint.open(path, SPEC) as checkpoint:
        checkpoint.record(
            [FinishedBatch(position=0, prospect_ids=batch_ids(0))],
            output_length=0,
            server_limit=ServerLimit(200, "request"),
        )
        assert checkpoint.server_limit == ServerLimit(200, "request")
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'server_limit'", (stored,))
    with Checkpoint.open(path, SPEC) as checkpoint:
        assert checkpoint.server_limit is None
