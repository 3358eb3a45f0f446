"""Tests of pipeline.py against the emulator, with the fixtures explorium-events installs."""

import pytest
from pipeline import company_changes, company_changes_blocking

from explorium_events import EventsClient, FetchError, RetryPolicy
from explorium_events.emulator import expected_events, make_prospect_ids
from explorium_events.pytest_plugin import RunningEmulator

IDS = make_prospect_ids(100, seed=1)


def wanted(emulator: RunningEmulator) -> dict[str, int]:
    events = expected_events(IDS, config=emulator.config, event_types=["prospect_changed_company"])
    counts: dict[str, int] = {}
    for event in events:
        counts[event["prospect_id"]] = counts.get(event["prospect_id"], 0) + 1
    return counts


@pytest.mark.asyncio
async def test_counts_company_changes(
    explorium_client: EventsClient, explorium_emulator: RunningEmulator
) -> None:
    assert await company_changes(explorium_client, IDS) == wanted(explorium_emulator)
    assert explorium_emulator.stats.requests == 3  # 40 + 40 + 20 IDs


def test_counts_company_changes_from_sync_code(explorium_sync_client, explorium_emulator) -> None:
    assert company_changes_blocking(explorium_sync_client, IDS) == wanted(explorium_emulator)


@pytest.mark.explorium_emulator(error_rate=0.5, seed=2)
def test_survives_server_errors(explorium_emulator: RunningEmulator) -> None:
    fast = RetryPolicy(max_attempts=10, initial=0.0, cap=0.0)
    with explorium_emulator.sync_client(retry=fast, max_concurrency=1) as client:
        assert company_changes_blocking(client, IDS) == wanted(explorium_emulator)
    assert explorium_emulator.stats.requests_by_status.get(200) == 3
    assert explorium_emulator.stats.requests > 3  # the 5xx were retried (seed 2: some were)


def test_reports_a_failure_when_the_server_keeps_failing(explorium_emulator) -> None:
    explorium_emulator.configure(error_rate=1.0)
    with explorium_emulator.sync_client(retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(FetchError):
            company_changes_blocking(client, IDS)
