"""Normalise, validate, dedupe and chunk prospect or business IDs. Knows nothing of HTTP.

Each function takes the ``entity`` whose ID rule applies; prospects by default.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sized
from typing import Any

from ._digests import DigestSet
from ._entity import BUSINESS_ID_RULE, PROSPECT, PROSPECT_ID_RULE, Entity
from ._errors import ConfigurationError, InvalidIdError
from ._results import InvalidProspectId

__all__ = [
    "BUSINESS_ID_RULE",
    "MAX_BATCH_SIZE",
    "PROSPECT_ID_LENGTH",
    "PROSPECT_ID_RULE",
    "IdStream",
    "ProspectIdStream",
    "check_batch_size",
    "chunked",
    "find_invalid",
    "invalid_reason",
    "normalize_prospect_id",
    "prepare_prospect_ids",
]

MAX_BATCH_SIZE = 40
PROSPECT_ID_LENGTH = 40
_HEX_DIGITS = frozenset("0123456789abcdef")
_INVALID_SHOWN = 5


def normalize_prospect_id(value: str) -> str:
    """Strip surrounding whitespace and lowercase: hex is case-insensitive."""
    return value.strip().lower()


def invalid_reason(normalized: object, *, entity: Entity[Any] = PROSPECT) -> str | None:
    """Why a normalised value is not an ID of ``entity`` (a prospect's), or None when it is."""
    if not isinstance(normalized, str):
        return f"not a string but {type(normalized).__name__}"
    if entity.pattern.fullmatch(normalized):  # the common case, in C
        return None
    if not normalized:
        return "empty"
    if len(normalized) != entity.id_length:
        return f"{len(normalized)} characters, not {entity.id_length}"
    bad = next((char for char in normalized if char not in _HEX_DIGITS), None)
    if bad is not None:
        return f"{bad!r} is not a hexadecimal digit"
    return None


def _check_shape(prospect_ids: object, entity: Entity[Any]) -> None:
    if isinstance(prospect_ids, str | bytes):
        raise ConfigurationError(
            f"{entity.id_field} must be an iterable of IDs, not a single string; wrap it in a list"
        )


def _packed(normalized: str, length: int) -> bytes | None:
    """The ID's digits packed (``bytes.fromhex``), or None when it is not ``length`` hex digits.

    One C call does the check and the packing: ``fromhex`` refuses anything but hex
    digits and whitespace, and whitespace would leave fewer than ``length // 2`` bytes.
    The caller has lowercased, so that only the canonical form is ever packed.
    """
    if len(normalized) != length:
        return None
    try:
        digest = bytes.fromhex(normalized)
    except ValueError:
        return None
    return digest if len(digest) * 2 == length else None


class IdStream:
    """The unique valid IDs of an input, yielded lazily, with what was left out.

    Iterating yields each valid ID once, normalised. ``invalid`` lists the values that
    were skipped, ``duplicates`` counts repeats. The seen-set holds the IDs' packed
    digits (20 bytes a prospect, 16 a business), not strings, so that millions of IDs
    stay affordable.

    With ``stop_at_invalid`` the first invalid value ends the iteration instead of being
    skipped: the input is not read past it, and ``error`` holds the InvalidIdError
    (InvalidProspectIdError, InvalidBusinessIdError) to raise once the IDs before it
    are done.

    ``checked`` makes one for a sized input that was validated and deduplicated whole
    before any request: iterating it then only normalises and skips the repeats found,
    instead of checking every ID a second time.
    """

    def __init__(
        self,
        prospect_ids: Iterable[str],
        *,
        stop_at_invalid: bool = False,
        entity: Entity[Any] = PROSPECT,
    ) -> None:
        _check_shape(prospect_ids, entity)
        self._source = prospect_ids
        self._entity = entity
        self._seen = DigestSet(entity.id_bytes)
        self._stop_at_invalid = stop_at_invalid
        # The first ``_checked`` values were checked and deduplicated already; of them,
        # the positions in ``_repeats`` are repeats.
        self._checked = 0
        self._repeats: set[int] = set()
        self.invalid: list[InvalidProspectId] = []
        self.duplicates = 0
        self.unique = 0
        self.error: InvalidIdError | None = None

    @classmethod
    def checked(cls, prospect_ids: Iterable[str], *, entity: Entity[Any] = PROSPECT) -> IdStream:
        """Check a sized input whole, once: InvalidIdError now, or a stream that skips its repeats.

        The error names the first few invalid values and how many there are.
        """
        stream = cls(prospect_ids, entity=entity)
        seen_add = stream._seen.add
        length = entity.id_length
        repeats = stream._repeats
        shown: list[str] = []
        count = checked = 0
        for position, value in enumerate(prospect_ids):
            checked = position + 1
            digest = _packed(value.strip().lower(), length) if isinstance(value, str) else None
            if digest is None:
                count += 1
                if len(shown) < _INVALID_SHOWN:
                    shown.append(str(value))
            elif not count and not seen_add(digest):
                repeats.add(position)
        if count:
            raise entity.invalid_error(shown, count=count, rule=entity.id_rule)
        stream._checked = checked
        return stream

    def __iter__(self) -> Iterator[str]:
        seen_add = self._seen.add
        entity = self._entity
        length = entity.id_length
        checked = self._checked
        repeats = self._repeats
        for position, value in enumerate(self._source):
            if position < checked:
                if repeats and position in repeats:
                    self.duplicates += 1
                    continue
                self.unique += 1
                yield value.strip().lower()
                continue
            normalized = value.strip().lower() if isinstance(value, str) else value
            digest = _packed(normalized, length) if isinstance(normalized, str) else None
            if digest is None:
                reason = invalid_reason(normalized, entity=entity) or "not hexadecimal"
                self.invalid.append(InvalidProspectId(str(value), position, reason))
                if self._stop_at_invalid:
                    self.error = entity.invalid_error([str(value)], count=1, rule=entity.id_rule)
                    return
                continue
            if not seen_add(digest):
                self.duplicates += 1
                continue
            self.unique += 1
            yield normalized


ProspectIdStream = IdStream  # its name before businesses came


def find_invalid(
    prospect_ids: Iterable[str], *, entity: Entity[Any] = PROSPECT
) -> tuple[list[str], int]:
    """The first few invalid values (as given) and how many invalid values there are."""
    shown: list[str] = []
    count = 0
    for value in prospect_ids:
        normalized = normalize_prospect_id(value) if isinstance(value, str) else value
        if invalid_reason(normalized, entity=entity) is not None:
            count += 1
            if len(shown) < _INVALID_SHOWN:
                shown.append(str(value))
    return shown, count


def prepare_prospect_ids(
    prospect_ids: Iterable[str], *, skip_invalid: bool, entity: Entity[Any] = PROSPECT
) -> IdStream:
    """Validate the input and stream it, reading a one-shot iterator only once, lazily.

    With ``skip_invalid`` invalid values are skipped (and listed in ``invalid``).
    Without it, a sized input (a list, tuple, set, anything with ``len()``) is checked
    (and deduplicated) whole here, once, before any request: an invalid value raises
    InvalidProspectIdError at once. An iterator (a generator, a file, a pipe) is checked
    as it is consumed, so that millions of IDs never sit in memory: the first invalid
    value ends the stream, which raises InvalidProspectIdError once the IDs before it
    are done. (For businesses, InvalidBusinessIdError.)
    """
    _check_shape(prospect_ids, entity)
    if skip_invalid:
        return IdStream(prospect_ids, entity=entity)
    if isinstance(prospect_ids, Sized) and not isinstance(prospect_ids, Iterator):
        return IdStream.checked(prospect_ids, entity=entity)
    return IdStream(prospect_ids, stop_at_invalid=True, entity=entity)


def check_batch_size(batch_size: int) -> int:
    """The batch size, or a ConfigurationError when the API would refuse it."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigurationError(
            f"batch_size={batch_size}: the API takes 1 to {MAX_BATCH_SIZE} IDs a request"
        )
    return batch_size


def chunked(prospect_ids: Iterable[str], size: int) -> Iterator[tuple[str, ...]]:
    """Consecutive batches of at most ``size`` IDs, pulled lazily from the input."""
    check_batch_size(size)
    iterator = iter(prospect_ids)
    while batch := tuple(itertools.islice(iterator, size)):
        yield batch
