"""A pull's input: reads prospect or business IDs from a file or an iterable, counted, deduplicated.

With a checkpoint the input is read twice: ``scan_input`` fingerprints the
deduplicated stream of valid IDs and counts the input, then ``unique_ids`` reads it
again and checks the fingerprint. Without one it is read once: ``read_once`` counts
and deduplicates as it goes, so a generator or a pipe works. Either way the seen-set
keeps 20-byte digests packed in byte buckets (``DigestSet``, about 25 bytes an ID).
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from ._checkpoint import STATE_DONE, STATE_FAILED, STATE_PENDING
from ._digests import DigestSet
from ._entity import PROSPECT, Entity
from ._errors import ConfigurationError, InvalidIdError
from ._ids import (
    chunked,
    invalid_reason,
    normalize_prospect_id,
)
from ._paths import read_once as _only_once
from ._results import InvalidProspectId

_SCAN_YIELD_EVERY = 20_000  # values between yields to the event loop while scanning
_EXAMPLES = 5


def _valid(value: object, entity: Entity[Any]) -> str | None:
    if not isinstance(value, str):
        return None
    normalized = normalize_prospect_id(value)
    return normalized if invalid_reason(normalized, entity=entity) is None else None


def in_stable_order(
    prospect_ids: str | os.PathLike[str] | Iterable[str],
) -> str | os.PathLike[str] | Iterable[str]:
    """An unordered input (a set, frozenset, dict keys) as a list in one fixed order.

    Batches are numbered by position, and a set of strings iterates in an order that
    changes with PYTHONHASHSEED: resumed from another process, batch n would hold other
    IDs. Sorted, the same set gives the same stream, fingerprint and batches in every
    process. Non-strings (invalid anyway) follow, in their own order. A sequence keeps
    its order: reordering a list makes another pull, which the fingerprint catches.
    """
    if not isinstance(prospect_ids, AbstractSet):
        return prospect_ids
    strings = sorted(value for value in prospect_ids if isinstance(value, str))
    strings.extend(value for value in prospect_ids if not isinstance(value, str))
    return strings


class Source:
    """The input: a file with one ID per line, or an iterable (read twice, unless ``once``).

    ``entity`` says whose IDs it holds (prospects by default), and so which rule applies.
    """

    def __init__(
        self,
        prospect_ids: str | os.PathLike[str] | Iterable[str],
        *,
        once: bool = False,
        entity: Entity[Any] = PROSPECT,
    ) -> None:
        self.entity = entity
        self._path: str | None = None
        self._iterable: Iterable[str] | None = None
        if isinstance(prospect_ids, str | os.PathLike):
            self._path = os.fspath(prospect_ids)
            why = None if once else _only_once(self._path)
            if why is not None:
                # Its second reading would find it empty (a pipe), or wait forever (a FIFO).
                raise ConfigurationError(
                    f"{self._path} is {why}, which can be read only once; a pull with a "
                    "checkpoint reads its input twice (to fingerprint it, then to pull) and "
                    "again on resume. Save the IDs to a file first (e.g. `cat ... > ids.txt`) "
                    "and pass its path, or pass a list; or pull with checkpoint=None, which "
                    "reads its input once"
                )
            if not _readable_input(self._path, once=once):
                raise ConfigurationError(f"{self._path}: no such file of {entity.name} IDs")
            self.name = self._path
        elif isinstance(prospect_ids, bytes) or (not once and isinstance(prospect_ids, Iterator)):
            raise ConfigurationError(
                "a bulk pull reads its input twice (to fingerprint it, then to pull), and "
                "again on resume: pass a file path or a re-iterable collection such as a "
                "list, not a one-shot iterator"
            )
        else:
            self._iterable = prospect_ids
            self.name = f"<{type(prospect_ids).__name__}>"

    def values(self) -> Iterator[tuple[int, object]]:
        """(where, value): a file's line number (blank lines skipped), else the 0-based index."""
        if self._path is not None:
            with open(self._path, encoding="utf-8-sig") as lines:
                try:
                    for number, line in enumerate(lines, 1):
                        text = line.strip()
                        if text:
                            yield number, text
                except UnicodeDecodeError as exc:
                    # Not an ExploriumError, and it would not say which file.
                    raise ConfigurationError(
                        f"{self._path} is not UTF-8 text ({exc.reason}): save it as UTF-8"
                    ) from None
        else:
            assert self._iterable is not None
            yield from enumerate(self._iterable)


def _readable_input(path: str, *, once: bool) -> bool:
    """A regular file; read once, a FIFO or a character device (a pipe, /dev/stdin) too."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or (once and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)))


@dataclass(slots=True)
class Scan:
    """The input's counts: found by ``scan_input`` up front, or by ``read_once`` as it reads."""

    fingerprint: str = ""
    values: int = 0
    unique: int = 0
    invalid: int = 0
    duplicates: int = 0
    examples: list[InvalidProspectId] = field(default_factory=list)
    # Indexes (among the input's values) of repeats: the pull skips them without a set.
    repeats: array.array[int] = field(default_factory=lambda: array.array("q"))
    # Read once without skip_invalid: the invalid value that ended the reading.
    error: InvalidIdError | None = None
    entity: Entity[Any] = PROSPECT

    def note_invalid(self, where: int, value: object) -> None:
        self.invalid += 1
        if len(self.examples) < _EXAMPLES:
            reason = invalid_reason(
                value.strip().lower() if isinstance(value, str) else value, entity=self.entity
            )
            self.examples.append(InvalidProspectId(str(value), where, reason or "invalid"))

    def invalid_error(self) -> InvalidIdError:
        return self.entity.invalid_error(
            [f"{example.value} (at {example.position})" for example in self.examples],
            count=self.invalid,
            rule=self.entity.id_rule,
        )


async def scan_input(source: Source) -> Scan:
    """Fingerprint and count the input; yields to the loop now and then, so it can be stopped."""
    entity = source.entity
    found = Scan(entity=entity)
    seen = DigestSet(entity.id_bytes)
    fingerprint = hashlib.sha256()
    index = -1
    for index, (where, value) in enumerate(source.values()):
        if index % _SCAN_YIELD_EVERY == 0:
            await asyncio.sleep(0)
        normalized = _valid(value, entity)
        if normalized is None:
            found.note_invalid(where, value)
            continue
        digest = bytes.fromhex(normalized)
        if not seen.add(digest):
            found.duplicates += 1
            found.repeats.append(index)
            continue
        fingerprint.update(digest)
        found.unique += 1
    found.values = index + 1
    found.fingerprint = fingerprint.hexdigest()
    return found


def unique_ids(source: Source, found: Scan) -> Iterator[str]:
    """The input's valid IDs, normalised, each once, in the scan's order."""
    repeats = iter(found.repeats)
    skip = next(repeats, -1)
    fingerprint = hashlib.sha256()
    for index, (_where, value) in enumerate(source.values()):
        if index == skip:
            skip = next(repeats, -1)
            continue
        normalized = _valid(value, source.entity)
        if normalized is None:
            continue
        fingerprint.update(bytes.fromhex(normalized))
        yield normalized
    if fingerprint.hexdigest() != found.fingerprint:
        raise ConfigurationError(
            f"{source.name} changed while it was being pulled; the checkpoint no longer "
            "matches it. Restore the input and rerun, or start anew with a new checkpoint"
        )


def read_once(source: Source, found: Scan, *, skip_invalid: bool) -> Iterator[str]:
    """The input's valid IDs, normalised, each once, counted into ``found`` as they are read.

    Without ``skip_invalid`` the first invalid value ends the reading and is kept in
    ``found.error``: the batches before it complete, then the pull raises it.
    """
    seen = DigestSet(source.entity.id_bytes)
    found.entity = source.entity
    for where, value in source.values():
        found.values += 1
        normalized = _valid(value, source.entity)
        if normalized is None:
            found.note_invalid(where, value)
            if not skip_invalid:
                found.error = found.invalid_error()
                return
            continue
        if not seen.add(bytes.fromhex(normalized)):
            found.duplicates += 1
            continue
        found.unique += 1
        yield normalized


def batches_to_do(
    ids: Iterator[str], states: bytearray, batch_size: int, *, retry_failed: bool
) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(position, IDs) of the batches this run must fetch."""
    for position, batch in enumerate(chunked(ids, batch_size)):
        state = states[position] if position < len(states) else STATE_PENDING
        if state == STATE_DONE or (state == STATE_FAILED and not retry_failed):
            continue
        yield position, batch


class Segment:
    """Up to ``limit`` batches of the to-do list, as the flat ID stream client.stream() takes.

    Every batch but the input's last is exactly batch_size long, so the client's own
    chunking yields the same batches; ``taken`` maps each batch's first ID to its position.
    """

    def __init__(
        self, batches: Iterator[tuple[int, tuple[str, ...]]], limit: int, taken: dict[str, int]
    ) -> None:
        self._todo = batches
        self._limit = limit
        self._taken = taken
        self.exhausted = False

    def ids(self) -> Iterator[str]:
        for _ in range(self._limit):
            item = next(self._todo, None)
            if item is None:
                self.exhausted = True
                return
            position, batch = item
            self._taken[batch[0]] = position
            yield from batch
