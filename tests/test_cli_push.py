"""The push commands: enroll, enrollments, webhook and listen, through main(argv)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from explorium_events.cli import main
from explorium_events.emulator import Emulator, EmulatorConfig
from tests.conftest import TEST_KEY, prospect_id


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(rate_limit=None)) as emu:
        yield emu


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv) in a thread (it runs its own loop); the key is in neither stream."""
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    assert TEST_KEY not in captured.out + captured.err
    return code, captured.out, captured.err


def api(emulator: Emulator) -> list[str]:
    return ["--base-url", emulator.url, "--api-key", TEST_KEY]


async def test_enroll_enrolls_the_file_and_a_rerun_sends_nothing(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """45 IDs: exit 0, three calls; the same command again: exit 0, all already enrolled."""
    ids = tmp_path / "crm.txt"
    ids.write_text("prospect_id\n" + "\n".join(prospect_id(n) for n in range(45)) + "\n")
    argv = ["enroll", "--ids", str(ids), "--enrollment-key", "crm-2026", "--event-types",
            "role,company", *api(emulator)]  # fmt: skip
    code, out, err = await cli(capsys, *argv)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["enrolled"] == 45 and len(summary["enrollment_ids"]) == 3
    assert summary["event_types"] == ["prospect_changed_role", "prospect_changed_company"]
    code, out, err = await cli(capsys, *argv)
    assert code == 0 and json.loads(out)["already_enrolled"] == 45
    assert sorted(emulator.push.enroll_calls) == [5, 20, 20]


@pytest.mark.parametrize(
    ("extra", "content", "message"),
    [
        (["--enrollment-key", "crm"], None, "at least 4 characters"),
        (["--enrollment-key", "crm-2026", "--event-types", "promotion"], None, "unknown"),
        (["--enrollment-key", "crm-2026"], "nothex\n", "line 1: 'nothex'"),
    ],
)
async def test_bad_input_exits_2_before_any_request(
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    content: str | None,
    message: str,
) -> None:
    """A short key, an unknown type, an invalid ID: exit 2, one line naming it, nothing sent."""
    ids = tmp_path / "ids.txt"
    ids.write_text(content or prospect_id(1) + "\n")
    if "--event-types" not in extra:
        extra = [*extra, "--event-types", "role"]
    code, out, err = await cli(capsys, "enroll", "--ids", str(ids), *extra, *api(emulator))
    assert code == 2 and message in err and out == ""
    assert "Traceback" not in err
    assert emulator.push.requests == {}


async def test_enroll_businesses_from_a_csv_with_aliases(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--entity business reads a CSV's business_id column; aliases expand to the types."""
    ids = tmp_path / "accounts.csv"
    rows = [f"{hashlib.md5(str(n).encode()).hexdigest()},Account {n}" for n in range(3)]
    ids.write_text("business_id,name\n" + "\n".join(rows) + "\n")
    code, out, err = await cli(
        capsys, "enroll", "--entity", "business", "--ids", str(ids), "--enrollment-key",
        "accounts", "--event-types", "funding,office", *api(emulator),
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["enrolled"] == 3
    assert summary["event_types"] == ["new_funding_round", "new_office"]
    assert emulator.push.requests == {
        "GET /v1/businesses/events/enrollments": 1,
        "POST /v1/businesses/events/enrollments": 1,
    }


async def test_enroll_refuses_event_types_of_the_other_entity(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A prospect type with --entity business: exit 2 naming it, nothing sent."""
    ids = tmp_path / "accounts.txt"
    ids.write_text("a" * 32 + "\n")
    code, out, err = await cli(
        capsys, "enroll", "--entity", "business", "--ids", str(ids), "--enrollment-key",
        "accounts", "--event-types", "role", *api(emulator),
    )  # fmt: skip
    assert code == 2 and out == ""
    assert "'prospect_changed_role' is a prospect event type" in err
    assert emulator.push.requests == {}


async def test_webhook_register_refuses_an_unwritable_secret_file_before_registering(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --secret-file in a missing folder: exit 2 before the request, no secret issued."""
    code, out, err = await cli(
        capsys, "webhook", "register", "--partner-id", "ExpTest", "--url",
        "http://127.0.0.1:1/hook", "--secret-file", str(tmp_path / "nope" / "wh.secret"),
        *api(emulator),
    )  # fmt: skip
    assert code == 2 and out == "" and "--secret-file: cannot write" in err
    assert emulator.push.requests == {}


async def test_enrollments_list_and_delete_by_key(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """list prints one JSON line per enrollment; delete --enrollment-key removes them all."""
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(prospect_id(n) for n in range(25)))
    await cli(capsys, "enroll", "--ids", str(ids), "--enrollment-key", "crm-2026",
              "--event-types", "role", *api(emulator))  # fmt: skip
    code, out, _ = await cli(capsys, "enrollments", "list", *api(emulator))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and sorted(len(line["ids"]) for line in lines) == [5, 20]
    code, out, _ = await cli(
        capsys, "enrollments", "delete", "--enrollment-key", "crm-2026", *api(emulator)
    )
    assert code == 0 and len(out.splitlines()) == 2
    code, out, _ = await cli(capsys, "enrollments", "list", *api(emulator))
    assert (code, out) == (0, "")


async def test_webhook_register_writes_the_secret_only_to_a_0600_file(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --secret-file the secret is in that file (mode 0600) and in no output."""
    secret_file = tmp_path / "wh.secret"
    code, out, err = await cli(
        capsys, "webhook", "register", "--partner-id", "ExpTest", "--url",
        "http://127.0.0.1:1/hook", "--secret-file", str(secret_file), "-v", *api(emulator),
    )  # fmt: skip
    assert code == 0, err
    secret = secret_file.read_text().strip()
    assert len(secret) >= 40 and stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret not in out + err
    code, out, err = await cli(
        capsys, "webhook", "show", "--partner-id", "ExpTest", "-v", *api(emulator)
    )
    assert code == 0 and json.loads(out)["webhook_url"] == "http://127.0.0.1:1/hook"
    assert secret not in out + err
    assert [p.name for p in tmp_path.iterdir()] == ["wh.secret"]  # noqa: ASYNC240 - no temporary


async def test_webhook_register_without_a_file_shows_the_secret_once_on_stdout(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The secret is data: once, on standard output; standard error says to keep it."""
    code, out, err = await cli(
        capsys, "webhook", "register", "--partner-id", "ExpTest", "--url",
        "http://127.0.0.1:1/hook", *api(emulator),
    )  # fmt: skip
    secret = json.loads(out)["webhook_secret"]
    assert code == 0 and out.count(secret) == 1 and secret not in err
    assert "shown this once" in err


async def test_webhook_test_and_delete(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """test pushes the simulated events to the URL; delete stops the pushes; 404 after."""
    got: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        url = str(server.make_url("/hook"))
        await cli(capsys, "webhook", "register", "--partner-id", "ExpTest", "--url", url,
                  *api(emulator))  # fmt: skip
        code, _, err = await cli(
            capsys, "webhook", "test", "--partner-id", "ExpTest", "--event-name",
            "funding_round", "--events", "3", *api(emulator),
        )  # fmt: skip
        assert code == 0, err
        assert [json.loads(body)["event_name"] for body in got] == ["funding_round"] * 3
        code, _, _ = await cli(capsys, "webhook", "delete", "--partner-id", "ExpTest",
                               *api(emulator))  # fmt: skip
        assert code == 0
        code, _, err = await cli(capsys, "webhook", "show", "--partner-id", "ExpTest",
                                 *api(emulator))  # fmt: skip
        assert code == 1 and "404" in err
    finally:
        await server.close()


def test_listen_refuses_an_output_that_is_its_secret_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out naming the secret file (even through a link) is a usage error, not a wipe."""
    secret = tmp_path / "wh.secret"
    secret.write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA")
    (tmp_path / "events.jsonl").symlink_to(secret)
    code = main(["listen", "--secret-file", str(secret), "--out", str(tmp_path / "events.jsonl")])
    assert code == 2 and "must not be the same file" in capsys.readouterr().err
    assert secret.read_text() == "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"


def test_listen_refuses_csv_and_a_missing_secret_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 and one line each, before binding anything."""
    secret = tmp_path / "wh.secret"
    secret.write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA")
    assert main(["listen", "--secret-file", str(secret), "--out", str(tmp_path / "e.csv")]) == 2
    assert "jsonl or sqlite" in capsys.readouterr().err
    assert main(["listen", "--secret-file", str(tmp_path / "nope"), "--out", "e.db"]) == 2
    assert "cannot read --secret-file" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "nan", "inf", "soon"])
def test_listen_refuses_a_read_timeout_that_cannot_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """--read-timeout 0, nan, inf or a word: exit 2 with one line naming the value."""
    secret = tmp_path / "wh.secret"
    secret.write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA")
    argv = ["listen", "--secret-file", str(secret), "--out", str(tmp_path / "e.db")]
    assert main([*argv, "--read-timeout", value]) == 2
    err = capsys.readouterr().err
    assert f"argument --read-timeout: '{value}' is not a number >= 0.001" in err
    assert "Traceback" not in err
