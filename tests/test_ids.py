"""Prospect IDs: normalisation, validation, dedupe and chunking."""

from __future__ import annotations

import pytest

from explorium_events import ConfigurationError, InvalidProspectIdError
from explorium_events._ids import (
    ProspectIdStream,
    chunked,
    invalid_reason,
    normalize_prospect_id,
    prepare_prospect_ids,
)

VALID = "4c485f009d59e319dc039cdf3e935b85014e6a33"


def test_normalisation_strips_and_lowercases() -> None:
    """Whitespace around an ID goes and hex letters become lowercase."""
    assert normalize_prospect_id(f" \t{VALID.upper()}\r\n") == VALID


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        (VALID[:39], "39 characters, not 40"),
        (VALID + "a", "41 characters, not 40"),
        ("g" + VALID[1:], "'g' is not a hexadecimal digit"),
        (VALID[:20] + " " + VALID[21:], "' ' is not a hexadecimal digit"),
        (42, "not a string but int"),
    ],
)
def test_invalid_reasons_name_the_rule_broken(value: object, reason: str) -> None:
    """Each kind of invalid value gets a reason that names what is wrong."""
    assert invalid_reason(value) == reason


def test_stream_dedupes_and_reports_invalid_positions() -> None:
    """Duplicates (after normalisation) are yielded once; invalid values are listed in order."""
    stream = ProspectIdStream([VALID, "bad", VALID.upper(), " " + VALID, "1" * 40])
    assert list(stream) == [VALID, "1" * 40]
    assert stream.duplicates == 2
    assert stream.unique == 2
    assert [(item.value, item.position) for item in stream.invalid] == [("bad", 1)]


def test_strict_preparation_counts_all_and_shows_a_few() -> None:
    """The error shows the first five invalid values and the total count."""
    values = [f"bad{number}" for number in range(12)]
    with pytest.raises(InvalidProspectIdError) as caught:
        prepare_prospect_ids(values, skip_invalid=False)
    assert caught.value.count == 12
    assert caught.value.invalid == tuple(values[:5])
    assert "and 7 more" in str(caught.value)


def test_a_single_string_is_refused() -> None:
    """Passing one ID string (an iterable of characters) is a clear configuration error."""
    with pytest.raises(ConfigurationError, match="not a single string"):
        prepare_prospect_ids(VALID, skip_invalid=True)


def test_skip_invalid_reads_a_generator_lazily() -> None:
    """With skip_invalid nothing is read from the input before iteration."""
    pulled: list[int] = []

    def source() -> object:
        for number in range(3):
            pulled.append(number)
            yield f"{number:040x}"

    stream = prepare_prospect_ids(source(), skip_invalid=True)  # type: ignore[arg-type]
    assert pulled == []
    assert len(list(stream)) == 3


def test_chunked_makes_batches_of_at_most_size_in_order() -> None:
    """Chunks keep input order, the last one holds the remainder."""
    assert list(chunked(range(7), 3)) == [(0, 1, 2), (3, 4, 5), (6,)]  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 41, -1])
def test_chunk_sizes_outside_the_api_limit_are_refused(size: int) -> None:
    """A batch size the API would refuse is a configuration error."""
    with pytest.raises(ConfigurationError):
        list(chunked([VALID], size))
