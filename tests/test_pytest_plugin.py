"""The pytest plugin's fixtures: the emulator on loopback, its controls, and clients bound to it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from explorium_events import (
    EventsClient,
    FetchError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    SyncEventsClient,
)
from explorium_events._entity import BUSINESS
from explorium_events._ids import invalid_reason
from explorium_events.cli._demo import demo_business_ids, demo_prospect_ids
from explorium_events.emulator import (
    expected_events,
    expected_events_at,
    make_business_ids,
    make_prospect_ids,
)
from explorium_events.pytest_plugin import EMULATOR_API_KEY, RunningEmulator

_ONCE = RetryPolicy(max_attempts=1)


def test_the_emulator_serves_loopback_on_a_free_port_with_its_key(
    explorium_emulator: RunningEmulator,
) -> None:
    """The fixture's URL is 127.0.0.1 on an ephemeral port; its key works and another is refused."""
    assert explorium_emulator.url.startswith("http://127.0.0.1:")
    assert not explorium_emulator.url.endswith(":8787")
    assert explorium_emulator.api_key == EMULATOR_API_KEY
    with explorium_emulator.sync_client(api_key="wrong-key", retry=_ONCE) as client:
        result = client.fetch(make_prospect_ids(2), raise_on_error=False)
    assert result.failed and explorium_emulator.stats.requests_by_status == {401: 1}


def test_the_sync_client_fixture_fetches_from_the_emulator(
    explorium_sync_client: SyncEventsClient, explorium_emulator: RunningEmulator
) -> None:
    """explorium_sync_client, in a plain test, gets the emulator's events."""
    ids = make_prospect_ids(5)
    events = explorium_sync_client.fetch(ids).events
    expected = expected_events(ids, config=explorium_emulator.config)
    assert [event.event_id for event in events] == [event["event_id"] for event in expected]


async def test_the_async_client_fixture_fetches_from_the_emulator(
    explorium_client: EventsClient, explorium_emulator: RunningEmulator
) -> None:
    """explorium_client, in an async test, is an open EventsClient bound to the emulator."""
    ids = make_prospect_ids(45)
    result = await explorium_client.fetch(ids)
    assert len(result.events) == len(expected_events(ids, config=explorium_emulator.config))
    assert explorium_emulator.stats.requests == 2  # 40 + 5


@pytest.mark.explorium_emulator(error_rate=1.0, seed=3)
def test_the_marker_sets_the_emulators_config(explorium_emulator: RunningEmulator) -> None:
    """@pytest.mark.explorium_emulator(...) gives the fixture's emulator those settings."""
    assert explorium_emulator.config.error_rate == 1.0
    assert explorium_emulator.config.seed == 3
    with explorium_emulator.sync_client(retry=_ONCE) as client:
        with pytest.raises(FetchError) as caught:
            client.fetch(make_prospect_ids(1))
    assert isinstance(caught.value.__cause__, ServerError)


def test_configure_changes_faults_and_latency_while_running(
    explorium_emulator: RunningEmulator,
) -> None:
    """configure(error_rate=1.0) fails the next request; configure(error_rate=0) heals it."""
    with explorium_emulator.sync_client(retry=_ONCE) as client:
        explorium_emulator.configure(error_rate=1.0, latency_ms=1)
        assert client.fetch(make_prospect_ids(1), raise_on_error=False).failed
        explorium_emulator.configure(error_rate=0.0, latency_ms=0)
        assert not client.fetch(make_prospect_ids(1), raise_on_error=False).failed
    with pytest.raises(ValueError, match="probability"):
        explorium_emulator.configure(error_rate=2.0)
    with pytest.raises(ValueError, match="no field"):
        explorium_emulator.configure(eror_rate=0.5)


def test_rate_limit_reset_and_clock_are_controls(explorium_emulator: RunningEmulator) -> None:
    """With rate_limit=1 a second request gets 429; advance() or reset() empties the window."""
    explorium_emulator.configure(rate_limit=1, rate_window=60.0)
    ids = make_prospect_ids(1)

    def fetch_with_a_new_client() -> list[type[BaseException]]:
        # A new client each time: one that saw "remaining 0" would wait for the window.
        with explorium_emulator.sync_client(retry=_ONCE, rate_limit=None) as client:
            failed = client.fetch(ids, raise_on_error=False).failed
        return [type(failure.error) for failure in failed]

    assert fetch_with_a_new_client() == []
    assert fetch_with_a_new_client() == [RateLimitError]
    explorium_emulator.advance(61)
    assert fetch_with_a_new_client() == []
    assert explorium_emulator.stats.requests_by_status == {200: 2, 429: 1}
    explorium_emulator.reset()
    assert explorium_emulator.stats.requests == 0
    assert fetch_with_a_new_client() == []  # the window was emptied too


def test_advance_moves_the_one_clock_so_the_weeks_new_events_appear(
    explorium_emulator: RunningEmulator,
) -> None:
    """advance(timedelta(days=7)) moves the emulator's clock: the week's events are served."""
    ids = make_prospect_ids(200, seed=4)
    config, start = explorium_emulator.config, explorium_emulator.clock.now
    explorium_emulator.advance(dt.timedelta(days=7))
    assert explorium_emulator.clock.now == start + dt.timedelta(days=7)
    assert explorium_emulator.clock.skipped == 7 * 86_400
    with explorium_emulator.sync_client() as client:
        served = {event.event_id for event in client.fetch(ids).events}
    week_later = expected_events_at(ids, config=config, at=start + dt.timedelta(days=7))
    assert served == {event["event_id"] for event in week_later}
    assert served != {event["event_id"] for event in expected_events(ids, config=config)}


def test_a_running_emulator_works_without_pytest_fixtures() -> None:
    """RunningEmulator is a context manager usable from any plain code (unittest, scripts)."""
    with RunningEmulator(rate_limit=None, seed=9) as emulator:
        with emulator.sync_client() as client:
            assert client.fetch(make_prospect_ids(3)).succeeded
        url = emulator.url
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(ValueError, match="forward"):
        emulator.advance(-1)


def test_the_readme_shows_the_user_project_that_ci_runs() -> None:
    """The README's complete example is, verbatim, examples/user_project (which .ci/run runs)."""
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text()
    for name in ("pipeline.py", "test_pipeline.py"):
        assert (root / "examples" / "user_project" / name).read_text() in readme, name


def test_make_prospect_ids_are_valid_distinct_and_the_demos() -> None:
    """make_prospect_ids gives distinct valid IDs, the same for a seed: those the demo pulls."""
    ids = make_prospect_ids(50, seed=1)
    assert len(set(ids)) == 50 and all(invalid_reason(pid) is None for pid in ids)
    assert ids == make_prospect_ids(50, seed=1) != make_prospect_ids(50, seed=2)
    assert ids == demo_prospect_ids(50, 1)


def test_make_business_ids_are_valid_distinct_and_the_demos() -> None:
    """make_business_ids gives distinct valid business IDs, the same for a seed: the demo's."""
    ids = make_business_ids(50, seed=1)
    assert len(set(ids)) == 50 and all(invalid_reason(bid, entity=BUSINESS) is None for bid in ids)
    assert ids == make_business_ids(50, seed=1) != make_business_ids(50, seed=2)
    assert ids == demo_business_ids(50, 1)
    with pytest.raises(ValueError, match="count"):
        make_business_ids(-1)
