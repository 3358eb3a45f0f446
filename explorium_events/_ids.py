"""Normalise, validate, dedupe and chunk prospect IDs. Knows nothing of HTTP."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sized

from ._digests import DigestSet
from ._errors import ConfigurationError, InvalidProspectIdError
from ._results import InvalidProspectId

MAX_BATCH_SIZE = 40
PROSPECT_ID_LENGTH = 40
PROSPECT_ID_RULE = (
    "40 hexadecimal characters (0-9, a-f; case and surrounding whitespace are ignored)"
)
_HEX_DIGITS = frozenset("0123456789abcdef")
_PROSPECT_ID = re.compile("[0-9a-f]{40}")
_INVALID_SHOWN = 5


def normalize_prospect_id(value: str) -> str:
    """Strip surrounding whitespace and lowercase: hex is case-insensitive."""
    return value.strip().lower()


def invalid_reason(normalized: object) -> str | None:
    """Why a normalised value is not a prospect ID, or None when it is one."""
    if not isinstance(normalized, str):
        return f"not a string but {type(normalized).__name__}"
    if _PROSPECT_ID.fullmatch(normalized):  # the common case, in C
        return None
    if not normalized:
        return "empty"
    if len(normalized) != PROSPECT_ID_LENGTH:
        return f"{len(normalized)} characters, not {PROSPECT_ID_LENGTH}"
    bad = next((char for char in normalized if char not in _HEX_DIGITS), None)
    if bad is not None:
        return f"{bad!r} is not a hexadecimal digit"
    return None


def _check_shape(prospect_ids: object) -> None:
    if isinstance(prospect_ids, str | bytes):
        raise ConfigurationError(
            "prospect_ids must be an iterable of IDs, not a single string; wrap it in a list"
        )


class ProspectIdStream:
    """The unique valid IDs of an input, yielded lazily, with what was left out.

    Iterating yields each valid ID once, normalised. ``invalid`` lists the values that
    were skipped, ``duplicates`` counts repeats. The seen-set holds 20-byte digests, not
    strings, so that millions of IDs stay affordable.

    With ``stop_at_invalid`` the first invalid value ends the iteration instead of being
    skipped: the input is not read past it, and ``error`` holds the
    InvalidProspectIdError to raise once the IDs before it are done.
    """

    def __init__(self, prospect_ids: Iterable[str], *, stop_at_invalid: bool = False) -> None:
        _check_shape(prospect_ids)
        self._source = prospect_ids
        self._seen = DigestSet(20)
        self._stop_at_invalid = stop_at_invalid
        self.invalid: list[InvalidProspectId] = []
        self.duplicates = 0
        self.unique = 0
        self.error: InvalidProspectIdError | None = None

    def __iter__(self) -> Iterator[str]:
        seen = self._seen
        for position, value in enumerate(self._source):
            normalized = normalize_prospect_id(value) if isinstance(value, str) else value
            reason = invalid_reason(normalized)
            if reason is not None:
                self.invalid.append(InvalidProspectId(str(value), position, reason))
                if self._stop_at_invalid:
                    self.error = InvalidProspectIdError(
                        [str(value)], count=1, rule=PROSPECT_ID_RULE
                    )
                    return
                continue
            assert isinstance(normalized, str)
            if not seen.add(bytes.fromhex(normalized)):
                self.duplicates += 1
                continue
            self.unique += 1
            yield normalized


def find_invalid(prospect_ids: Iterable[str]) -> tuple[list[str], int]:
    """The first few invalid values (as given) and how many invalid values there are."""
    shown: list[str] = []
    count = 0
    for value in prospect_ids:
        normalized = normalize_prospect_id(value) if isinstance(value, str) else value
        if invalid_reason(normalized) is not None:
            count += 1
            if len(shown) < _INVALID_SHOWN:
                shown.append(str(value))
    return shown, count


def prepare_prospect_ids(prospect_ids: Iterable[str], *, skip_invalid: bool) -> ProspectIdStream:
    """Validate the input and stream it, reading a one-shot iterator only once, lazily.

    With ``skip_invalid`` invalid values are skipped (and listed in ``invalid``).
    Without it, a sized input (a list, tuple, set, anything with ``len()``) is checked
    whole here, before any request: an invalid value raises InvalidProspectIdError at
    once. An iterator (a generator, a file, a pipe) is checked as it is consumed, so
    that millions of IDs never sit in memory: the first invalid value ends the stream,
    which raises InvalidProspectIdError once the IDs before it are done.
    """
    _check_shape(prospect_ids)
    if skip_invalid:
        return ProspectIdStream(prospect_ids)
    if isinstance(prospect_ids, Sized) and not isinstance(prospect_ids, Iterator):
        shown, count = find_invalid(prospect_ids)
        if count:
            raise InvalidProspectIdError(shown, count=count, rule=PROSPECT_ID_RULE)
        return ProspectIdStream(prospect_ids)
    return ProspectIdStream(prospect_ids, stop_at_invalid=True)


def check_batch_size(batch_size: int) -> int:
    """The batch size, or a ConfigurationError when the API would refuse it."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigurationError(
            f"batch_size={batch_size}: the API takes 1 to {MAX_BATCH_SIZE} prospect IDs a request"
        )
    return batch_size


def chunked(prospect_ids: Iterable[str], size: int) -> Iterator[tuple[str, ...]]:
    """Consecutive batches of at most ``size`` IDs, pulled lazily from the input."""
    check_batch_size(size)
    iterator = iter(prospect_ids)
    while batch := tuple(itertools.islice(iterator, size)):
        yield batch
