"""Where the command line writes events: a small sink interface, one class per format.

    sink = open_sink("events.csv", "csv")      # or open_sink(None, "jsonl") for stdout
    with sink:
        sink.write(batch.events)               # as each batch arrives; flushed per call
        sink.flush_durably()                   # flush + fsync, e.g. before a checkpoint

A sink is anything with ``write(events) -> int``, ``flush_durably()`` and ``close()``
(see ``EventSink``). A new format registers a factory in ``SINKS`` and its name (and
any file extension) in ``_formats``, which the command line and ``pull()`` share.

- ``jsonl``: one event per line, exactly the JSON object the API sent (``Event.to_json``).
- ``csv``: one row per event under a fixed header: the common fields, then the data
  fields of the three known event types (their union, in a fixed order), then
  ``data_json``, which holds the whole ``data`` object whenever the columns cannot:
  an event type this client does not know, or fields the API added since.
- ``sqlite``: an ``events`` table keyed by event_id (upserted: pulling again never
  duplicates), with the common and data fields as columns and the raw JSON; see
  ``explorium_events.SqliteSink``. It needs a file; rows are committed by
  ``flush_durably()`` and ``close()``.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, BinaryIO, Protocol, Self, cast

import msgspec

from explorium_events import Event, EventType, SqliteSink

COMMON_COLUMNS = ("event_id", "event_name", "event_time", "prospect_id")
DATA_COLUMNS = (
    # prospect_changed_company and prospect_changed_role
    "current_company_name",
    "current_company_id",
    "current_job_title",
    "previous_company_name",
    "previous_company_id",
    "previous_job_title",
    # prospect_job_start_anniversary
    "full_name",
    "company_name",
    "job_title",
    "years_at_company",
    "job_anniversary_date",
    "linkedin_url",
)
CSV_COLUMNS = (*COMMON_COLUMNS, *DATA_COLUMNS, "data_json")
# Keys of ``data`` that the columns already carry (event_name repeats the event's own).
_CARRIED = frozenset((*DATA_COLUMNS, "event_name"))
_KNOWN_TYPES = frozenset(kind.value for kind in EventType)
_encode_json = msgspec.json.Encoder().encode


class EventSink(Protocol):
    """Where events go. ``name`` says where, for messages; ``written`` counts events."""

    name: str
    format: str
    written: int

    def write(self, events: Iterable[Event]) -> int:
        """Write these events (one batch), flush to the OS, and return how many."""
        ...

    def flush_durably(self) -> None:
        """Make everything written so far survive a crash: flush and fsync."""
        ...

    def close(self) -> None:
        """Flush and close (standard output is flushed, not closed). Idempotent."""
        ...


class _ByteSink:
    """A sink that renders each batch to bytes and appends them to a file or stdout."""

    format = ""

    def __init__(self, path: str | None, *, append: bool) -> None:
        self.written = 0
        self._closed = False
        self._owns_file = path is not None
        if path is None:
            sys.stdout.flush()  # anything printed as text goes out before our bytes
            self.name = "standard output"
            self._file: BinaryIO = _stdout_bytes()
            self._fresh = True
        else:
            self.name = path
            self._file = open(path, "ab" if append else "wb")  # noqa: SIM115 (owned)
            self._fresh = self._file.tell() == 0

    def _render(self, events: Iterable[Event]) -> tuple[bytes, int]:
        raise NotImplementedError

    def write(self, events: Iterable[Event]) -> int:
        """Write one batch of events and flush it to the OS; returns how many."""
        data, count = self._render(events)
        if data:
            self._file.write(data)
            self._file.flush()
        self.written += count
        return count

    def flush_durably(self) -> None:
        """Flush, then fsync when the output is a regular file (a pipe cannot be)."""
        self._file.flush()
        try:
            fileno = self._file.fileno()
        except (OSError, ValueError):  # an in-memory stream, as in tests
            return
        if stat.S_ISREG(os.fstat(fileno).st_mode):
            os.fsync(fileno)

    def close(self) -> None:
        """Flush and close the file; standard output is only flushed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_file:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} written={self.written}>"


class JsonlSink(_ByteSink):
    """One event per line: exactly the JSON object the API sent."""

    format = "jsonl"

    def _render(self, events: Iterable[Event]) -> tuple[bytes, int]:
        lines = [event.to_json() for event in events]
        if not lines:
            return b"", 0
        return b"\n".join(lines) + b"\n", len(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _encode_json(value).decode()  # numbers, booleans, nested objects: as JSON


def csv_row(event: Event) -> list[str]:
    """The CSV row of one event, in the order of ``CSV_COLUMNS``; values as the API sent them."""
    raw = event.to_dict()
    data = raw.get("data")
    data = data if isinstance(data, dict) else {}
    row = [_cell(raw.get(column)) for column in COMMON_COLUMNS]
    row.extend(_cell(data.get(column)) for column in DATA_COLUMNS)
    unknown_type = event.event_name not in _KNOWN_TYPES
    if unknown_type or not _CARRIED.issuperset(data):
        row.append(_encode_json(data).decode())
    else:
        row.append("")
    return row


class CsvSink(_ByteSink):
    """One row per event under the fixed header ``CSV_COLUMNS``, UTF-8, CRLF line ends."""

    format = "csv"

    def __init__(self, path: str | None, *, append: bool) -> None:
        super().__init__(path, append=append)
        self._header_due = self._fresh

    def _render(self, events: Iterable[Event]) -> tuple[bytes, int]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        if self._header_due:
            writer.writerow(CSV_COLUMNS)
            self._header_due = False
        count = 0
        for event in events:
            writer.writerow(csv_row(event))
            count += 1
        return buffer.getvalue().encode("utf-8"), count


SinkFactory = Callable[..., EventSink]
SINKS: dict[str, SinkFactory] = {"jsonl": JsonlSink, "csv": CsvSink, "sqlite": SqliteSink}


def open_sink(path: str | None, fmt: str, *, append: bool = False) -> EventSink:
    """Open a sink of this format on ``path`` (None: standard output).

    ``append`` keeps what the file holds (a CSV header is then written only to an
    empty file). Raises ValueError for an unknown format and OSError when the file
    cannot be opened.
    """
    factory = SINKS.get(fmt)
    if factory is None:
        raise ValueError(f"unknown output format {fmt!r}; known: {', '.join(sorted(SINKS))}")
    return factory(path, append=append)


def _stdout_bytes() -> BinaryIO:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        return cast(BinaryIO, buffer)
    return cast(BinaryIO, _TextAsBytes(sys.stdout))


class _TextAsBytes(io.RawIOBase):
    """Bytes written to a text stream that has no binary buffer (a replaced sys.stdout)."""

    def __init__(self, text: Any) -> None:
        super().__init__()
        self._text = text

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._text.write(bytes(data).decode("utf-8"))
        return len(data)

    def flush(self) -> None:
        self._text.flush()

    def fileno(self) -> int:
        raise OSError("no file descriptor")
