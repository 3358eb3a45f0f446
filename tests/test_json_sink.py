"""The json output format: one JSON array of the events, whole once closed, never resumed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from explorium_events import ConfigurationError, EventsClient, pull, sync
from explorium_events._models import Event, decode_event
from explorium_events._sinks import FORMATS, JsonArraySink, format_for, open_sink
from explorium_events.emulator import Emulator, EmulatorConfig, expected_events
from tests.conftest import TEST_KEY, event_for, prospect_id


def _events(count: int, start: int = 0) -> list[Event]:
    return [
        decode_event(json.dumps(event_for(prospect_id(number), 0)).encode())
        for number in range(start, start + count)
    ]


def test_json_is_a_registered_format_read_from_the_json_extension() -> None:
    """``--out x.json`` means a JSON array, and the registry says it cannot be resumed."""
    assert format_for("events.json") == "json"
    assert FORMATS["json"].resume == "none"


def test_a_closed_json_sink_holds_one_array_of_every_event_in_order(tmp_path: Path) -> None:
    """Batches written one after the other make one array, one event object per line."""
    path = tmp_path / "events.json"
    first, second = _events(3), _events(2, start=3)
    with open_sink(str(path), "json") as sink:
        assert sink.write(first) == 3
        sink.write([])  # an empty batch adds nothing, not even a comma
        sink.write(second)
    text = path.read_text()
    assert json.loads(text) == [event.to_dict() for event in first + second]
    assert text.startswith("[\n{") and text.endswith("}\n]\n")
    assert len(text.splitlines()) == 2 + 5


def test_a_json_sink_that_got_no_event_holds_an_empty_array(tmp_path: Path) -> None:
    """No events: ``[]``, still valid JSON for whoever reads the file."""
    path = tmp_path / "events.json"
    open_sink(str(path), "json").close()
    assert json.loads(path.read_text()) == []


def test_a_json_sink_on_standard_output_closes_the_array_there(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    """Streamed to standard output, the array is closed when the sink is."""
    events = _events(2)
    sink = open_sink(None, "json")
    sink.write(events)
    sink.close()
    sink.close()  # idempotent: one closing bracket
    assert json.loads(capsysbinary.readouterr().out) == [event.to_dict() for event in events]


def test_undurable_batches_cut_back_still_leave_a_whole_array(tmp_path: Path) -> None:
    """After a failed flush the undurable batch is cut off; the array still closes cleanly."""
    path = tmp_path / "events.json"
    sink = JsonArraySink(str(path), append=False)
    kept = _events(2)
    sink.write(kept)
    sink.flush_durably()
    sink.write(_events(2, start=2))
    assert sink.discard_undurable()
    sink.close()
    assert json.loads(path.read_text()) == [event.to_dict() for event in kept]


def test_appending_to_a_json_array_is_refused(tmp_path: Path) -> None:
    """A closed array cannot take more events: ConfigurationError, and the file is untouched."""
    path = tmp_path / "events.json"
    with open_sink(str(path), "json") as sink:
        sink.write(_events(1))
    before = path.read_bytes()
    with pytest.raises(ConfigurationError, match=r"cannot append to .*JSONL"):
        open_sink(str(path), "json", append=True)
    assert path.read_bytes() == before
    # An empty or missing file is no array yet: appending to it is starting it.
    open_sink(str(tmp_path / "new.json"), "json", append=True).close()


async def test_a_checkpointed_pull_refuses_json_before_making_the_checkpoint(
    tmp_path: Path,
) -> None:
    """pull(..., checkpoint) into .json: ConfigurationError naming JSONL; nothing created."""
    client = EventsClient(api_key=TEST_KEY, base_url="http://127.0.0.1:9", rate_limit=None)
    async with client:
        with pytest.raises(ConfigurationError, match=r"json format cannot be resumed.*\.jsonl"):
            await pull(client, [prospect_id(1)], tmp_path / "e.json", tmp_path / "e.ckpt")
    assert not (tmp_path / "e.ckpt").exists() and not (tmp_path / "e.json").exists()


async def test_a_sync_refuses_json_before_making_its_state(tmp_path: Path) -> None:
    """A sync adds to its output every run, which a closed JSON array cannot take."""
    client = EventsClient(api_key=TEST_KEY, base_url="http://127.0.0.1:9", rate_limit=None)
    async with client:
        with pytest.raises(ConfigurationError, match="json format cannot be resumed"):
            await sync(client, [prospect_id(1)], tmp_path / "e.json", state=tmp_path / "s")
    assert not (tmp_path / "s").exists()


async def test_a_pull_without_checkpoint_writes_a_json_array_of_every_event(
    tmp_path: Path,
) -> None:
    """The emulator's events for 100 IDs, pulled into .json, load as one array, once each."""
    config = EmulatorConfig(rate_limit=None, now=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    ids = [prospect_id(number) for number in range(100)]
    out = tmp_path / "events.json"
    async with Emulator(config) as emulator:
        async with EventsClient(api_key=TEST_KEY, base_url=emulator.url) as client:
            summary = await pull(client, ids, out, None)
    loaded = json.loads(out.read_text())
    assert summary.complete and len(loaded) == summary.events_written
    assert sorted(event["event_id"] for event in loaded) == sorted(
        event["event_id"] for event in expected_events(ids, config=config)
    )
