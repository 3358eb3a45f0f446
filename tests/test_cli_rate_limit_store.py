"""--rate-limit-store and EXPLORIUM_RATE_LIMIT_STORE on every command that calls the API.

Each command runs through main(argv) against the emulator and a real redis-server; the
store's window then holds the command's requests, under a namespace that is not the key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis

from explorium_events.cli import main
from explorium_events.emulator import Emulator, EmulatorConfig
from tests.conftest import TEST_KEY, prospect_id

Argv = Callable[[str, Path], list[str]]


def _ids(tmp_path: Path, count: int = 45) -> str:
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{prospect_id(n)}\n" for n in range(count)))
    return str(path)


def _api(url: str) -> list[str]:
    return ["--base-url", url, "--api-key", TEST_KEY]


# Every command that builds an EventsClient, with arguments that make it succeed.
COMMANDS: dict[str, Argv] = {
    "fetch": lambda url, tmp: [
        "fetch", "--ids", _ids(tmp), "--out", str(tmp / "out.jsonl"), *_api(url),
    ],
    "sync": lambda url, tmp: [
        "sync", "--ids", _ids(tmp), "--state", str(tmp / "crm.sync"),
        "--out", str(tmp / "out.jsonl"), *_api(url),
    ],
    "enroll": lambda url, tmp: [
        "enroll", "--ids", _ids(tmp), "--enrollment-key", "crm-2026", "--event-types", "role",
        *_api(url),
    ],
    "enrollments": lambda url, tmp: ["enrollments", "list", *_api(url)],
    "webhook": lambda url, tmp: [
        "webhook", "register", "--partner-id", "ExpTest", "--url", "http://127.0.0.1:1/hook",
        "--secret-file", str(tmp / "wh.secret"), *_api(url),
    ],
    "demo": lambda url, tmp: [
        "demo", "--prospects", "80", "--error-rate", "0", "--duplicate-rate", "0",
        "--out", str(tmp / "demo.jsonl"),
    ],
}  # fmt: skip


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(rate_limit=None)) as emu:
        yield emu


async def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """main(argv) in a thread (it runs its own loop): the exit status, stdout and stderr."""
    code = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def requests_reaching(emulator: Emulator) -> int:
    return emulator.stats.requests + sum(emulator.push.requests.values())


@pytest.mark.parametrize("how", ["flag", "variable"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
async def test_every_command_that_calls_the_api_shares_its_window_through_the_store(
    command: str,
    how: str,
    emulator: Emulator,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Given the store by flag or by variable, the command's requests are in Redis's window."""
    argv = COMMANDS[command](emulator.url, tmp_path)
    if how == "flag":
        argv += ["--rate-limit-store", redis_url]
    else:
        monkeypatch.setenv("EXPLORIUM_RATE_LIMIT_STORE", redis_url)
    code, _, err = await cli(argv, capsys)
    assert code == 0, err
    with redis.Redis.from_url(redis_url) as store:
        keys = [key.decode() for key in store.scan_iter("*")]
        windows = [key for key in keys if key.endswith(":window")]
        assert len(windows) == 1 and windows[0].startswith("explorium-events:"), keys
        assert store.zcard(windows[0]) > 0
    assert not any(TEST_KEY in key for key in keys)


@pytest.mark.parametrize("how", ["flag", "variable"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
async def test_a_store_that_is_not_a_redis_url_exits_2_naming_it_before_any_request(
    command: str,
    how: str,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """http://... as the store: exit 2, one line naming the value and where it came from."""
    argv = COMMANDS[command](emulator.url, tmp_path)
    if how == "flag":
        argv += ["--rate-limit-store", "http://localhost:6379"]
        named = "rate_limit_store='http://localhost:6379'"
    else:
        monkeypatch.setenv("EXPLORIUM_RATE_LIMIT_STORE", "http://localhost:6379")
        named = "EXPLORIUM_RATE_LIMIT_STORE='http://localhost:6379'"
    code, out, err = await cli(argv, capsys)
    assert code == 2, err
    assert named in err and "must be a Redis URL" in err
    assert "Traceback" not in err and out == ""  # the demo's emulator never started
    assert requests_reaching(emulator) == 0
