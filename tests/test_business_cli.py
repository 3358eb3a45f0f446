"""Business events at the command line (fetch --entity business) and in the emulator."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from explorium_events._sinks import TABLES
from explorium_events.emulator import Emulator, EmulatorConfig, expected_business_events
from explorium_events.emulator._business import BUSINESS_EVENT_TYPES, events_for_business
from tests.conftest import TEST_KEY, prospect_id
from tests.test_business import business_ids
from tests.test_cli import Ran, run, run_here

NOW = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
CONFIG = EmulatorConfig(rate_limit=None, now=NOW)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(CONFIG) as emu:
        yield emu


def to(emulator: Emulator) -> list[str]:
    return ["--api-key", TEST_KEY, "--base-url", emulator.url]


def accounts_csv(path: Path, ids: list[str]) -> str:
    """A CRM export: a name column, then business_id."""
    path.write_text(
        "name,business_id\n" + "".join(f"Acme {n},{bid}\n" for n, bid in enumerate(ids))
    )
    return str(path)


def expected(ids: list[str], **filters: Any) -> set[str]:
    return {e["event_id"] for e in expected_business_events(ids, config=CONFIG, **filters)}


# -- 4. the command line ---------------------------------------------------------------------


async def test_fetch_entity_business_reads_a_csv_business_id_column_into_jsonl(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--entity business --ids accounts.csv: every business event, as sent, one per line."""
    ids = business_ids(150)
    out = tmp_path / "accounts.jsonl"
    ran = await run(
        capsys,
        "fetch", "--entity", "business", "--ids", accounts_csv(tmp_path / "a.csv", ids),
        "--out", str(out), "--no-progress", *to(emulator),
    )  # fmt: skip
    assert ran.code == 0, ran.err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {line["event_id"] for line in lines} == expected(ids)
    assert all("business_id" in line for line in lines)
    assert "150 of 150 business IDs done" in ran.err


async def test_fetch_entity_business_reads_one_id_per_line_from_standard_input(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """IDs piped in, events to standard output, with an alias for the event types."""
    ids = business_ids(60)
    data = "".join(f"{bid.upper()}\n" for bid in ids).encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    ran = await run(
        capsys, "fetch", "--entity", "business", "--event-types", "hiring,funding",
        "--no-progress", *to(emulator),
    )  # fmt: skip
    assert ran.code == 0, ran.err
    names = {json.loads(line)["event_name"] for line in ran.out.splitlines()}
    wanted = [t for t in BUSINESS_EVENT_TYPES if t.startswith("hiring_in_")]
    wanted.append("new_funding_round")
    assert names <= set(wanted)
    assert {json.loads(line)["event_id"] for line in ran.out.splitlines()} == expected(
        ids, event_types=wanted
    )


async def test_fetch_entity_business_writes_the_business_csv_columns(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV output of business events has business_id and the business data columns."""
    ids = business_ids(80)
    out = tmp_path / "accounts.csv.out"
    ran = await run(
        capsys, "fetch", "--entity", "business", "--ids", accounts_csv(tmp_path / "a.csv", ids),
        "--out", str(out), "--format", "csv", "--no-progress", *to(emulator),
    )  # fmt: skip
    assert ran.code == 0, ran.err
    with out.open(newline="") as rows:
        table = list(csv.reader(rows))
    assert tuple(table[0]) == TABLES["business"].csv_columns
    assert {row[0] for row in table[1:]} == expected(ids)


async def test_fetch_entity_business_with_a_checkpoint_into_sqlite_resumes_and_refuses_prospects(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--checkpoint into .db: business_events rows; a rerun sends nothing; prospects: exit 2."""
    ids = business_ids(200)
    source = tmp_path / "accounts.txt"
    source.write_text("".join(f"{bid}\n" for bid in ids))
    out, checkpoint = tmp_path / "accounts.db", tmp_path / "accounts.ckpt"
    argv = ["fetch", "--ids", str(source), "--out", str(out), "--checkpoint", str(checkpoint),
            "--no-progress", *to(emulator)]  # fmt: skip
    first = await run(capsys, *argv, "--entity", "business")
    assert first.code == 0, first.err
    requests = emulator.stats.requests
    again = await run(capsys, *argv, "--entity", "business")
    assert again.code == 0 and emulator.stats.requests == requests
    with contextlib.closing(sqlite3.connect(out)) as db:
        rows = {row[0] for row in db.execute("SELECT event_id FROM business_events")}
    assert rows == expected(ids)
    prospects = tmp_path / "prospects.txt"
    prospects.write_text("".join(f"{prospect_id(n)}\n" for n in range(10)))
    argv[2] = str(prospects)
    mismatch = await run(capsys, *argv)
    assert mismatch.code == 2 and "belongs to a different pull" in mismatch.err


def test_prospect_ids_given_as_business_ids_are_a_usage_error_with_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2, the line number, and the 32-character rule; nothing is sent."""
    source = tmp_path / "ids.txt"
    source.write_text(f"{prospect_id(1)}\n")
    ran: Ran = run_here(
        capsys, "fetch", "--entity", "business", "--ids", str(source),
        "--api-key", TEST_KEY, "--base-url", "http://127.0.0.1:9",
    )  # fmt: skip
    assert ran.code == 2
    assert "1 invalid business ID" in ran.err and "line 1" in ran.err
    assert "32 hexadecimal characters" in ran.err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--entity", "business", "--event-types", "role"], "is a prospect event type"),
        (["--event-types", "ipo"], "is a business event type"),
        (["--entity", "company"], "invalid choice: 'company'"),
        (["--entity", "business", "--event-types", "promotion"], "unknown event type"),
    ],
)
def test_event_types_of_the_other_entity_are_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    """Types that are not the entity's (or no entity at all) exit 2 with one clear line."""
    source = tmp_path / "ids.txt"
    source.write_text("")
    ran = run_here(
        capsys, "fetch", "--ids", str(source), *argv,
        "--api-key", TEST_KEY, "--base-url", "http://127.0.0.1:9",
    )  # fmt: skip
    assert ran.code == 2 and says in ran.err, ran.err
    assert "Traceback" not in ran.err


def test_a_csv_without_a_business_id_column_names_the_column_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV of prospects given to --entity business says it has no business_id column."""
    source = tmp_path / "people.csv"
    source.write_text(f"name,prospect_id\nAda,{prospect_id(1)}\n")
    ran = run_here(
        capsys, "fetch", "--entity", "business", "--ids", str(source),
        "--api-key", TEST_KEY, "--base-url", "http://127.0.0.1:9",
    )  # fmt: skip
    assert ran.code == 2 and "has no business_id column" in ran.err


def test_fetch_help_shows_the_entity_flag_and_business_aliases(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--help documents --entity and the business short names."""
    ran = run_here(capsys, "fetch", "--help")
    assert ran.code == 0
    assert "--entity {prospect,business}" in ran.out and "funding" in ran.out


# -- 5. the emulator -------------------------------------------------------------------------


async def post(url: str, body: object, key: str = TEST_KEY) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "/v1/businesses/events", json=body, headers={"api_key": key}) as answer,
    ):
        return answer.status, await answer.json()


async def test_the_business_endpoint_refuses_a_prospect_shaped_body_naming_each_problem(
    emulator: Emulator,
) -> None:
    """prospect_ids on the business endpoint: extra field, missing business_ids, bad types."""
    status, answer = await post(
        emulator.url,
        {"prospect_ids": [prospect_id(1)], "event_types": ["prospect_changed_role"]},
    )
    problems = {(tuple(item["loc"]), item["type"]) for item in answer["detail"]}
    assert status == 422
    assert problems == {
        (("body", "prospect_ids"), "extra_forbidden"),
        (("body", "business_ids"), "missing"),
        (("body", "event_types", 0), "enum"),
    }


async def test_the_business_endpoint_refuses_41_ids_repeats_and_bad_patterns(
    emulator: Emulator,
) -> None:
    """Over 40, a repeated ID and a 40-hex ID are each reported where they are."""
    ids = business_ids(40)
    status, answer = await post(
        emulator.url,
        {"business_ids": [*ids, ids[0]], "event_types": ["new_office"]},
    )
    assert status == 422
    problems = {(tuple(item["loc"]), item["type"]) for item in answer["detail"]}
    assert problems == {
        (("body", "business_ids"), "too_long"),
        (("body", "business_ids", 40), "unique_items"),
    }
    status, answer = await post(
        emulator.url, {"business_ids": [prospect_id(1)], "event_types": ["new_office"]}
    )
    assert status == 422 and answer["detail"][0]["type"] == "string_pattern_mismatch"


async def test_the_business_endpoint_serves_the_deterministic_events_of_each_business(
    emulator: Emulator,
) -> None:
    """The answer is exactly expected_business_events; the same ID and seed give the same events."""
    ids = business_ids(40)
    status, answer = await post(
        emulator.url, {"business_ids": ids, "event_types": list(BUSINESS_EVENT_TYPES)}
    )
    assert status == 200
    assert answer["output_events"] == expected_business_events(ids, config=CONFIG)
    now_us = int(NOW.timestamp() * 1_000_000)
    assert events_for_business(3, now_us, ids[0]) == events_for_business(3, now_us, ids[0])
    assert events_for_business(3, now_us, ids[5]) != events_for_business(4, now_us, ids[5])
    first = answer["output_events"][0]
    assert list(first) == ["event_name", "event_time", "event_id", "data", "business_id"]


def test_the_emulator_generates_all_39_business_types() -> None:
    """Across 1,000 businesses every one of the 39 types occurs."""
    now_us = int(NOW.timestamp() * 1_000_000)
    seen = {
        event["event_name"]
        for bid in business_ids(1_000)
        for _, event in events_for_business(0, now_us, bid)
    }
    assert seen == set(BUSINESS_EVENT_TYPES)


async def test_faults_apply_to_the_business_endpoint_too() -> None:
    """With error_rate=1 every business request is answered with a 5xx."""
    config = EmulatorConfig(rate_limit=None, now=NOW, error_rate=1.0)
    async with Emulator(config) as emu:
        status, _ = await post(
            emu.url, {"business_ids": business_ids(1), "event_types": ["cost_cutting"]}
        )
    assert status >= 500
