"""Prospect IDs from a file or standard input, for the command line: read streaming, checked whole.

Two shapes are read, told apart by the first non-blank line:
- a list, one ID per line (blank lines and surrounding whitespace ignored);
- a CSV with a header, read from its ``prospect_id`` column, when the first line is not
  an ID and holds a comma, semicolon or tab, or is the bare word ``prospect_id``.

With ``entity="business"`` the same, for business IDs (32 hexadecimal characters) and a
CSV's ``business_id`` column.

A UTF-8 byte-order mark and CRLF line ends are tolerated. Lines are read as bytes with a
length cap and decoded one by one, so a file that is one 10 MB line fails fast, and a
byte that is not UTF-8 is reported on its own line. ``read_ids`` checks every line
before the first request; iterating the result then yields the valid IDs (normalised,
repeats included: the client dedupes). A regular file is read twice (check, then pull).
An input that can be read only once (standard input, a pipe, bash's ``<(...)``, a
FIFO, ``/dev/stdin``) is read exactly once, and its valid IDs kept as 20-byte digests:
20 MB for a million IDs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Literal

from .._entity import ENTITIES, PROSPECT, Entity
from .._ids import invalid_reason, normalize_prospect_id
from .._paths import read_once

MAX_LINE_BYTES = 65_536
COLUMN = "prospect_id"
_DELIMITERS = (",", ";", "\t")
_SHOWN = 5

InputShape = Literal["list", "csv"]


class InputError(Exception):
    """The input cannot be read as prospect IDs; the message names the line and the value."""


@dataclass(frozen=True, slots=True)
class BadId:
    """A value that is not a prospect ID: where it was, what it was, why."""

    line: int
    value: str
    reason: str

    def describe(self) -> str:
        """One line for a person: ``line 7: 'abc' (3 characters, not 40)``."""
        value = self.value if len(self.value) <= 60 else self.value[:57] + "..."
        return f"line {self.line}: {value!r} ({self.reason})"


@dataclass(slots=True)
class IdInput:
    """What a check of the whole input found; iterate it for the valid IDs."""

    name: str
    shape: InputShape = "list"
    entity: Entity[Any] = PROSPECT
    valid: int = 0
    invalid_count: int = 0
    invalid: list[BadId] = field(default_factory=list)  # the first few only
    _path: str | None = field(default=None, repr=False)
    _digests: bytearray | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[str]:
        if self._digests is not None:
            view = memoryview(self._digests)
            width = self.entity.id_bytes
            for start in range(0, len(view), width):
                yield view[start : start + width].hex()
            return
        assert self._path is not None
        with _open(self._path) as stream:
            for _line, value in _values(stream, self.name, entity=self.entity):
                normalized = normalize_prospect_id(value)
                if invalid_reason(normalized, entity=self.entity) is None:
                    yield normalized

    def invalid_message(self) -> str:
        """The usage error for invalid IDs: the first few with line numbers, and the rule."""
        count = self.invalid_count
        shown = "\n".join(f"  {bad.describe()}" for bad in self.invalid)
        more = f"\n  ... and {count - len(self.invalid)} more" if count > len(self.invalid) else ""
        hint = ""
        kind, column = self.entity.name, self.entity.id_column
        if self.shape == "list" and self.invalid and self.invalid[0].line == 1:
            hint = f"\nA CSV file needs a header line with a {column} column."
        return (
            f"{self.name}: {count} invalid {kind} ID{'s' if count != 1 else ''}:\n"
            f"{shown}{more}\nA {kind} ID is {self.entity.id_rule}. Fix the input, or pass "
            f"--skip-invalid to skip them.{hint}"
        )


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file of prospect IDs") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _lines(stream: IO[bytes] | IO[str], name: str) -> Iterator[str]:
    """The decoded lines of a stream (CRLF made LF), each read with a cap on its length."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if isinstance(raw, str):  # a text stream standing in for stdin
            raw = raw.encode("utf-8", "surrogatepass")
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            # Said in characters, which people count; IDs and CSV rows are ASCII in practice.
            raise InputError(
                f"{name}: line {number} is longer than {MAX_LINE_BYTES:,} characters: this is "
                "not a list of prospect IDs (one per line) or a CSV file"
            )
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{name}: line {number} is not UTF-8 text ({exc.reason} at byte {exc.start + 1})"
                "; save the file as UTF-8"
            ) from None
        if number == 1:
            line = line.removeprefix("\ufeff")
        if line.endswith("\r\n"):
            line = line[:-2] + "\n"
        yield line


def _is_csv_header(line: str, entity: Entity[Any] = PROSPECT) -> bool:
    text = line.strip()
    if invalid_reason(normalize_prospect_id(text), entity=entity) is None:
        return False
    column = entity.id_column
    return any(delimiter in text for delimiter in _DELIMITERS) or text.lower() == column


def _values(
    stream: IO[bytes] | IO[str],
    name: str,
    source: IdInput | None = None,
    *,
    entity: Entity[Any] = PROSPECT,
) -> Iterator[tuple[int, str]]:
    """(line number, value) for every non-blank entry of a list or CSV input.

    The first non-blank line decides the shape, which is recorded on ``source``.
    """
    lines = _lines(stream, name)
    number = 0
    for line in lines:
        number += 1
        if not line.strip():
            continue
        if _is_csv_header(line, entity):
            if source is not None:
                source.shape = "csv"
            yield from _csv_values(line, number, lines, name, entity.id_column)
            return
        yield number, line.strip()
        break
    for line in lines:
        number += 1
        if line.strip():
            yield number, line.strip()


def _csv_values(
    header_line: str, header_number: int, lines: Iterator[str], name: str, column: str = COLUMN
) -> Iterator[tuple[int, str]]:
    delimiter = max(_DELIMITERS, key=header_line.count)
    header = next(csv.reader([header_line], delimiter=delimiter))
    names = [cell.strip().lower() for cell in header]
    if column not in names:
        columns = ", ".join(repr(cell.strip()) for cell in header)
        raise InputError(
            f"{name}: the CSV header (line {header_number}) has no {column} column; its "
            f"columns are {columns}"
        )
    index = names.index(column)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        for row in reader:
            number = header_number + reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if index >= len(row):
                raise InputError(
                    f"{name}: line {number} has {len(row)} field{'s' if len(row) != 1 else ''}"
                    f", no {column} (column {index + 1})"
                )
            yield number, row[index].strip()
    except csv.Error as exc:
        number = header_number + reader.line_num
        raise InputError(f"{name}: line {number} is not valid CSV ({exc})") from None


def _check(source: IdInput, stream: IO[bytes] | IO[str], keep: bytearray | None) -> None:
    for number, value in _values(stream, source.name, source, entity=source.entity):
        normalized = normalize_prospect_id(value)
        reason = invalid_reason(normalized, entity=source.entity)
        if reason is not None:
            source.invalid_count += 1
            if len(source.invalid) < _SHOWN:
                source.invalid.append(BadId(number, value, reason))
            continue
        source.valid += 1
        if keep is not None:
            keep += bytes.fromhex(normalized)


def read_ids(
    path: str | None, *, stdin: IO[str] | None = None, entity: str = "prospect"
) -> IdInput:
    """Check a whole input (a path, or ``stdin`` when ``path`` is None or ``-``) of
    ``entity``'s IDs ("prospect" or "business": the ID rule and the CSV column).

    Raises InputError for an input that cannot be read as IDs (missing file, a line
    too long, not UTF-8, a CSV without a ``prospect_id`` column). Invalid IDs do not
    raise: they are counted in the result, the first few with their line numbers.
    """
    kind = ENTITIES[entity]
    if path is None or path == "-":
        if stdin is None:
            raise InputError("no input: give --ids FILE or pipe the IDs into standard input")
        source = IdInput(name="standard input", entity=kind, _digests=bytearray())
        # The bytes under sys.stdin, so that its locale's encoding plays no part.
        binary: IO[bytes] | None = getattr(stdin, "buffer", None)
        _check(source, binary if binary is not None else stdin, source._digests)
    elif read_once(path) is not None:
        # Reading it again would find it empty (a pipe) or wait for a writer forever (a FIFO).
        source = IdInput(name=path, entity=kind, _digests=bytearray())
        with _open(path) as stream:
            _check(source, stream, source._digests)
    else:
        source = IdInput(name=path, entity=kind, _path=path)
        with _open(path) as stream:
            _check(source, stream, None)
    return source
