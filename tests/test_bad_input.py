"""Bad input, table-driven, for the library and the command line.

Each case gets a clear message that names the problem, the documented outcome (an
exception type for the library, an exit status for the CLI), and no partial output.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from explorium_events import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailed,
    EventsClient,
    ExploriumError,
    FetchError,
    InvalidProspectIdError,
    MalformedResponse,
    PermissionDeniedError,
    RetryPolicy,
    ServerError,
    ServerUnavailableError,
)
from tests.conftest import TEST_KEY, ApiServer, FakeClock, Seen, event_for, events_body, prospect_id

GOOD = [prospect_id(number) for number in range(5)]
TEN_MB = "a" * 10_000_000
NOW = dt.datetime.fromtimestamp(FakeClock().time(), dt.UTC)
LONG_AGO = (NOW - dt.timedelta(days=200)).date().isoformat()
LESS_LONG_AGO = (NOW - dt.timedelta(days=150)).date().isoformat()


def _html_200(server: ApiServer, seen: Seen) -> web.StreamResponse:
    return web.Response(
        text="<html><body>Welcome to nginx!</body></html>", content_type="text/html"
    )


def _html_502(server: ApiServer, seen: Seen) -> web.StreamResponse:
    return web.Response(
        text="<html><body><h1>502 Bad Gateway</h1></body></html>",
        status=502,
        content_type="text/html",
    )


def _status(status: int, body: dict[str, Any]) -> Callable[[ApiServer, Seen], web.StreamResponse]:
    return lambda server, seen: web.json_response(body, status=status)


REJECTED = _status(401, {"details": "Invalid API key.", "correlation_id": "1" * 32})
NO_CREDITS = _status(
    403, {"error": "forbidden", "message": "Out of credits", "correlation_id": "2" * 32}
)


@dataclass
class LibraryCase:
    """One bad input to the library and what must come of it."""

    ids: list[str] = field(default_factory=lambda: list(GOOD))
    kwargs: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)
    handler: Callable[[ApiServer, Seen], web.StreamResponse] | None = None
    raises: type[BaseException] | None = None
    cause: type[BaseException] | None = None  # for FetchError: the failure's error type
    says: tuple[str, ...] = ()  # fragments of the message, lowercase
    requests: int | None = None  # how many requests the server may see
    sent: list[str] | None = None  # the IDs that must have been sent (sorted)
    warns: str | None = None


LIBRARY_CASES: dict[str, LibraryCase] = {
    "empty input": LibraryCase(ids=[], requests=0),
    "only blank values": LibraryCase(
        ids=["", "  ", "\r\n", "\t"],
        raises=InvalidProspectIdError,
        says=("4 invalid prospect ids", "40 hexadecimal"),
        requests=0,
    ),
    "a UTF-8 BOM glued to the first ID": LibraryCase(
        ids=["\ufeff" + GOOD[0], *GOOD[1:]],
        raises=InvalidProspectIdError,
        says=("\\ufeff", "40 hexadecimal"),
        requests=0,
    ),
    "CRLF line endings": LibraryCase(ids=[pid + "\r\n" for pid in GOOD], sent=sorted(GOOD)),
    "uppercase IDs": LibraryCase(ids=[pid.upper() for pid in GOOD], sent=sorted(GOOD)),
    "a 39-character ID": LibraryCase(
        ids=[*GOOD, GOOD[0][:39]],
        raises=InvalidProspectIdError,
        says=(GOOD[0][:39], "40 hexadecimal"),
        requests=0,
    ),
    "a 41-character ID": LibraryCase(
        ids=[*GOOD, GOOD[0] + "a"],
        raises=InvalidProspectIdError,
        says=(GOOD[0] + "a", "40 hexadecimal"),
        requests=0,
    ),
    "non-hex characters": LibraryCase(
        ids=[*GOOD, "g" * 40, "z" + GOOD[0][1:]],
        raises=InvalidProspectIdError,
        says=("2 invalid", "g" * 40, "40 hexadecimal"),
        requests=0,
    ),
    "a 10 MB value": LibraryCase(
        ids=[*GOOD, TEN_MB],
        raises=InvalidProspectIdError,
        says=("1 invalid", "10,000,000 characters", "40 hexadecimal"),
        requests=0,
    ),
    "invalid values skipped on request": LibraryCase(
        ids=[*GOOD, "xyz", TEN_MB],
        kwargs={"skip_invalid": True},
        sent=sorted(GOOD),
    ),
    "a single string instead of a list": LibraryCase(
        ids=GOOD[0],
        raises=ConfigurationError,
        says=("not a single string",),
        requests=0,
    ),
    "values that are not strings": LibraryCase(
        ids=[*GOOD, None, 12345],
        raises=InvalidProspectIdError,  # type: ignore[list-item]
        says=("2 invalid", "none", "12345"),
        requests=0,
    ),
    "an unknown event type": LibraryCase(
        kwargs={"event_types": ["prospect_changed_role", "prospect_got_promoted"]},
        raises=ConfigurationError,
        says=("prospect_got_promoted", "prospect_changed_company"),
        requests=0,
    ),
    "an unparseable date": LibraryCase(
        kwargs={"timestamp_from": "last tuesday"},
        raises=ConfigurationError,
        says=("timestamp_from", "last tuesday", "yyyy-mm-dd"),
        requests=0,
    ),
    "an impossible date": LibraryCase(
        kwargs={"timestamp_to": "2026-02-30"},
        raises=ConfigurationError,
        says=("timestamp_to", "2026-02-30"),
        requests=0,
    ),
    "since after until": LibraryCase(
        kwargs={"timestamp_from": "2026-09-02", "timestamp_to": "2026-09-01"},
        raises=ConfigurationError,
        says=("after", "2026-09-02", "2026-09-01"),
        requests=0,
    ),
    "a window older than 3 months": LibraryCase(
        kwargs={"timestamp_from": LONG_AGO, "timestamp_to": LESS_LONG_AGO},
        warns="3 months",
        sent=sorted(GOOD),
    ),
    "a missing key": LibraryCase(
        client={"api_key": ""},
        raises=ConfigurationError,
        says=("no api key", "explorium_api_key"),
        requests=0,
    ),
    "a rejected key (401)": LibraryCase(
        handler=REJECTED,
        raises=FetchError,
        cause=AuthenticationError,
        says=("401", "invalid api key", "check the api key", "1" * 32),
        requests=1,
    ),
    "an out-of-credits key (403)": LibraryCase(
        handler=NO_CREDITS,
        raises=FetchError,
        cause=PermissionDeniedError,
        says=("403", "out of credits", "credits"),
        requests=1,
    ),
    "a server that is not there": LibraryCase(
        client={"base_url": "http://127.0.0.1:{free_port}"},
        raises=FetchError,
        cause=ConnectionFailed,
        says=("connection to 127.0.0.1:", "failed"),
    ),
    "a server that answers HTML (200)": LibraryCase(
        handler=_html_200,
        raises=FetchError,
        cause=MalformedResponse,
        says=("not the documented json", "<html>"),
        requests=2,
    ),
    "a server that answers HTML (502)": LibraryCase(
        handler=_html_502,
        raises=FetchError,
        cause=ServerError,
        says=("502", "html page"),
        requests=2,
    ),
    "plain http to a remote host": LibraryCase(
        client={"base_url": "http://api.explorium.ai"},
        raises=ConfigurationError,
        says=("plain http", "https"),
        requests=0,
    ),
}


@pytest.mark.parametrize("name", list(LIBRARY_CASES))
async def test_library_bad_input(
    name: str,
    api: ApiServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    unused_tcp_port: int,
) -> None:
    """Each bad input raises the documented error, naming the problem, with nothing partial."""
    case = LIBRARY_CASES[name]
    if case.handler is not None:
        api.handler = case.handler
    settings: dict[str, Any] = {
        "api_key": TEST_KEY,
        "base_url": api.url,
        "clock": clock,
        "retry": RetryPolicy(max_attempts=2, initial=0.01, cap=0.01),
    }
    settings.update(case.client)
    settings["base_url"] = settings["base_url"].format(free_port=unused_tcp_port)
    caplog.set_level(logging.WARNING, logger="explorium_events")
    outcome: BaseException | None = None
    result = None
    try:
        async with EventsClient(**settings) as client:
            result = await client.fetch(case.ids, **case.kwargs)
    except ExploriumError as error:
        outcome = error
    if case.raises is None:
        assert outcome is None, outcome
        assert result is not None and result.failed == []
    else:
        assert isinstance(outcome, case.raises), outcome
        message = str(outcome).lower()
        for fragment in case.says:
            assert fragment.lower() in message, (fragment, message[:500])
        # Clear means readable: even a 10 MB value does not make a 10 MB message.
        assert len(message) < 2000
    if isinstance(outcome, FetchError):
        assert case.cause is not None
        partial = outcome.result
        assert partial.events == [] and partial.succeeded == []
        assert sorted(partial.failed_ids) == sorted(GOOD)
        assert all(isinstance(failure.error, case.cause) for failure in partial.failed)
    if case.requests is not None:
        assert len(api.requests) == case.requests
    if case.sent is not None:
        assert sorted(api.ids_requested) == case.sent
    if case.warns is not None:
        assert case.warns in caplog.text
        assert result is not None
    elif case.raises is None:
        assert caplog.text == ""


@dataclass
class PullCase:
    """One bad input file to the bulk pull() and what must come of it."""

    content: bytes | None
    raises: type[BaseException]
    says: tuple[str, ...]


PULL_CASES: dict[str, PullCase] = {
    "a file that does not exist": PullCase(None, ConfigurationError, ("no such file",)),
    "a file that is not UTF-8": PullCase(
        b"\xff\xfe" + "abc".encode("utf-16-le"), ConfigurationError, ("not utf-8",)
    ),
    "a 10 MB single line": PullCase(
        TEN_MB.encode() + b"\n",
        InvalidProspectIdError,
        ("1 invalid", "(at 1)", "10,000,00"),
    ),
    "a 41-character ID on line 3": PullCase(
        "\n".join([*GOOD[:2], GOOD[2] + "a", *GOOD[3:]]).encode(),
        InvalidProspectIdError,
        ("1 invalid", GOOD[2] + "a (at 3)"),
    ),
}


@pytest.mark.parametrize("name", list(PULL_CASES))
async def test_bulk_pull_bad_input(
    name: str, api: ApiServer, clock: FakeClock, tmp_path: Any
) -> None:
    """A bulk pull refuses a bad input file before any request, naming it, leaving no output."""
    from explorium_events import pull

    case = PULL_CASES[name]
    source = tmp_path / "ids.txt"
    if case.content is not None:
        source.write_bytes(case.content)
    async with EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock) as client:
        with pytest.raises(case.raises) as caught:
            await pull(
                client, str(source), str(tmp_path / "out.jsonl"), str(tmp_path / "pull.checkpoint")
            )
    message = str(caught.value).lower()
    for fragment in case.says:
        assert fragment.lower() in message, (fragment, message)
    assert len(message) < 2000
    assert api.requests == []
    assert not (tmp_path / "out.jsonl").exists() or (tmp_path / "out.jsonl").stat().st_size == 0


# --- the command line ---------------------------------------------------------------------

REAL_NOW = dt.datetime.now(dt.UTC)
CLI_LONG_AGO = (REAL_NOW - dt.timedelta(days=200)).date().isoformat()
CLI_LESS_LONG_AGO = (REAL_NOW - dt.timedelta(days=120)).date().isoformat()
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _lines(*values: str, end: str = "\n") -> bytes:
    return "".join(value + end for value in values).encode()


def _no_events(server: ApiServer, seen: Seen) -> web.StreamResponse:
    return web.json_response(
        {
            "response_context": {"correlation_id": "3" * 32, "request_status": "miss"},
            "output_events": [],
        }
    )


@dataclass
class CliCase:
    """One bad input to ``explorium-events fetch`` and what must come of it."""

    content: bytes | None = field(default_factory=lambda: _lines(*GOOD))  # the --ids file
    args: list[str] = field(default_factory=list)
    key: str | None = TEST_KEY
    handler: Callable[[ApiServer, Seen], web.StreamResponse] | None = None
    exit: int = EXIT_OK
    says: tuple[str, ...] = ()  # fragments of standard error, lowercase
    requests: int | None = None
    sent: list[str] | None = None
    failed_out: list[str] | None = None  # the IDs --failed-out must hold
    prepare: Callable[[Any], None] | None = None  # makes files under tmp_path first


def _checkpoint_of_another_pull(tmp_path: Any) -> None:
    from explorium_events._checkpoint import Checkpoint, PullSpec

    spec = PullSpec(
        input_fingerprint="0" * 64,
        unique_ids=3,
        event_types=("prospect_changed_role",),
        timestamp_from=None,
        timestamp_to=None,
        batch_size=40,
        output=str(tmp_path / "events.jsonl"),
        output_format="jsonl",
    )
    with Checkpoint.open(tmp_path / "pull.checkpoint", spec):
        pass


def _junk_checkpoint(tmp_path: Any) -> None:
    (tmp_path / "pull.checkpoint").write_text("hello, I am not SQLite\n")


CLI_CASES: dict[str, CliCase] = {
    "empty input": CliCase(content=b"", says=("no prospect ids",), requests=0),
    "only blank lines": CliCase(content=b"\n   \n\r\n\t\n", says=("no prospect ids",), requests=0),
    "a UTF-8 BOM": CliCase(content=b"\xef\xbb\xbf" + _lines(*GOOD), sent=sorted(GOOD)),
    "CRLF line endings": CliCase(content=_lines(*GOOD, end="\r\n"), sent=sorted(GOOD)),
    "uppercase IDs": CliCase(content=_lines(*(pid.upper() for pid in GOOD)), sent=sorted(GOOD)),
    "a 39-character ID": CliCase(
        content=_lines(*GOOD[:2], GOOD[2][:39], *GOOD[3:]),
        exit=EXIT_USAGE,
        says=("line 3", GOOD[2][:39], "39 characters", "40 hexadecimal", "--skip-invalid"),
        requests=0,
    ),
    "a 41-character ID": CliCase(
        content=_lines(GOOD[0] + "0", *GOOD[1:]),
        exit=EXIT_USAGE,
        says=("line 1", GOOD[0] + "0", "41 characters"),
        requests=0,
    ),
    "non-hex characters": CliCase(
        content=_lines(*GOOD, "g" * 40),
        exit=EXIT_USAGE,
        says=("line 6", "'g' is not a hexadecimal digit"),
        requests=0,
    ),
    "a 10 MB single line": CliCase(
        content=TEN_MB.encode(),
        exit=EXIT_USAGE,
        says=("line 1", "longer than 65,536 characters"),
        requests=0,
    ),
    "a CSV without a prospect_id column": CliCase(
        content=_lines("email,name", "a@example.com,Ann"),
        exit=EXIT_USAGE,
        says=("no prospect_id column", "'email'", "'name'"),
        requests=0,
    ),
    "a CSV with a prospect_id column (the good case)": CliCase(
        content=_lines("email,prospect_id", *(f"x@example.com,{pid}" for pid in GOOD)),
        sent=sorted(GOOD),
    ),
    "not UTF-8": CliCase(
        content=b"\xff\xfe" + "abc".encode("utf-16-le"),
        exit=EXIT_USAGE,
        says=("line 1", "not utf-8"),
        requests=0,
    ),
    "a missing --ids file": CliCase(
        content=None,
        args=["--ids", "{tmp}/nowhere.txt"],
        exit=EXIT_USAGE,
        says=("nowhere.txt", "no such file"),
        requests=0,
    ),
    "an unknown event type": CliCase(
        args=["--event-types", "role,promotion"],
        exit=EXIT_USAGE,
        says=("--event-types", "unknown event type 'promotion'"),
        requests=0,
    ),
    "an unparseable date": CliCase(
        args=["--since", "last tuesday"],
        exit=EXIT_USAGE,
        says=("--since", "'last tuesday'", "not a date"),
        requests=0,
    ),
    "--since after --until": CliCase(
        args=["--since", "2026-09-02", "--until", "2026-09-01"],
        exit=EXIT_USAGE,
        says=("--since 2026-09-02 is after --until 2026-09-01",),
        requests=0,
    ),
    "a window older than 3 months": CliCase(
        args=["--since", CLI_LONG_AGO, "--until", CLI_LESS_LONG_AGO],
        handler=_no_events,
        says=("3 months",),
        sent=sorted(GOOD),
    ),
    "a bad --rate-limit": CliCase(
        args=["--rate-limit", "fast"],
        exit=EXIT_USAGE,
        says=("--rate-limit", "'fast'"),
        requests=0,
    ),
    "a bad --concurrency": CliCase(
        args=["--concurrency", "0"],
        exit=EXIT_USAGE,
        says=("--concurrency", "'0'"),
        requests=0,
    ),
    "a missing key": CliCase(
        key=None,
        exit=EXIT_USAGE,
        says=("no api key", "--api-key", "explorium_api_key"),
        requests=0,
    ),
    "a rejected key (401)": CliCase(
        handler=REJECTED,
        exit=EXIT_FAILED,
        says=("401", "invalid api key", "1" * 32, "nothing was retried"),
        requests=1,
        failed_out=sorted(GOOD),
    ),
    "an out-of-credits key (403)": CliCase(
        handler=NO_CREDITS,
        exit=EXIT_FAILED,
        says=("403", "out of credits"),
        requests=1,
        failed_out=sorted(GOOD),
    ),
    "a server that is not there": CliCase(
        args=["--base-url", "http://127.0.0.1:{free_port}", "--max-attempts", "1"],
        exit=EXIT_FAILED,
        says=("connection to 127.0.0.1:{free_port} failed",),
        failed_out=sorted(GOOD),
    ),
    "a server that answers HTML (200)": CliCase(
        handler=_html_200,
        args=["--max-attempts", "1"],
        exit=EXIT_FAILED,
        says=("not the documented json",),
        requests=1,
        failed_out=sorted(GOOD),
    ),
    "a server that answers HTML (502)": CliCase(
        handler=_html_502,
        args=["--max-attempts", "1"],
        exit=EXIT_FAILED,
        says=("502", "html page"),
        requests=1,
        failed_out=sorted(GOOD),
    ),
    "plain http to a remote host": CliCase(
        args=["--base-url", "http://api.explorium.ai"],
        exit=EXIT_USAGE,
        says=("plain http", "https"),
        requests=0,
    ),
    "a checkpoint of another pull": CliCase(
        args=["--checkpoint", "{tmp}/pull.checkpoint"],
        prepare=_checkpoint_of_another_pull,
        exit=EXIT_USAGE,
        says=("belongs to a different pull", "input ids differ"),
        requests=0,
    ),
    "a checkpoint that is not one": CliCase(
        args=["--checkpoint", "{tmp}/pull.checkpoint"],
        prepare=_junk_checkpoint,
        exit=EXIT_USAGE,
        says=("is not a checkpoint",),
        requests=0,
    ),
    "a checkpoint with IDs from standard input": CliCase(
        content=None,
        args=["--checkpoint", "{tmp}/pull.checkpoint"],
        exit=EXIT_USAGE,
        says=("--checkpoint needs --ids file",),
        requests=0,
    ),
    "a checkpointed pull with a rejected key (401)": CliCase(
        args=["--checkpoint", "{tmp}/pull.checkpoint"],
        handler=REJECTED,
        exit=EXIT_FAILED,
        # The checkpoint holds what is left (rerun to resume), so --failed-out lists only
        # batches that failed, not the IDs never tried.
        says=("401", "refused the key", "1" * 32, "check --api-key"),
        requests=1,
        failed_out=[],
    ),
}


@pytest.mark.parametrize("name", list(CLI_CASES))
async def test_cli_bad_input(
    name: str,
    api: ApiServer,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    unused_tcp_port: int,
) -> None:
    """Each bad input exits with the documented status and a message naming the problem."""
    import asyncio

    from explorium_events.cli import main

    case = CLI_CASES[name]
    if case.handler is not None:
        api.handler = case.handler
    out, failed = tmp_path / "events.jsonl", tmp_path / "failed.txt"
    if case.prepare is not None:
        case.prepare(tmp_path)
    argv = ["fetch", "--no-progress", "--out", str(out), "--base-url", api.url]
    if case.content is not None:
        (tmp_path / "ids.txt").write_bytes(case.content)
        argv += ["--ids", str(tmp_path / "ids.txt")]
    if case.key is not None:
        argv += ["--api-key", case.key]
    argv += ["--failed-out", str(failed)]
    argv += [arg.format(tmp=tmp_path, free_port=unused_tcp_port) for arg in case.args]
    # main() runs its own event loop, so it runs in a thread while this loop serves.
    status = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    stderr = captured.err.lower()
    assert status == case.exit, captured.err
    for fragment in case.says:
        assert fragment.format(free_port=unused_tcp_port).lower() in stderr, (fragment, stderr)
    assert len(captured.err) < 5000  # one screen, even for a 10 MB line
    assert captured.out == ""  # events go to --out; nothing else goes to standard output
    if case.exit == EXIT_USAGE:
        # Refused before any work: no output file, no failed-IDs file, no request.
        assert not out.exists() and not failed.exists()
        assert "traceback" not in stderr
    else:
        written = out.read_text().splitlines()
        assert len(written) == len(set(written))
        if case.exit == EXIT_FAILED:
            assert written == []
        lines = failed.read_text().splitlines()
        assert sorted(lines) == (case.failed_out or [])
    if case.requests is not None:
        assert len(api.requests) == case.requests
    if case.sent is not None:
        assert sorted(api.ids_requested) == case.sent


# --- issue 10: secrets-settings ---

NAN, INF = float("nan"), float("inf")
MINUS_14H = dt.timezone(dt.timedelta(hours=-14))


def _key_with(character: str) -> str:
    """The test key with ``character`` put in as its 9th character."""
    return TEST_KEY[:8] + character + TEST_KEY[8:]


SETTINGS_CASES: dict[str, LibraryCase] = {
    **{
        f"{setting}={value!r}": LibraryCase(
            client={setting: value},
            raises=ConfigurationError,
            says=(f"{setting}={value!r}", rule),
            requests=0,
        )
        for setting, value, rule in [
            ("rate_window", NAN, "finite number of seconds, at least 0.001 (a millisecond)"),
            ("rate_window", INF, "finite number of seconds, at least 0.001 (a millisecond)"),
            ("rate_window", 0, "at least 0.001"),
            ("rate_window", -60.0, "at least 0.001"),
            ("rate_window", 1e-300, "finite number of seconds, at least 0.001 (a millisecond)"),
            ("rate_window", 0.0009, "at least 0.001"),
            ("rate_window", True, "finite number of seconds, at least 0.001"),
            ("request_timeout", NAN, "finite number of seconds, more than 0"),
            ("request_timeout", INF, "finite number of seconds, more than 0"),
            ("request_timeout", 0.0, "more than 0"),
            ("max_concurrency", 0, "whole number of at least 1"),
            ("max_concurrency", 2.5, "whole number of at least 1"),
            ("max_concurrency", True, "whole number of at least 1"),
            ("batch_size", 2.5, "whole number of at least 1"),
            ("rate_limit", NAN, "whole number of at least 1, or none"),
            ("rate_limit", 0, "whole number of at least 1, or none"),
            ("batch_window", NAN, "finite number of seconds, 0 or more"),
            ("batch_window", INF, "finite number of seconds, 0 or more"),
            ("cache_ttl", NAN, "more than 0, or none for no cache"),
            ("cache_ttl", 0, "more than 0, or none for no cache"),
            ("cache_size", 0, "whole number of at least 1"),
        ]
    },
    **{
        f"a key holding {what} ({character!r})": LibraryCase(
            client={"api_key": _key_with(character)},
            raises=ConfigurationError,
            says=(f"the api key holds {what} (character 9 of 26)", "printable ascii"),
            requests=0,
        )
        for character, what in [
            ("\n", "a line break"),
            ("\r", "a carriage return"),
            ("\0", "a nul"),
            ("\t", "a tab"),
            ("\x1b", "a control character"),
            ("\x7f", "a control character"),
            ("\u00e9", "a non-ascii character"),
            ("\u2028", "a non-ascii character"),
        ]
    },
    "timestamp_to past year 9999 in UTC": LibraryCase(
        kwargs={"timestamp_to": "9999-12-31T23:59:59-14:00"},
        raises=ConfigurationError,
        says=("timestamp_to='9999-12-31t23:59:59-14:00'", "0001-01-01", "9999-12-31"),
        requests=0,
    ),
    "timestamp_from before year 1 in UTC": LibraryCase(
        kwargs={"timestamp_from": "0001-01-01T00:00:00+14:00"},
        raises=ConfigurationError,
        says=("timestamp_from='0001-01-01t00:00:00+14:00'", "0001-01-01", "9999-12-31"),
        requests=0,
    ),
    "timestamp_to as a datetime past year 9999 in UTC": LibraryCase(
        kwargs={"timestamp_to": dt.datetime(9999, 12, 31, 23, 0, tzinfo=MINUS_14H)},
        raises=ConfigurationError,
        says=("timestamp_to='9999-12-31t23:00:00-14:00'", "range"),
        requests=0,
    ),
    "the last date of the calendar as timestamp_to (the good case)": LibraryCase(
        kwargs={"timestamp_to": "9999-12-31"}, sent=sorted(GOOD)
    ),
    "a rate window of exactly a millisecond (the good case)": LibraryCase(
        client={"rate_window": 0.001}, sent=sorted(GOOD)
    ),
}


@pytest.mark.parametrize("name", list(SETTINGS_CASES))
async def test_library_bad_settings(
    name: str,
    api: ApiServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    unused_tcp_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each bad setting, key or time is refused before any request, naming value and rule."""
    monkeypatch.setitem(LIBRARY_CASES, name, SETTINGS_CASES[name])
    await test_library_bad_input(name, api, clock, caplog, unused_tcp_port)


@pytest.mark.parametrize(
    ("setting", "value", "rule"),
    [
        ("max_attempts", 0, "whole number of at least 1"),
        ("max_attempts", 1.5, "whole number of at least 1"),
        ("max_elapsed", NAN, "finite number of seconds, 0 or more"),
        ("max_elapsed", -1.0, "finite number of seconds, 0 or more"),
        ("initial", INF, "finite number of seconds, 0 or more"),
        ("cap", NAN, "finite number of seconds, 0 or more"),
        ("max_retry_after", NAN, "finite number of seconds, 0 or more"),
    ],
)
def test_retry_policy_bad_settings(setting: str, value: object, rule: str) -> None:
    """RetryPolicy refuses NaN, infinities and negatives, naming the setting and the rule."""
    with pytest.raises(ConfigurationError) as caught:
        RetryPolicy(**{setting: value})
    assert f"{setting}={value!r}: must be a {rule}" in str(caught.value)


@pytest.mark.parametrize("value", [NAN, INF, -1.0])
async def test_bulk_pull_bad_commit_interval(
    value: float, api: ApiServer, clock: FakeClock, tmp_path: Any
) -> None:
    """pull(commit_interval=nan/inf/negative) is refused before any request or file."""
    from explorium_events import pull

    async with EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock) as client:
        with pytest.raises(ConfigurationError, match=r"commit_interval=.*finite number"):
            await pull(
                client,
                GOOD,
                str(tmp_path / "out.jsonl"),
                str(tmp_path / "pull.checkpoint"),
                commit_interval=value,
            )
    assert api.requests == []
    assert list(tmp_path.iterdir()) == []


SETTINGS_CLI_CASES: dict[str, CliCase] = {
    "--until past year 9999 in UTC": CliCase(
        args=["--until", "9999-12-31T23:59:59-14:00"],
        exit=EXIT_USAGE,
        says=("--until", "'9999-12-31t23:59:59-14:00'", "0001-01-01", "9999-12-31"),
        requests=0,
    ),
    "--since before year 1 in UTC": CliCase(
        args=["--since", "0001-01-01T00:00:00+14:00"],
        exit=EXIT_USAGE,
        says=("--since", "'0001-01-01t00:00:00+14:00'", "0001-01-01", "9999-12-31"),
        requests=0,
    ),
    "--until the last date of the calendar (the good case)": CliCase(
        args=["--until", "9999-12-31"], sent=sorted(GOOD)
    ),
    "a --rate-limit window shorter than a millisecond": CliCase(
        args=["--rate-limit", "200/1e-300"],
        exit=EXIT_USAGE,
        says=("--rate-limit", "'200/1e-300'", "at least 0.001 (a millisecond)"),
        requests=0,
    ),
    "a --rate-limit window of exactly a millisecond (the good case)": CliCase(
        args=["--rate-limit", "200/0.001"], sent=sorted(GOOD)
    ),
    "a key holding a line break": CliCase(
        key=_key_with("\n"),
        exit=EXIT_USAGE,
        says=("the api key holds a line break (character 9 of 26)",),
        requests=0,
    ),
    "a key holding non-ASCII text": CliCase(
        key=_key_with("\u00e9"),
        exit=EXIT_USAGE,
        says=("non-ascii character (character 9 of 26)",),
        requests=0,
    ),
}


@pytest.mark.parametrize("name", list(SETTINGS_CLI_CASES))
async def test_cli_bad_settings(
    name: str,
    api: ApiServer,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    unused_tcp_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Out-of-range times, windows and unsendable keys exit 2 with one line naming it."""
    monkeypatch.setitem(CLI_CASES, name, SETTINGS_CLI_CASES[name])
    await test_cli_bad_input(name, api, tmp_path, capsys, unused_tcp_port)


# --- issue 10: lazy-order-events ---


def _one_event_with_data(data: Any) -> Callable[[ApiServer, Seen], web.StreamResponse]:
    def handler(server: ApiServer, seen: Seen) -> web.StreamResponse:
        body = events_body(seen.ids)
        body["output_events"][0]["data"] = data
        return web.json_response(body)

    return handler


LAZY_ORDER_CASES: dict[str, tuple[Callable[[ApiServer, Seen], web.StreamResponse] | None, str]] = {
    # (the server's answer, what the error or the one warning must say)
    "an invalid value after 5 IDs in a generator": (None, "'not-an-id'"),
    "one event whose data is null": (_one_event_with_data(None), "data does not fit"),
    "one event whose data is a string": (_one_event_with_data("oops"), "data does not fit"),
    "one event with a mistyped data field": (
        _one_event_with_data({"current_company_name": ["x"]}),
        "expected `str | null`, got `array`",
    ),
}


@pytest.mark.parametrize("name", list(LAZY_ORDER_CASES))
async def test_lazy_order_events_bad_input(
    name: str, api: ApiServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad value in a generator raises with what came before; a bad event costs only itself."""
    handler, says = LAZY_ORDER_CASES[name]
    if handler is not None:
        api.handler = handler
    caplog.set_level(logging.WARNING, logger="explorium_events")
    async with EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock) as client:
        if handler is None:
            with pytest.raises(InvalidProspectIdError) as caught:
                await client.fetch(value for value in [*GOOD, "not-an-id", *GOOD])
            assert says in str(caught.value) and "40 hexadecimal" in str(caught.value)
            assert caught.value.result is not None
            assert sorted(caught.value.result.succeeded) == sorted(GOOD)
            return
        result = await client.fetch(GOOD)
    assert result.failed == [] and len(api.requests) == 1 and len(result.events) == len(GOOD)
    [warning] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert says.lower() in warning.getMessage().lower()
    assert event_for(GOOD[0])["event_id"] in warning.getMessage()


# --- issue 10: silent-server ---

_UNAVAILABLE = _status(503, {"details": "Service unavailable", "correlation_id": "5" * 32})

SILENT_SERVER_LIBRARY_CASES: dict[str, LibraryCase] = {
    **{
        f"give_up_after={value!r}": LibraryCase(
            client={"give_up_after": value},
            raises=ConfigurationError,
            says=("give_up_after", repr(value), "positive number of seconds"),
            requests=0,
        )
        for value in (0, -1.0, float("nan"), float("inf"), "300")
    },
    "a server that answers nothing usable for give_up_after": LibraryCase(
        handler=_UNAVAILABLE,
        client={
            "give_up_after": 0.001,
            "retry": RetryPolicy(max_attempts=50, initial=0.01, cap=0.01),
        },
        raises=FetchError,
        cause=ServerUnavailableError,
        says=("nothing usable", "give_up_after=0.001s", "503", "5" * 32),
        requests=2,  # the fake clock stands still during the first: its retry gives up
    ),
}
LIBRARY_CASES.update(SILENT_SERVER_LIBRARY_CASES)


@pytest.mark.parametrize("name", list(SILENT_SERVER_LIBRARY_CASES))
async def test_library_bad_input_silent_server(
    name: str,
    api: ApiServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    unused_tcp_port: int,
) -> None:
    """A bad give_up_after, or a server given up on, raises the documented error."""
    await test_library_bad_input(name, api, clock, caplog, unused_tcp_port)


SILENT_SERVER_CLI_CASES: dict[str, CliCase] = {
    **{
        f"--give-up-after {value}": CliCase(
            args=["--give-up-after", value],
            exit=EXIT_USAGE,
            says=("--give-up-after", f"{value!r}", "positive number of seconds"),
            requests=0,
        )
        for value in ("0", "-5", "nan", "inf", "soon")
    },
    "a server that answers nothing usable for --give-up-after": CliCase(
        handler=_UNAVAILABLE,
        args=["--give-up-after", "0.001", "--max-attempts", "5"],
        exit=EXIT_FAILED,
        says=("nothing usable", "give_up_after=0.001s", "503", "5" * 32),
        failed_out=sorted(GOOD),
    ),
}
CLI_CASES.update(SILENT_SERVER_CLI_CASES)


@pytest.mark.parametrize("name", list(SILENT_SERVER_CLI_CASES))
async def test_cli_bad_input_silent_server(
    name: str,
    api: ApiServer,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    unused_tcp_port: int,
) -> None:
    """A bad --give-up-after exits 2 naming it; a server given up on exits 1, IDs kept."""
    await test_cli_bad_input(name, api, tmp_path, capsys, unused_tcp_port)


# --- issue 10: writes ---------------------------------------------------------------------


def _answer_with(change: Callable[[dict[str, Any]], None], *, indent: int | None = None) -> Any:
    """A handler whose events are changed by ``change``, the JSON optionally pretty-printed."""
    import json

    from tests.conftest import events_body

    def handler(server: ApiServer, seen: Seen) -> web.StreamResponse:
        body = events_body(seen.ids)
        for event in body["output_events"]:
            change(event)
        return web.Response(text=json.dumps(body, indent=indent), content_type="application/json")

    return handler


def _huge_years(event: dict[str, Any]) -> None:
    event["event_name"] = "prospect_job_start_anniversary"
    event["data"] = {"event_name": event["event_name"], "years_at_company": 2**70}


def _huge_in_data(event: dict[str, Any]) -> None:
    event["data"]["current_company_id"] = 2**70


def _far_time(event: dict[str, Any]) -> None:
    event["event_time"] = "9999-12-31T23:59:59-14:00"


def _formula(event: dict[str, Any]) -> None:
    event["data"]["current_job_title"] = '=HYPERLINK("http://x")'


@dataclass
class WritesCase:
    """A server value, or an answer's shape, that the output must survive."""

    handler: Callable[[ApiServer, Seen], web.StreamResponse]
    out: str  # the --out file name
    args: list[str] = field(default_factory=list)
    check: Callable[[Any], bool] = lambda path: True


def _sqlite_rows(path: Any) -> int:
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def _jsonl_lines(path: Any) -> int:
    import json

    return sum(1 for line in path.read_text().splitlines() if json.loads(line))


def _csv_title(path: Any) -> str:
    import csv

    with path.open(newline="") as file:
        return str(next(csv.DictReader(file))["current_job_title"])


WRITES_CASES = {
    "integer beyond 64 bits in an INTEGER column (sqlite)": WritesCase(
        _answer_with(_huge_years), "e.db", check=lambda path: _sqlite_rows(path) == len(GOOD)
    ),
    "integer beyond 64 bits in a text column (sqlite, --checkpoint)": WritesCase(
        _answer_with(_huge_in_data),
        "e.db",
        ["--checkpoint", "{tmp}/p.ckpt"],
        check=lambda path: _sqlite_rows(path) == len(GOOD),
    ),
    "time that cannot move to UTC (sqlite)": WritesCase(
        _answer_with(_far_time), "e.db", check=lambda path: _sqlite_rows(path) == len(GOOD)
    ),
    "answer pretty-printed over many lines (jsonl)": WritesCase(
        _answer_with(lambda event: None, indent=2),
        "e.jsonl",
        check=lambda path: _jsonl_lines(path) == len(GOOD),
    ),
    "text cell that starts a formula (csv)": WritesCase(
        _answer_with(_formula),
        "e.csv",
        check=lambda path: _csv_title(path) == '\'=HYPERLINK("http://x")',
    ),
}


@pytest.mark.parametrize("name", list(WRITES_CASES))
async def test_server_values_the_output_must_survive(
    name: str, api: ApiServer, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each server value is written without a traceback, exit 0, nothing in --failed-out."""
    import asyncio

    from explorium_events.cli import main

    case = WRITES_CASES[name]
    api.handler = case.handler
    out, failed = tmp_path / case.out, tmp_path / "failed.txt"
    (tmp_path / "ids.txt").write_bytes(_lines(*GOOD))
    argv = ["fetch", "--no-progress", "--ids", str(tmp_path / "ids.txt"), "--out", str(out)]
    argv += ["--base-url", api.url, "--api-key", TEST_KEY, "--failed-out", str(failed)]
    argv += [arg.format(tmp=tmp_path) for arg in case.args]
    status = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    assert status == EXIT_OK, captured.err
    assert "traceback" not in captured.err.lower()
    assert failed.read_text() == ""
    assert case.check(out)


# --- issue 10: input-and-paths ---


@dataclass
class PathCase:
    """Files given to ``fetch`` (run in tmp_path) and what must come of them.

    In ``args``, ``{pipe}`` is a pipe already holding GOOD (what bash's ``<(...)`` gives)
    and ``{fifo}`` a named FIFO that a thread writes GOOD into once a reader opens it.
    """

    args: list[str]
    exit: int = EXIT_USAGE
    says: tuple[str, ...] = ()  # fragments of standard error, lowercase
    prepare: Callable[[Any], None] | None = None  # makes files under tmp_path first
    stdin: str | None = None  # a file of tmp_path to be standard input (a real descriptor)
    sent: list[str] | None = None  # the IDs that must have been sent (sorted); None: none
    writable_folders: bool = True  # False: needs permissions that root does not have


def _symlink(link: str, target: str) -> Callable[[Any], None]:
    return lambda tmp: (tmp / link).symlink_to(target)


def _hard_link(link: str, target: str) -> Callable[[Any], None]:
    return lambda tmp: (tmp / link).hardlink_to(tmp / target)


def _text_file(name: str) -> Callable[[Any], None]:
    return lambda tmp: (tmp / name).write_text("my notes, not a database\n")


def _read_only_folder(tmp: Any) -> None:
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)


_UNDER_A_FILE = _text_file("afile")  # "afile/x": ENOTDIR, unwritable even for root
_CLASH = ("must not be the same file",)
_READ_ONCE = ("can be read again on resume", "save the ids to a file first")

PATH_CASES: dict[str, PathCase] = {
    # Point 3: an output never destroys the input or another output.
    "--failed-out is --ids (the retry loop, with one file)": PathCase(
        ["--ids", "ids.txt", "--out", "e.jsonl", "--failed-out", "./ids.txt"],
        says=(*_CLASH, "--ids and --failed-out", "ids.txt", "destroy the input"),
    ),
    "--out is --ids": PathCase(
        ["--ids", "ids.txt", "--out", "ids.txt"], says=(*_CLASH, "--ids and --out")
    ),
    "--out is --ids through a symlink": PathCase(
        ["--ids", "ids.txt", "--out", "link.jsonl"],
        prepare=_symlink("link.jsonl", "ids.txt"),
        says=(*_CLASH, "--ids and --out", "ids.txt"),
    ),
    "--checkpoint is --ids through a hard link": PathCase(
        ["--ids", "ids.txt", "--out", "e.jsonl", "--checkpoint", "hard.ckpt"],
        prepare=_hard_link("hard.ckpt", "ids.txt"),
        says=(*_CLASH, "--ids and --checkpoint"),
    ),
    "--checkpoint is --out, spelled ./": PathCase(
        ["--ids", "ids.txt", "--out", "e.jsonl", "--checkpoint", "./e.jsonl"],
        says=(*_CLASH, "--out and --checkpoint", "e.jsonl"),
    ),
    "--failed-out is --out, spelled through ..": PathCase(
        ["--ids", "ids.txt", "--out", "e.jsonl", "--failed-out", "sub/../e.jsonl"],
        prepare=lambda tmp: (tmp / "sub").mkdir(),
        says=(*_CLASH, "--out and --failed-out", "e.jsonl"),
    ),
    "--failed-out a dangling symlink to --out": PathCase(
        ["--ids", "ids.txt", "--out", "e.jsonl", "--failed-out", "f.txt"],
        prepare=_symlink("f.txt", "e.jsonl"),
        says=(*_CLASH, "--out and --failed-out"),
    ),
    "--out is the file standard input reads": PathCase(
        ["--out", "ids.txt"], stdin="ids.txt", says=(*_CLASH, "standard input and --out")
    ),
    # Point 9: an output that cannot be written is a usage error before the run.
    "--out notadb.db, a text file": PathCase(
        ["--ids", "ids.txt", "--out", "notadb.db"],
        prepare=_text_file("notadb.db"),
        says=("--out: cannot write notadb.db", "not an sqlite database"),
    ),
    "--out notadb.db, a text file, with --checkpoint": PathCase(
        ["--ids", "ids.txt", "--out", "notadb.db", "--checkpoint", "p.ckpt"],
        prepare=_text_file("notadb.db"),
        says=("--out: cannot write notadb.db", "not an sqlite database"),
    ),
    "an SQLite --out under a regular file": PathCase(
        ["--ids", "ids.txt", "--out", "afile/events.db"],
        prepare=_UNDER_A_FILE,
        says=("--out: cannot write afile/events.db", "afile is not a folder"),
    ),
    "an SQLite --out under a regular file, with --checkpoint": PathCase(
        ["--ids", "ids.txt", "--out", "afile/events.db", "--checkpoint", "p.ckpt"],
        prepare=_UNDER_A_FILE,
        says=("--out: cannot write afile/events.db", "afile is not a folder"),
    ),
    "a JSONL --out under a regular file": PathCase(
        ["--ids", "ids.txt", "--out", "afile/events.jsonl"],
        prepare=_UNDER_A_FILE,
        says=("--out: cannot write afile/events.jsonl", "not a folder"),
    ),
    "--failed-out under a regular file, with --checkpoint": PathCase(
        [
            "--ids",
            "ids.txt",
            "--out",
            "e.jsonl",
            "--checkpoint",
            "p.ckpt",
            "--failed-out",
            "afile/f",
        ],
        prepare=_UNDER_A_FILE,
        says=("--failed-out: cannot write afile/f", "not a folder"),
    ),
    "--checkpoint under a regular file": PathCase(
        ["--ids", "ids.txt", "--out", "e.jsonl", "--checkpoint", "afile/p.ckpt"],
        prepare=_UNDER_A_FILE,
        says=("--checkpoint: cannot write afile/p.ckpt", "not a folder"),
    ),
    "--out in a folder that does not exist": PathCase(
        ["--ids", "ids.txt", "--out", "nowhere/events.jsonl"],
        says=("--out: cannot write nowhere/events.jsonl", "does not exist"),
    ),
    # Root writes anywhere, so these two are skipped as root (the ENOTDIR cases above
    # stand in for them there).
    "an SQLite --out in a read-only folder": PathCase(
        ["--ids", "ids.txt", "--out", "ro/events.db"],
        prepare=_read_only_folder,
        says=("--out: cannot write ro/events.db", "permission denied"),
        writable_folders=False,
    ),
    "an SQLite --out in a read-only folder, with --checkpoint": PathCase(
        ["--ids", "ids.txt", "--out", "ro/events.db", "--checkpoint", "p.ckpt"],
        prepare=_read_only_folder,
        says=("--out: cannot write ro/events.db", "permission denied"),
        writable_folders=False,
    ),
    # Point 2: input that can be read only once is read once, or refused with --checkpoint.
    "--ids a pipe, as bash's <(...) gives": PathCase(
        ["--ids", "{pipe}", "--out", "e.jsonl"], exit=EXIT_OK, sent=sorted(GOOD)
    ),
    "--ids a named FIFO": PathCase(
        ["--ids", "{fifo}", "--out", "e.jsonl"], exit=EXIT_OK, sent=sorted(GOOD)
    ),
    "--ids a pipe, with --checkpoint": PathCase(
        ["--ids", "{pipe}", "--out", "e.jsonl", "--checkpoint", "p.ckpt"],
        says=("/dev/fd/", "a pipe", *_READ_ONCE),
    ),
    "--ids a named FIFO, with --checkpoint": PathCase(
        ["--ids", "{fifo}", "--out", "e.jsonl", "--checkpoint", "p.ckpt"],
        says=("ids.fifo", "fifo", *_READ_ONCE),
    ),
}


def _files(folder: Any) -> dict[str, bytes | None]:
    """Every entry under ``folder``: a file's bytes, None for anything else."""
    found: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        regular = path.is_file() and not path.is_symlink()
        found[str(path.relative_to(folder))] = path.read_bytes() if regular else None
    return found


@pytest.mark.timeout(30)  # a FIFO read a second time waits for a writer forever
@pytest.mark.parametrize("name", list(PATH_CASES))
async def test_cli_files_bad_input(
    name: str,
    api: ApiServer,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each case exits as documented, naming the flags and the file, and destroys nothing."""
    import asyncio
    import os
    import threading

    from explorium_events.cli import main

    case = PATH_CASES[name]
    if not case.writable_folders and os.geteuid() == 0:
        pytest.skip("root may write in a read-only folder; the ENOTDIR cases cover this")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ids.txt").write_bytes(_lines(*GOOD))
    if case.prepare is not None:
        case.prepare(tmp_path)
    argv = ["fetch", "--no-progress", "--base-url", api.url, "--api-key", TEST_KEY]
    opened: list[int] = []
    writer: threading.Thread | None = None
    fifo = tmp_path / "ids.fifo"
    if "{pipe}" in case.args:
        read_end, write_end = os.pipe()
        opened.append(read_end)
        os.write(write_end, _lines(*GOOD))  # far below a pipe's buffer
        os.close(write_end)
    if "{fifo}" in case.args:
        os.mkfifo(fifo)

        def write_fifo() -> None:
            with open(fifo, "wb") as stream:  # returns once a reader has opened it
                stream.write(_lines(*GOOD))

        writer = threading.Thread(target=write_fifo, daemon=True)
        writer.start()
    pipe = f"/dev/fd/{opened[0]}" if opened else ""
    argv += [arg.format(pipe=pipe, fifo=fifo) for arg in case.args]
    if case.stdin is not None:
        stdin = (tmp_path / case.stdin).open(encoding="utf-8")
        monkeypatch.setattr("sys.stdin", stdin)
    before = _files(tmp_path)
    try:
        status = await asyncio.to_thread(main, argv)
    finally:
        if case.stdin is not None:
            stdin.close()
        for descriptor in opened:
            os.close(descriptor)
        if writer is not None and writer.is_alive():
            # The run never opened the FIFO: a reader of our own lets the writer finish.
            descriptor = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            writer.join(10)
            os.close(descriptor)
    captured = capsys.readouterr()
    stderr = captured.err.lower()
    assert status == case.exit, captured.err
    for fragment in case.says:
        assert fragment.lower() in stderr, (fragment, stderr)
    assert "traceback" not in stderr
    assert sorted(api.ids_requested) == (case.sent or [])
    if case.exit == EXIT_USAGE:
        # Refused before anything was opened for writing: every file as it was, none new.
        assert _files(tmp_path) == before
        assert len(captured.err.splitlines()) == 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["a named FIFO", "a pipe (/dev/fd)"])
async def test_bulk_pull_refuses_input_that_can_be_read_only_once(
    kind: str, api: ApiServer, clock: FakeClock, tmp_path: Any
) -> None:
    """pull() reads its input twice, so a FIFO or a pipe is a ConfigurationError, never a hang."""
    import os

    from explorium_events import pull

    opened: list[int] = []
    if kind == "a named FIFO":
        source = str(tmp_path / "ids.fifo")
        os.mkfifo(source)  # no writer: opening it would wait forever
    else:
        read_end, write_end = os.pipe()
        opened += [read_end, write_end]
        source = f"/dev/fd/{read_end}"
    try:
        async with EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock) as client:
            with pytest.raises(ConfigurationError) as caught:
                await pull(client, source, str(tmp_path / "out.jsonl"), str(tmp_path / "p.ckpt"))
    finally:
        for descriptor in opened:
            os.close(descriptor)
    message = str(caught.value).lower()
    assert source.lower() in message and "read only once" in message
    assert "save the ids to a file first" in message
    assert api.requests == [] and not (tmp_path / "out.jsonl").exists()
