"""The append-only file outputs: JSONL and CSV, written in whole batches, cut back on failure.

    sink = open_sink("events.csv", "csv")      # or open_sink(None, "jsonl") for stdout
    with sink:
        sink.write(batch.events)               # as each batch arrives; flushed per call
        sink.flush_durably()                   # flush + fsync, e.g. before a checkpoint

A write or flush the OS refuses raises ``OutputWriteError`` naming the file; what a
sink counts as written (``length``, ``durable_length``) is only ever whole batches, so
a resumed pull can cut the file back to ``durable_length`` (the registry's "truncate").

- ``jsonl``: one event per line, the JSON object the API sent (``Event.to_json``): the
  same keys, order and values; line breaks between its tokens, if any, are removed.
- ``csv``: one row per event under a fixed header: the columns of ``_columns`` (the
  common fields, then the data fields of the known event types), then ``data_json``,
  which holds the whole ``data`` object whenever the columns cannot: an event type
  this client does not know, or fields the API added since. Text cells that start like
  a spreadsheet formula get a leading ``'`` (see ``csv_row``).
"""

from __future__ import annotations

import csv
import io
import os
import stat
import sys
from collections.abc import Iterable
from types import TracebackType
from typing import Any, BinaryIO, Self, cast

import msgspec

from .._errors import OutputWriteError
from .._results import AnyEvent
from ._columns import TABLES, ColumnTable

CSV_COLUMNS = TABLES["prospect"].csv_columns
_encode_json = msgspec.json.Encoder().encode


class _ByteSink:
    """A sink that renders each batch to bytes and appends them to a file or stdout.

    It counts the bytes of whole batches written (``length``) and the part of them made
    durable by the last ``flush_durably()`` (``durable_length``). A write that fails
    may leave part of its bytes in the file (ENOSPC, EFBIG): they are cut off again
    when the file allows it, and never counted, so a checkpoint built on these lengths
    claims only whole, durable batches.
    """

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
            self.length = 0
        else:
            self.name = path
            # Unbuffered: a failed write leaves nothing in a buffer to be flushed later.
            self._file = open(path, "ab" if append else "wb", buffering=0)  # noqa: SIM115
            self.length = self._file.seek(0, os.SEEK_END)
            self._fresh = self.length == 0
        self.durable_length = self.length
        self._regular = _is_regular(self._file)
        # Standard output may be a file opened by the shell with content of its own.
        self._can_cut = self._owns_file and self._regular
        self._torn: OSError | None = None  # a failed write whose bytes could not be cut off

    def _render(self, events: Iterable[AnyEvent]) -> tuple[bytes, int]:
        raise NotImplementedError

    def write(self, events: Iterable[AnyEvent]) -> int:
        """Write one batch of events and flush it to the OS; returns how many.

        Raises OutputWriteError naming the file when the OS refuses the bytes.
        """
        if self._torn is not None:
            # Part of a failed write is still in the output: what follows would not parse.
            raise OutputWriteError(self.name, self._torn)
        data, count = self._render(events)
        if data:
            try:
                self._write_all(data)
                self._file.flush()
            except BrokenPipeError:
                raise  # the reader went away: the command line stops quietly
            except OSError as exc:
                if not self._cut_back(self.length):
                    self._torn = exc
                raise OutputWriteError(self.name, exc) from exc
            self.length += len(data)
        self.written += count
        return count

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            # A raw file may take part of the bytes and refuse the rest on the next call.
            done = self._file.write(view)
            if done is None:  # a non-blocking stream that is full: try again
                continue
            view = view[done:]

    def _cut_back(self, length: int) -> bool:
        """Drop what follows ``length`` in a regular file; True when it is done."""
        if not self._can_cut:
            return False
        try:
            self._file.truncate(length)
            self._file.seek(length)  # else the next write would leave a hole of zeros
        except OSError:
            return False  # never counted, so a resume cuts it instead
        return True

    def flush_durably(self) -> None:
        """Flush, then fsync when the output is a regular file (a pipe cannot be).

        Raises OutputWriteError naming the file when either fails.
        """
        try:
            self._file.flush()
            if self._regular:
                os.fsync(self._file.fileno())
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputWriteError(self.name, exc) from exc
        self.durable_length = self.length

    def discard_undurable(self) -> bool:
        """Cut a regular file back to ``durable_length``: what a failed run may keep.

        Returns False when that cannot be done (standard output, a pipe, a refusal).
        """
        if self._cut_back(self.durable_length):
            self.length = self.durable_length
            return True
        return False

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


def _is_regular(stream: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):  # an in-memory stream, as in tests
        return False


class JsonlSink(_ByteSink):
    """One event per line: the JSON object the API sent, on one line."""

    format = "jsonl"

    def _render(self, events: Iterable[AnyEvent]) -> tuple[bytes, int]:
        lines = [_one_line(event.to_json()) for event in events]
        if not lines:
            return b"", 0
        return b"\n".join(lines) + b"\n", len(lines)


def _one_line(raw: bytes) -> bytes:
    """The JSON object on one line: whitespace between tokens may hold line breaks.

    A line break inside a JSON string is always escaped, so only the whitespace between
    tokens can hold one; ``format`` rewrites just that whitespace, keeping every key,
    its order and every value's exact text.
    """
    if b"\n" in raw or b"\r" in raw:
        return msgspec.json.format(raw, indent=0)
    return raw


# OWASP "CSV injection": a cell starting with one of these is a formula to a spreadsheet.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any, *, raw: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        if not raw and value.startswith(_FORMULA_STARTS):
            return "'" + value
        return value
    # Numbers, booleans, nested objects: as JSON. A JSON number such as -3 is left as it
    # is: a spreadsheet reads it as the number, and it cannot hold a formula.
    return _encode_json(value).decode()


def csv_row(
    event: AnyEvent, *, raw_cells: bool = False, table: ColumnTable = TABLES["prospect"]
) -> list[str]:
    """The CSV row of one event, in the order of ``table.csv_columns`` (``CSV_COLUMNS``).

    Values are as the API sent them, except that a text cell starting with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return gets a leading ``'`` so that a spreadsheet
    shows it as text instead of running it as a formula; ``raw_cells`` turns that off.
    """
    raw = event.to_dict()
    data = raw.get("data")
    data = data if isinstance(data, dict) else {}
    row = [_cell(raw.get(column.name), raw=raw_cells) for column in table.common]
    row.extend(_cell(data.get(column.name), raw=raw_cells) for column in table.data)
    row.append(data_json(event, data, table) or "")  # starts with "{": never a formula
    return row


def data_json(
    event: AnyEvent, data: dict[str, Any], table: ColumnTable = TABLES["prospect"]
) -> str | None:
    """The event's whole ``data`` as JSON when ``table``'s columns cannot carry it, else None.

    That is an event type this client does not know, or fields the API added since (or,
    for business events, a data field beyond the common ones).
    """
    if event.event_name not in table.known_types or not table.carried_data_keys.issuperset(data):
        return _encode_json(data).decode()
    return None


class CsvSink(_ByteSink):
    """One row per event under a fixed header, UTF-8, CRLF line ends.

    The header is ``CSV_COLUMNS`` for prospect events; with ``entity="business"`` it is
    the business table's (``business_id``, the common business data fields,
    ``data_json``). Text cells that a spreadsheet would run as a formula are neutralised
    (see ``csv_row``) unless ``raw_cells=True``.
    """

    format = "csv"

    def __init__(
        self,
        path: str | None,
        *,
        append: bool,
        raw_cells: bool = False,
        entity: str = "prospect",
    ) -> None:
        self._table = TABLES[entity]
        super().__init__(path, append=append)
        self._header_due = self._fresh
        self._raw_cells = raw_cells

    def _render(self, events: Iterable[AnyEvent]) -> tuple[bytes, int]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        header = self._header_due
        if header:
            writer.writerow(self._table.csv_columns)
        count = 0
        for event in events:
            writer.writerow(csv_row(event, raw_cells=self._raw_cells, table=self._table))
            count += 1
        return buffer.getvalue().encode("utf-8"), count

    def write(self, events: Iterable[AnyEvent]) -> int:
        """Write one batch of rows (after the header, for a new file) and flush to the OS."""
        count = super().write(events)
        self._header_due = False  # only once the header's bytes are really in the file
        return count


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
