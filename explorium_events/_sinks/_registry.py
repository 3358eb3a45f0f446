"""The one registry of output formats: name, file extensions, factory, and how a resume treats it.

    format_for("events.db")                    # "sqlite": from the extension
    open_sink("events.csv", "csv")             # a CsvSink; open_sink(None, "jsonl"): stdout

A new format is one ``Format`` in ``FORMATS``: the command line's ``--format`` choices,
the extensions it recognises and ``pull()`` all read this table. ``PullOutput`` is a
pull's output: a registered format's file, opened for the checkpoint's state as its
``resume`` says, or the caller's own EventSink.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from .._errors import ConfigurationError, OutputWriteError
from .._results import AnyEvent
from . import _parquet
from ._files import CsvSink, JsonlSink
from ._json import JsonArraySink
from ._parquet import ParquetSink
from ._protocol import BuiltinSink, EventSink
from ._sqlite import SqliteSink

logger = logging.getLogger("explorium_events")

Resume = Literal["truncate", "upsert", "none"]


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return -1


class _Counted(Protocol):
    """A sink that counts what it has made durable, in its format's unit."""

    durable_length: int


@dataclass(frozen=True, slots=True)
class Format:
    """An output format, as the command line and pull() know it."""

    name: str
    extensions: tuple[str, ...]
    open: Callable[[str | None, bool, bool, str], BuiltinSink]
    """(path or None for standard output, append, csv_raw_cells, entity) -> an open sink."""
    resume: Resume
    """What a resumed pull does with the output: "truncate" cuts it back to the durable
    length the checkpoint recorded (the batches written after it run again); "upsert"
    keeps it, since a batch written again replaces its own rows; "none": it cannot be
    resumed (a JSON array is whole only once closed), so a checkpoint refuses it."""
    size: Callable[[str], int] = _file_size
    """For "truncate": how much the output holds now, in ``unit``s; -1 when it is missing."""
    cut: Callable[[str, int], None] = os.truncate
    """For "truncate": cut the output back to this many ``unit``s."""
    unit: str = "bytes"
    require: Callable[[], object] | None = None
    """ConfigurationError when the format cannot be written here (a missing extra)."""
    flush_per_batch: bool = True
    """Whether a pull without a checkpoint may make each batch durable on its own, so
    that a batch counts as done (and a failed one is told) at once. False where each
    durable flush makes a file (parquet's parts): such a pull commits on the normal
    interval instead, a part a second rather than one per batch."""


FORMATS: dict[str, Format] = {
    fmt.name: fmt
    for fmt in (
        Format(
            "jsonl",
            (".jsonl", ".ndjson"),
            lambda path, append, _raw, _entity: JsonlSink(path, append=append),
            "truncate",
        ),
        Format(
            "csv",
            (".csv",),
            lambda path, append, raw, entity: CsvSink(
                path, append=append, raw_cells=raw, entity=entity
            ),
            "truncate",
        ),
        Format(
            "sqlite",
            (".db", ".sqlite", ".sqlite3"),
            lambda path, append, _raw, entity: SqliteSink(path, append=append, entity=entity),
            "upsert",
        ),
        Format(
            "json",
            (".json",),
            lambda path, append, _raw, _entity: JsonArraySink(path, append=append),
            "none",
        ),
        # A directory of part files; the checkpoint counts parts (see _parquet).
        Format(
            "parquet",
            (".parquet",),
            lambda path, append, _raw, entity: ParquetSink(path, append=append, entity=entity),
            "truncate",
            size=_parquet.dataset_size,
            cut=_parquet.cut_back,
            unit="parts",
            require=_parquet.require_pyarrow,
            flush_per_batch=False,
        ),
    )
}
DEFAULT_FORMAT = "jsonl"
EXTENSIONS: dict[str, str] = {ext: fmt.name for fmt in FORMATS.values() for ext in fmt.extensions}


def _known(name: str) -> Format:
    fmt = FORMATS.get(name)
    if fmt is None:
        raise ConfigurationError(
            f"unknown output format {name!r}; known: {', '.join(sorted(FORMATS))}"
        )
    return fmt


def format_for(path: str | os.PathLike[str] | None, explicit: str | None = None) -> str:
    """The format to write: the one asked for, else the file's extension's, else jsonl.

    Raises ConfigurationError for a format that is not in FORMATS.
    """
    if explicit:
        return _known(explicit).name
    if path is None:
        return DEFAULT_FORMAT
    return EXTENSIONS.get(os.path.splitext(os.fspath(path))[1].lower(), DEFAULT_FORMAT)


def open_sink(
    path: str | None,
    fmt: str,
    *,
    append: bool = False,
    csv_raw_cells: bool = False,
    entity: str = "prospect",
) -> BuiltinSink:
    """Open a sink of this format on ``path`` (None: standard output) for ``entity``'s events.

    ``entity`` ("prospect" or "business") picks the CSV columns and the SQLite table.
    ``append`` keeps what the file holds (a CSV header is then written only to an
    empty file). ``csv_raw_cells`` writes CSV cells that start like a formula as they
    are. Raises ConfigurationError for an unknown format (or SQLite without a file)
    and OSError when the file cannot be opened.
    """
    return _known(fmt).open(path, append, csv_raw_cells, entity)


class PullOutput:
    """A pull's output: opened for the checkpoint's state, flushed durably before each commit.

    A registered format's file is opened, resumed and closed here; the caller's own
    sink is written and flushed, and closed by the caller.
    """

    def __init__(
        self,
        out: str | os.PathLike[str] | EventSink,
        fmt: str | None,
        *,
        csv_raw_cells: bool,
        entity: str = "prospect",
    ) -> None:
        self._entity = entity
        self._format: Format | None = None
        self._path = ""
        self._csv_raw_cells = csv_raw_cells
        self._sink: EventSink | None = None
        self._file: _Counted | None = None  # the sink, when it is cut back on resume
        if isinstance(out, str | os.PathLike):
            self._format = FORMATS[format_for(out, fmt)]
            if self._format.require is not None:
                self._format.require()  # before a checkpoint is made for it
            self._path = self.name = os.path.abspath(os.fspath(out))
            self.format = self._format.name
        elif isinstance(out, EventSink):
            kind = type(out)
            self.name = getattr(out, "name", None) or f"{kind.__module__}.{kind.__qualname__}"
            self.format = str(getattr(out, "format", "") or "custom")
            self._sink = out
        else:
            raise ConfigurationError(
                f"out={out!r}: give an output path or a sink with write, flush_durably and close"
            )

    def require_resumable(self, what: str) -> None:
        """ConfigurationError when this output's format cannot be resumed by ``what``."""
        if self._format is not None and self._format.resume == "none":
            raise ConfigurationError(
                f"the {self._format.name} format cannot be resumed, and {what} resumes its "
                f"output: write JSONL (.jsonl) instead (`jq -s . events.jsonl` makes the "
                "JSON array), or drop it"
            )

    def open(self, *, durable_length: int = 0, finished: bool = False, ledger: str = "") -> None:
        """Open the output where checkpoint ``ledger`` left it.

        ``durable_length`` is the length it recorded (0: start the file anew), and
        ``finished`` whether it has finished batches; both 0/False without a checkpoint.
        """
        fmt = self._format
        if fmt is None:
            return
        if fmt.resume == "upsert":
            if finished and not os.path.exists(self._path):
                raise ConfigurationError(
                    f"the output {self._path} is missing, but the checkpoint {ledger} has "
                    "finished batches in it. Restore it, or start anew with a new checkpoint"
                )
            self._sink = fmt.open(self._path, True, self._csv_raw_cells, self._entity)
            return
        if durable_length:
            self._cut_back(fmt, durable_length, ledger)
        sink = fmt.open(self._path, durable_length > 0, self._csv_raw_cells, self._entity)
        # "truncate" formats count what they made durable (bytes, or parquet's parts).
        assert isinstance(getattr(sink, "durable_length", None), int)
        self._sink = sink
        self._file = sink  # type: ignore[assignment]  # checked just above

    def _cut_back(self, fmt: Format, length: int, ledger: str) -> None:
        size = fmt.size(self._path)
        if size < length:
            found = "is missing" if size < 0 else f"holds {size:,} {fmt.unit}"
            raise ConfigurationError(
                f"the output {self._path} {found}, but the checkpoint {ledger} recorded "
                f"{length:,} {fmt.unit} of finished batches: it was moved, replaced or cut. "
                "Restore it, or start anew with a new checkpoint"
            )
        if size > length:
            # Events of batches written after the last commit: those batches run again.
            logger.info(
                "%s: dropping %d %s written after the last checkpoint",
                self._path,
                size - length,
                fmt.unit,
            )
        # Always, for parquet: a part being written when the run died may be lying around.
        fmt.cut(self._path, length)

    def write(self, events: Sequence[AnyEvent]) -> None:
        """Write one batch; OutputWriteError naming the output when it is refused."""
        assert self._sink is not None
        if self._format is not None:
            self._sink.write(events)
            return
        try:
            self._sink.write(events)
        except OutputWriteError:
            raise
        except OSError as exc:
            raise OutputWriteError(self.name, exc) from exc

    def flush(self) -> int | None:
        """Make the output durable; the length of its whole batches when it is cut on resume.

        After a failed write the file may hold part of a batch past that length: the
        checkpoint records only this length, and a resume cuts the file back to it.
        """
        assert self._sink is not None
        if self._format is not None:
            self._sink.flush_durably()
            return self._file.durable_length if self._file is not None else None
        try:
            self._sink.flush_durably()
        except OutputWriteError:
            raise
        except OSError as exc:
            raise OutputWriteError(self.name, exc) from exc
        return None

    def discard_undurable(self) -> None:
        """Cut the output back to its last durable flush, when its sink can (a file)."""
        discard = getattr(self._sink, "discard_undurable", None)
        if discard is not None:
            discard()

    def close(self) -> None:
        """Close a registered format's file; the caller's own sink is left open."""
        if self._format is not None and self._sink is not None:
            self._sink.close()
