"""Properties of the pure parts: IDs, chunking, merge and dedupe, backoff and Retry-After."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
import random
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from explorium_events import ConfigurationError, InvalidProspectIdError, RateLimitError, RetryPolicy
from explorium_events._ids import (
    MAX_BATCH_SIZE,
    ProspectIdStream,
    chunked,
    find_invalid,
    invalid_reason,
    normalize_prospect_id,
    prepare_prospect_ids,
)
from explorium_events._merge import EventDeduper, newest_first
from explorium_events._models import Event, decode_event
from explorium_events._retry import backoff_delay, parse_retry_after
from explorium_events._transport import rate_limit_headers

# Modest example counts: the whole file runs in a few seconds.
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WIRE_ID = re.compile(r"[0-9a-f]{40}")
HEX = "0123456789abcdefABCDEF"

hex_ids = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
# Valid IDs as a user might paste them: any case, surrounding whitespace.
pasted_ids = st.builds(
    lambda digits, upper, left, right: left + (digits.upper() if upper else digits) + right,
    hex_ids,
    st.booleans(),
    st.sampled_from(["", " ", "\t", "  "]),
    st.sampled_from(["", " ", "\r", "\n", "\r\n"]),
)
# Near misses: wrong length, a non-hex character, or arbitrary text.
near_misses = st.one_of(
    st.text(alphabet=HEX, min_size=0, max_size=39),
    st.text(alphabet=HEX, min_size=41, max_size=60),
    st.builds(
        lambda digits, index, char: digits[:index] + char + digits[index + 1 :],
        hex_ids,
        st.integers(0, 39),
        st.sampled_from(list("gzGZ-_.x\u00e9\u0660\u212a\u0130")),
    ),
    st.text(max_size=50),
)
any_input = st.lists(st.one_of(pasted_ids, near_misses, hex_ids), max_size=120)


@FAST
@given(st.text(max_size=60))
def test_normalisation_is_idempotent_and_validation_matches_the_wire_rule(value: str) -> None:
    """Normalising twice changes nothing; a value is valid exactly when the API would take it."""
    once = normalize_prospect_id(value)
    assert normalize_prospect_id(once) == once
    assert (invalid_reason(once) is None) == bool(WIRE_ID.fullmatch(once))


@FAST
@given(pasted_ids)
def test_pasted_ids_in_any_case_with_whitespace_are_valid(value: str) -> None:
    """A 40-hex ID in any case, with whitespace around it, normalises to its lowercase form."""
    normalized = normalize_prospect_id(value)
    assert invalid_reason(normalized) is None
    assert normalized == value.strip().lower()


@FAST
@given(near_misses)
def test_near_misses_are_invalid_with_a_reason(value: str) -> None:
    """Anything that is not 40 hex characters after normalising is invalid, with a reason."""
    normalized = normalize_prospect_id(value)
    assume(not WIRE_ID.fullmatch(normalized))
    reason = invalid_reason(normalized)
    assert reason is not None and reason


@FAST
@given(any_input)
def test_every_input_value_is_yielded_once_counted_as_duplicate_or_invalid(
    values: list[str],
) -> None:
    """Each input position is exactly one of: a first sighting, a duplicate, or invalid."""
    stream = ProspectIdStream(values)
    yielded = list(stream)
    normalized = [normalize_prospect_id(v) for v in values]
    valid = [pid for pid in normalized if WIRE_ID.fullmatch(pid)]
    assert yielded == list(dict.fromkeys(valid))
    assert all(WIRE_ID.fullmatch(pid) for pid in yielded)
    assert len(yielded) + stream.duplicates + len(stream.invalid) == len(values)
    assert [bad.position for bad in stream.invalid] == sorted(
        position
        for position, v in enumerate(values)
        if not WIRE_ID.fullmatch(normalize_prospect_id(v))
    )
    assert all(values[bad.position] == bad.value for bad in stream.invalid)


@FAST
@given(any_input, st.booleans())
def test_validation_up_front_raises_exactly_when_something_is_invalid(
    values: list[str], one_shot: bool
) -> None:
    """Without skip_invalid, a list raises before iteration, an iterator stops at its first."""
    bad = [v for v in values if not WIRE_ID.fullmatch(normalize_prospect_id(v))]
    if one_shot:
        # Checked as consumed: the valid IDs before the first invalid value, then the error.
        stream = prepare_prospect_ids(iter(values), skip_invalid=False)
        first_bad = next(
            (n for n, v in enumerate(values) if not WIRE_ID.fullmatch(normalize_prospect_id(v))),
            len(values),
        )
        before = values[:first_bad]
        assert list(stream) == list(dict.fromkeys(normalize_prospect_id(v) for v in before))
        assert (stream.error is not None) == bool(bad)
        if bad:
            assert stream.error is not None and list(stream.error.invalid) == [bad[0]]
            assert [entry.position for entry in stream.invalid] == [first_bad]
    elif bad:
        with pytest.raises(InvalidProspectIdError) as caught:
            prepare_prospect_ids(values, skip_invalid=False)
        assert caught.value.count == len(bad)
        assert list(caught.value.invalid) == bad[: len(caught.value.invalid)]
        assert 1 <= len(caught.value.invalid) <= 5
    else:
        stream = prepare_prospect_ids(values, skip_invalid=False)
        assert list(stream) == list(dict.fromkeys(normalize_prospect_id(v) for v in values))
    shown, count = find_invalid(values)
    assert count == len(bad) and shown == bad[:5]


@FAST
@given(st.lists(hex_ids, max_size=300, unique=True), st.integers(1, MAX_BATCH_SIZE))
def test_chunking_puts_every_id_in_exactly_one_batch_within_the_limit(
    values: list[str], size: int
) -> None:
    """Batches partition the input in order, none empty or over the size, only the last short."""
    batches = list(chunked(values, size))
    assert [pid for batch in batches for pid in batch] == values
    assert all(1 <= len(batch) <= size for batch in batches)
    assert all(len(batch) == size for batch in batches[:-1])
    assert len(batches) == math.ceil(len(values) / size)


@FAST
@given(any_input, st.integers(1, MAX_BATCH_SIZE))
def test_batches_of_the_id_stream_hold_no_duplicates(values: list[str], size: int) -> None:
    """Chunking the normalised stream never sends an ID twice, in one batch or across batches."""
    sent = [pid for batch in chunked(ProspectIdStream(values), size) for pid in batch]
    assert len(sent) == len(set(sent))
    assert all(WIRE_ID.fullmatch(pid) for pid in sent)


@FAST
@given(st.integers(-5, 0) | st.integers(MAX_BATCH_SIZE + 1, 10_000))
def test_batch_sizes_outside_the_api_limit_are_refused(size: int) -> None:
    """A batch size below 1 or above 40 is a ConfigurationError, not a 422 later."""
    with pytest.raises(ConfigurationError):
        list(chunked(["a" * 40], size))


# --- merge and dedupe -------------------------------------------------------------------

BASE_TIME = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def make_event(event_id: str, minutes: int) -> Event:
    """An event whose content is a function of its id and time, decoded as from the wire."""
    raw: dict[str, Any] = {
        "event_id": event_id,
        "event_name": "prospect_changed_role",
        "event_time": (BASE_TIME - dt.timedelta(minutes=minutes)).isoformat(),
        "prospect_id": "a" * 40,
        "data": {"event_name": "prospect_changed_role", "current_job_title": "CTO"},
    }
    return decode_event(json.dumps(raw).encode())


event_ids = st.one_of(
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    st.text(alphabet="0123456789abcdefABCDEF \t", min_size=32, max_size=32),
    st.text(min_size=1, max_size=40),
)
# A pool of distinct events; a response is drawn from it with repeats.
event_pools = st.dictionaries(event_ids, st.integers(0, 60 * 24 * 90), min_size=1, max_size=40)


@FAST
@given(event_pools, st.data())
def test_dedupe_keeps_each_distinct_event_id_exactly_once(
    pool: dict[str, int], data: st.DataObject
) -> None:
    """However events are repeated and split into batches, each distinct event_id survives once."""
    events = {event_id: make_event(event_id, minutes) for event_id, minutes in pool.items()}
    stream = data.draw(st.lists(st.sampled_from(sorted(events)), min_size=len(events)))
    stream += sorted(events)  # every distinct event at least once
    data.draw(st.randoms()).shuffle(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    deduper = EventDeduper()
    kept: list[Event] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        kept.extend(deduper.first_sightings(events[eid] for eid in stream[start:end]))
    assert sorted(event.event_id for event in kept) == sorted(events)
    assert deduper.duplicates == len(stream) - len(events)


@FAST
@given(event_pools, st.randoms())
def test_merge_is_order_independent_and_idempotent(
    pool: dict[str, int], rng: random.Random
) -> None:
    """Newest-first merge gives one order whatever the arrival order; merging again is a no-op."""
    events = [make_event(event_id, minutes) for event_id, minutes in pool.items()]
    shuffled = list(events)
    rng.shuffle(shuffled)
    merged = newest_first(EventDeduper().first_sightings(events))
    again = newest_first(EventDeduper().first_sightings(shuffled + shuffled))
    assert [e.event_id for e in again] == [e.event_id for e in merged]
    assert [e.event_id for e in newest_first(merged)] == [e.event_id for e in merged]
    keys = [(e.event_time, e.event_id) for e in merged]
    assert keys == sorted(keys, key=lambda key: (-key[0].timestamp(), key[1]))


@FAST
@given(st.dictionaries(event_ids, st.integers(0, 3), min_size=1, max_size=60), st.randoms())
def test_merge_breaks_ties_in_time_by_event_id_in_any_arrival_order(
    pool: dict[str, int], rng: random.Random
) -> None:
    """Many events at one moment: newest first, and within a moment by event_id ascending."""
    events = [make_event(event_id, minutes) for event_id, minutes in pool.items()]
    rng.shuffle(events)
    keys = [(e.event_time, e.event_id) for e in newest_first(events)]
    assert keys == sorted(keys, key=lambda key: (-key[0].timestamp(), key[1]))


def _spellings(digits: str, rng: random.Random) -> list[str]:
    """Distinct event ids that hold the same hex digits: other case, whitespace moved in."""
    upper = digits.upper()
    spaced = digits[:30] + "  "
    shifted = "  " + digits[:30]
    inner = digits[:10] + " " + digits[10:30] + " "
    return [digits, upper, spaced, shifted, inner, rng.choice([digits.swapcase(), digits.title()])]


@FAST
@given(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32), st.randoms())
def test_event_ids_that_differ_only_in_case_or_spacing_are_different_events(
    digits: str, rng: random.Random
) -> None:
    """Dedupe compares event ids as strings: ids spelling the same hex differently are all kept."""
    spellings = list(dict.fromkeys(_spellings(digits, rng)))
    events = [make_event(event_id, minutes) for minutes, event_id in enumerate(spellings)]
    rng.shuffle(events)
    kept = EventDeduper().first_sightings(events)
    assert sorted(event.event_id for event in kept) == sorted(spellings)


@FAST
@given(event_pools)
def test_a_deduper_that_saw_everything_passes_nothing(pool: dict[str, int]) -> None:
    """Feeding the same events a second time yields none and counts them all as duplicates."""
    events = [make_event(event_id, minutes) for event_id, minutes in pool.items()]
    deduper = EventDeduper()
    assert len(deduper.first_sightings(events)) == len(events)
    assert deduper.first_sightings(events) == []
    assert deduper.duplicates == len(events)


# --- backoff and Retry-After ------------------------------------------------------------

delays = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@FAST
@given(st.integers(-3, 10_000), delays, delays, st.integers(0, 2**32))
def test_backoff_is_never_negative_and_never_above_the_cap(
    attempt: int, initial: float, cap: float, seed: int
) -> None:
    """Every backoff lies in [ceiling/2, ceiling] with ceiling = min(cap, initial*2**(n-1))."""
    delay = backoff_delay(attempt, initial=initial, cap=cap, rng=random.Random(seed))
    ceiling = min(cap, initial * 2.0 ** min(max(attempt - 1, 0), 62))
    assert 0.0 <= delay <= cap
    assert ceiling / 2 <= delay <= ceiling


@FAST
@given(st.integers(1, 60), delays, delays)
def test_backoff_ceiling_grows_with_attempts(attempt: int, initial: float, cap: float) -> None:
    """The smallest possible wait after a later attempt is never below that after an earlier one."""

    class Lowest(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return a

    low = backoff_delay(attempt, initial=initial, cap=cap, rng=Lowest())
    assert backoff_delay(attempt + 1, initial=initial, cap=cap, rng=Lowest()) >= low


@FAST
@given(
    st.one_of(
        st.none(),
        st.text(max_size=40),
        st.from_regex(r"\s*-?[0-9]{1,12}(\.[0-9]*)?\s*", fullmatch=True),
    )
)
def test_retry_after_parsing_never_raises_and_is_never_negative(value: str | None) -> None:
    """Any header text gives None or a finite wait between 0 and 1e9 seconds."""
    seconds = parse_retry_after(value, now=1_800_000_000.0)
    assert seconds is None or (math.isfinite(seconds) and 0.0 <= seconds <= 1e9)


@FAST
@given(st.integers(0, 10**7))
def test_retry_after_seconds_are_read_as_given(value: int) -> None:
    """Delta-seconds come back as that many seconds."""
    assert parse_retry_after(str(value), now=0.0) == float(value)
    assert parse_retry_after(f" {value} ", now=0.0) == float(value)


@FAST
@given(st.integers(-(10**6), 10**7), st.integers(1_000_000_000, 2_000_000_000))
def test_retry_after_http_dates_are_read_relative_to_now(offset: int, now: int) -> None:
    """An HTTP date gives its distance from now in seconds, or 0 when it lies in the past."""
    header = email.utils.formatdate(now + offset, usegmt=True)
    assert parse_retry_after(header, now=float(now)) == float(max(offset, 0))


@FAST
@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1e6))
def test_retry_after_beyond_the_cap_is_not_retried(retry_after: float, cap: float) -> None:
    """A 429 is retried only when its Retry-After is within max_retry_after, never past it."""
    policy = RetryPolicy(max_retry_after=cap)
    error = RateLimitError("slow down", status=429, retry_after=retry_after)
    assert policy.is_retryable(error) == (retry_after <= cap)


header_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["inf", "-inf", "nan", "1e400", "-1", "1e308", "Infinity", "0x10", ""]),
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@FAST
@given(header_values, header_values, header_values, header_values)
def test_hostile_rate_limit_headers_never_raise_and_read_as_finite_or_none(
    limit: str, remaining: str, reset: str, retry_after: str
) -> None:
    """Whatever a server writes in X-RateLimit-* and Retry-After, parsing gives finite or None."""
    headers = {
        "X-RateLimit-Limit": limit,
        "X-RateLimit-Remaining": remaining,
        "X-RateLimit-Reset": reset,
        "Retry-After": retry_after,
    }
    parsed = rate_limit_headers(headers, now=1_800_000_000.0)
    for value in (parsed.limit, parsed.remaining, parsed.reset, parsed.retry_after):
        assert value is None or math.isfinite(value)
    assert parsed.retry_after is None or parsed.retry_after >= 0


# --- hostile response bodies ------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
error_keys = st.sampled_from(
    [
        "detail",
        "details",
        "error",
        "message",
        "correlation_id",
        "retry_after",
        "response_context",
        "loc",
        "msg",
    ]
)
error_bodies = st.one_of(
    json_values,
    st.dictionaries(error_keys, json_values, max_size=5),
    st.dictionaries(
        st.just("detail"),
        st.lists(st.dictionaries(error_keys, json_values, max_size=3), max_size=3),
    ),
)


@FAST
@given(st.sampled_from([400, 401, 403, 404, 418, 422, 429, 500, 502, 503, 504]), error_bodies)
def test_any_error_body_becomes_an_api_error_never_a_crash(status: int, body: Any) -> None:
    """Whatever JSON an error status carries, it is read into an ApiError with that status."""
    from explorium_events import ApiError
    from explorium_events._ratelimit import RateLimitHeaders
    from explorium_events._transport import error_for_status

    error = error_for_status(status, json.dumps(body).encode(), RateLimitHeaders(), ["a" * 40])
    assert isinstance(error, ApiError) and error.status == status
    assert isinstance(error.message, str) and len(str(error)) < 5000
    assert error.correlation_id is None or isinstance(error.correlation_id, str)
    assert error.retry_after is None or isinstance(error.retry_after, float)


event_shapes = st.fixed_dictionaries(
    {},
    optional={
        "event_id": json_values | st.text(max_size=32),
        "event_name": json_values
        | st.sampled_from(["prospect_changed_role", "prospect_job_start_anniversary"]),
        "event_time": json_values | st.sampled_from(["2026-10-01T00:00:00Z", "2026-10-01"]),
        "prospect_id": json_values,
        "data": json_values
        | st.dictionaries(
            st.sampled_from(["years_at_company", "job_anniversary_date", "full_name"]),
            json_values,
        ),
    },
)
response_shapes = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "response_context": json_values,
            "output_events": json_values | st.lists(event_shapes, max_size=3),
        },
    ),
)


@FAST
@given(response_shapes)
def test_any_200_body_decodes_or_is_a_decode_error(body: Any) -> None:
    """A 200 body of any shape either decodes or raises msgspec.DecodeError, which is retried."""
    import msgspec

    from explorium_events._models import decode_response

    try:
        decoded = decode_response(json.dumps(body).encode())
    except msgspec.DecodeError:
        return
    for event in decoded.output_events:
        assert event.event_time.tzinfo is not None
        assert json.loads(event.to_json()) == json.loads(json.dumps(event.to_dict()))
