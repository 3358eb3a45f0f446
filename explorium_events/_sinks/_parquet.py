"""The Parquet output: a directory of part files, one per durable flush, typed by the column table.

    sink = open_sink("events.parquet", "parquet")   # needs the [parquet] extra (pyarrow)
    sink.write(batch.events)                         # held in memory until the next flush
    sink.flush_durably()                             # part-00000.parquet, fsynced, renamed

A Parquet file cannot be appended to, so ``events.parquet`` is a directory (a dataset
that pyarrow, pandas, polars, DuckDB and Spark read whole) of ``part-NNNNN.parquet``
files. Each ``flush_durably()`` writes the events written since the last one as the next
part: to a temporary name, fsynced, renamed, and the directory fsynced. So a part is
either whole or absent, and ``durable_length`` counts the parts: a checkpoint records
it, and a resumed pull deletes the parts after it (``cut_back``) and runs their batches
again, as it cuts a JSONL file back to its recorded bytes.

Columns: those of the entity's column table (``_columns``: the CSV's) with their
types (text as string, ``years_at_company`` as int64, ``amount_raised`` as float64,
``event_time`` and ``job_anniversary_date`` as timestamp[us, UTC]; a list such as
``job_titles`` as its JSON text, as in the CSV), then ``data_json`` (the whole ``data``
object when the columns cannot carry it, as in the CSV) and ``raw_json`` (the event
exactly as the API sent it). A value that does not fit its column's type (a data field
of an unknown shape) is null there; ``raw_json`` has it. Business events
(``entity="business"``) get the business table's columns (``business_id``, the common
business data fields): a dataset holds one entity's events.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

import msgspec

from .._errors import ConfigurationError, OutputWriteError
from .._results import AnyEvent
from ._columns import TABLES, ColumnTable
from ._files import data_json

PARQUET_EXTRA = "pip install 'explorium-events[parquet]'"
_PART = re.compile(r"^part-(\d{5,})\.parquet$")
_TEMPORARY = re.compile(r"^\.part-\d{5,}\.parquet\.tmp$")
_INT64 = range(-(2**63), 2**63)
_encode_json = msgspec.json.Encoder().encode


def require_pyarrow() -> Any:
    """The pyarrow module; ConfigurationError naming the extra when it is missing."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ConfigurationError(
            f"the parquet format needs pyarrow, which is not installed: {PARQUET_EXTRA}"
        ) from exc
    return pyarrow


def _schema(pa: Any, table: ColumnTable) -> Any:
    types = {
        "text": pa.string(),
        "integer": pa.int64(),
        "real": pa.float64(),
        "timestamp": pa.timestamp("us", "UTC"),
    }
    fields = [pa.field(c.name, types[c.kind], nullable=not c.required) for c in table.columns]
    fields.append(pa.field("data_json", pa.string()))
    fields.append(pa.field("raw_json", pa.string(), nullable=False))
    return pa.schema(fields)


def part_name(number: int) -> str:
    """The file name of part ``number`` (0-based)."""
    return f"part-{number:05d}.parquet"


def list_parts(path: str) -> list[int]:
    """The numbers of the part files in the dataset directory ``path``, in order.

    Raises ConfigurationError when ``path`` is a file, or a directory holding anything
    but parts (and leftover temporary parts): it is not this format's output.
    """
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise ConfigurationError(
            f"the output {path} is a file; a parquet output is a directory of part files "
            "(events.parquet/part-00000.parquet, ...): name a new path"
        ) from None
    numbers = []
    for name in names:
        if found := _PART.match(name):
            numbers.append(int(found.group(1)))
        elif not _TEMPORARY.match(name):
            raise ConfigurationError(
                f"the output directory {path} holds {name!r}, which is not a part of this "
                "output: name a new path, or an empty or earlier parquet output"
            )
    return sorted(numbers)


def dataset_size(path: str) -> int:
    """How many consecutive parts (from part 0) ``path`` holds; -1 when it is missing."""
    if not os.path.exists(path):
        return -1
    count = 0
    for number in list_parts(path):
        if number != count:
            break
        count += 1
    return count


def cut_back(path: str, parts: int) -> None:
    """Delete every part after the first ``parts`` ones, and any temporary leftovers."""
    list_parts(path)  # refuses a directory that is not ours
    for name in os.listdir(path):
        found = _PART.match(name)
        if _TEMPORARY.match(name) or (found and int(found.group(1)) >= parts):
            os.unlink(os.path.join(path, name))
    _fsync_directory(path)


def _fsync_directory(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _utc(value: object) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # year 9999 at -14:00 has no UTC time
        return None


def _typed(value: object, kind: str) -> object:
    """``value`` as its column can hold it, or None (``raw_json`` keeps every value)."""
    if value is None:
        return None
    if kind == "timestamp":
        return _utc(value)
    if kind == "integer":
        return value if type(value) is int and value in _INT64 else None
    if kind == "real":
        if type(value) is float:
            return value
        if type(value) is int and abs(value) <= 2**53:  # exact as a float64
            return float(value)
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):  # job_titles, investors: as the CSV has them
        return _encode_json(value).decode()
    return None


class ParquetSink:
    """Writes events as part files of a Parquet dataset directory; see the module's text."""

    format = "parquet"

    def __init__(self, path: str | None, *, append: bool, entity: str = "prospect") -> None:
        if path is None:
            raise ConfigurationError(
                "the parquet format needs an output path (a directory), not standard output"
            )
        self._pa = require_pyarrow()
        self._table = TABLES[entity]
        self._schema = _schema(self._pa, self._table)
        self.name = path
        self.written = 0
        self._rows: list[tuple[Any, ...]] = []
        self._closed = False
        if append:
            self.length = max(dataset_size(path), 0)
        else:
            # A new output: what an earlier run left here goes (only parts of ours).
            if os.path.exists(path):
                cut_back(path, 0)
            self.length = 0
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise OutputWriteError(path, exc) from exc
        self.durable_length = self.length

    def write(self, events: Iterable[AnyEvent]) -> int:
        """Hold one batch of events for the next part; returns how many."""
        count = 0
        for event in events:
            self._rows.append(self._row(event))
            count += 1
        self.written += count
        return count

    def _row(self, event: AnyEvent) -> tuple[Any, ...]:
        table = self._table
        raw = event.to_dict()
        data = raw.get("data")
        data = data if isinstance(data, dict) else {}
        if isinstance(event.data, dict) or event.data is None:
            values: dict[str, Any] = data
        else:
            values = {c.name: getattr(event.data, c.name, None) for c in table.data}
        cells = [
            _typed(values.get(c.name) if c.in_data else getattr(event, c.name), c.kind)
            for c in table.columns
        ]
        cells.append(data_json(event, data, table))
        cells.append(event.to_json().decode())
        return tuple(cells)

    def flush_durably(self) -> None:
        """Write the held events as the next part, durably; nothing when none are held.

        Raises OutputWriteError naming the output when the part cannot be written; no
        part of it is left behind, and the events stay held.
        """
        if not self._rows:
            return
        columns = list(zip(*self._rows, strict=True))
        table = self._pa.Table.from_arrays(
            [
                self._pa.array(column, type=field.type)
                for column, field in zip(columns, self._schema, strict=True)
            ],
            schema=self._schema,
        )
        final = os.path.join(self.name, part_name(self.length))
        temporary = os.path.join(self.name, "." + part_name(self.length) + ".tmp")
        try:
            with open(temporary, "wb") as file:
                self._pa.parquet.write_table(table, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, final)
            _fsync_directory(self.name)
        except OSError as exc:
            with contextlib.suppress(OSError):  # else a resume deletes it
                os.unlink(temporary)
            raise OutputWriteError(self.name, exc) from exc
        self._rows = []
        self.length += 1
        self.durable_length = self.length

    def discard_undurable(self) -> bool:
        """Drop the events held since the last flush (a failed run keeps only parts)."""
        self._rows = []
        return True

    def close(self) -> None:
        """Write what is still held as a last part. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.flush_durably()

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
        return f"<ParquetSink {self.name!r} written={self.written} parts={self.length}>"
