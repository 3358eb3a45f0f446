"""The API key and the webhook secret never leak: not in output, logs, errors, reprs or files."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from explorium_events import (
    ConfigurationError,
    EventsClient,
    ExploriumError,
    FetchError,
    RetryPolicy,
)
from tests.conftest import TEST_KEY, ApiServer, FakeClock, Seen, events_body

IdMaker = Callable[[int], list[str]]


def texts_of(value: Any) -> Iterator[str]:
    """Every text a value can show: str, repr, and for errors the whole chained traceback."""
    yield str(value)
    yield repr(value)
    if isinstance(value, BaseException):
        yield "".join(traceback.format_exception(value))
        for link in (value.__cause__, value.__context__):
            if link is not None:
                yield from texts_of(link)
        for name in ("result", "error", "message", "correlation_id", "prospect_ids"):
            if hasattr(value, name):
                yield repr(getattr(value, name))
        if isinstance(value, FetchError):
            for failure in value.result.failed:
                yield repr(failure)
                yield from texts_of(failure.error)


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert TEST_KEY not in text
        # Not even most of it: a cut-off preview must not show a prefix either.
        assert TEST_KEY[:12] not in text


def _html(server: ApiServer, seen: Seen) -> web.StreamResponse:
    return web.Response(
        text=f"<html><body>bad key {TEST_KEY}</body></html>", status=502, content_type="text/html"
    )


def _echo_json(status: int) -> Callable[[ApiServer, Seen], web.StreamResponse]:
    """A server that quotes the key back in its error body, as some APIs do."""

    def handle(server: ApiServer, seen: Seen) -> web.StreamResponse:
        return web.json_response(
            {
                "details": f"invalid api_key {seen.headers.get('api_key')}",
                "correlation_id": "f" * 32,
            },
            status=status,
        )

    return handle


def _echo_200(server: ApiServer, seen: Seen) -> web.StreamResponse:
    # A 200 whose body is not the documented JSON, and starts with the key.
    return web.Response(text=f"{seen.headers.get('api_key')} says hello", status=200)


def _truncated_echo(server: ApiServer, seen: Seen) -> web.StreamResponse:
    return web.Response(
        body=f'{{"oops": "{TEST_KEY}"'.encode(), status=200, content_type="application/json"
    )


def _rate_limited(server: ApiServer, seen: Seen) -> web.StreamResponse:
    return web.json_response(
        {"error": "slow", "retry_after": 9999}, status=429, headers={"Retry-After": "9999"}
    )


def _ok(server: ApiServer, seen: Seen) -> web.StreamResponse:
    return web.json_response(events_body(seen.ids))


def _redirect_to_key(server: ApiServer, seen: Seen) -> web.StreamResponse:
    # A redirect whose target carries the key: the refusal quotes Location.
    return web.Response(
        status=302, headers={"Location": f"https://elsewhere.example/events?api_key={TEST_KEY}"}
    )


def _echo_in_headers(server: ApiServer, seen: Seen) -> web.StreamResponse:
    # No body to redact: the key comes back in a header and in the status line's phrase.
    return web.Response(
        status=503, reason=f"Key {TEST_KEY} is suspended", headers={"X-Echo-Key": TEST_KEY}
    )


def _json_escaped_echo(server: ApiServer, seen: Seen) -> web.StreamResponse:
    # Valid JSON spells the key with \u escapes: the raw bytes never hold it, the text does.
    escaped = "".join(f"\\u{ord(character):04x}" for character in TEST_KEY)
    return web.Response(
        body=f'{{"error": "bad key {escaped}", "correlation_id": "{escaped}"}}'.encode(),
        status=401,
        content_type="application/json",
    )


def _key_as_correlation_id(server: ApiServer, seen: Seen) -> web.StreamResponse:
    # A healthy answer, except that its correlation id (logged, checkpointed) is the key.
    return web.json_response(events_body(seen.ids, correlation_id=TEST_KEY))


FAILING_SERVERS: dict[str, Callable[[ApiServer, Seen], web.StreamResponse]] = {
    "redirect to a Location holding the key": _redirect_to_key,
    "key in a header and the reason phrase": _echo_in_headers,
    "401 quoting the key in JSON escapes": _json_escaped_echo,
    "200 whose correlation id is the key": _key_as_correlation_id,
    "401 quoting the key": _echo_json(401),
    "403 quoting the key": _echo_json(403),
    "422 quoting the key": _echo_json(422),
    "500 quoting the key": _echo_json(500),
    "429 beyond the cap": _rate_limited,
    "HTML page quoting the key": _html,
    "200 that is not JSON": _echo_200,
    "200 cut short": _truncated_echo,
    "a healthy server": _ok,
}


@pytest.mark.parametrize("name", list(FAILING_SERVERS))
async def test_library_at_debug_level_never_shows_the_key(
    api: ApiServer, clock: FakeClock, ids: IdMaker, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """Against a server that fails (even one that quotes the key), no log, error or repr has it."""
    api.handler = FAILING_SERVERS[name]
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        clock=clock,
        retry=RetryPolicy(max_attempts=2, initial=0.01, cap=0.01, max_retry_after=60),
    ) as client:
        texts.append(repr(client))
        try:
            result = await client.fetch(ids(50))
        except ExploriumError as error:
            texts.extend(texts_of(error))
        else:
            texts.extend(repr(event) for event in result.events)
            texts.append(repr(result))
        async with client.stream(ids(50)) as batches:
            try:
                async for batch in batches:
                    texts.append(repr(batch))
            except ExploriumError as error:
                texts.extend(texts_of(error))
        texts.append(repr(client))
        texts.append(repr(client.rate_limit_state()))
    assert api.requests and all(seen.headers.get("api_key") == TEST_KEY for seen in api.requests)
    texts.append(caplog.text)
    texts.extend(record.getMessage() for record in caplog.records)
    texts.extend(repr(record.args) for record in caplog.records)
    assert_no_key(*texts)


@pytest.mark.parametrize("name", list(FAILING_SERVERS))
@pytest.mark.parametrize("out_name", ["events.jsonl", "events.csv", "events.db"])
async def test_bulk_pull_checkpoint_and_output_never_hold_the_key(
    api: ApiServer,
    clock: FakeClock,
    ids: IdMaker,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
    name: str,
    out_name: str,
) -> None:
    """A bulk pull against a failing server leaves the key in no checkpoint, output or log."""
    from explorium_events import pull

    api.handler = FAILING_SERVERS[name]
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        clock=clock,
        retry=RetryPolicy(max_attempts=2, initial=0.01, cap=0.01, max_retry_after=60),
    ) as client:
        try:
            summary = await pull(
                client, ids(90), str(tmp_path / out_name), str(tmp_path / "pull.checkpoint")
            )
            texts.append(repr(summary))
        except ExploriumError as error:
            texts.extend(texts_of(error))
    assert api.requests
    assert (tmp_path / "pull.checkpoint").exists()
    assert_no_key(*texts, caplog.text, *files_text(tmp_path))


async def test_library_with_no_server_at_all_never_shows_the_key(
    clock: FakeClock, ids: IdMaker, caplog: pytest.LogCaptureFixture, unused_tcp_port: int
) -> None:
    """A refused connection's error chain and logs do not carry the key either."""
    caplog.set_level(logging.DEBUG)
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=f"http://127.0.0.1:{unused_tcp_port}",
        clock=clock,
        retry=RetryPolicy(max_attempts=2, initial=0.01, cap=0.01),
    ) as client:
        with pytest.raises(FetchError) as caught:
            await client.fetch(ids(10))
    assert_no_key(*texts_of(caught.value), caplog.text)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.explorium.ai",
        "http://10.0.0.5:8080",
        "http://[2001:db8::1]/",
        "http://127.0.0.1.example.com",
        "http://localhost.evil.com:80",
    ],
)
def test_plain_http_to_a_remote_host_is_refused_without_showing_the_key(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client refuses, at construction, to send the key in clear text off this machine."""
    with pytest.raises(ConfigurationError) as caught:
        EventsClient(api_key=TEST_KEY, base_url=url)
    assert "http" in str(caught.value)
    monkeypatch.setenv("EXPLORIUM_API_KEY", TEST_KEY)
    monkeypatch.setenv("EXPLORIUM_BASE_URL", url)
    with pytest.raises(ConfigurationError) as from_environment:
        EventsClient()
    assert_no_key(*texts_of(caught.value), *texts_of(from_environment.value))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_never_carries_the_key_to_another_address(
    api: ApiServer, clock: FakeClock, ids: IdMaker, status: int
) -> None:
    """A server that redirects elsewhere gets an error back; the key is never sent there."""
    elsewhere: list[dict[str, str]] = []

    async def collect(request: web.Request) -> web.Response:
        elsewhere.append(dict(request.headers))
        return web.json_response(events_body([]))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", collect)
    other = TestServer(app, host="127.0.0.1", port=0)
    await other.start_server()
    try:
        target = str(other.make_url("/v1/prospects/events"))
        api.handler = lambda server, seen: web.Response(status=status, headers={"Location": target})
        async with EventsClient(
            api_key=TEST_KEY, base_url=api.url, clock=clock, retry=RetryPolicy(max_attempts=2)
        ) as client:
            with pytest.raises(FetchError) as caught:
                await client.fetch(ids(5))
    finally:
        await other.close()
    assert elsewhere == []
    failure = caught.value.result.failed[0]
    assert failure.status == status and failure.attempts == 1
    assert "redirect" in failure.message
    assert_no_key(*texts_of(caught.value))


async def test_the_key_is_sent_only_as_its_header(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """The key travels in the api_key header only: never in the URL or the body."""
    async with EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock) as client:
        await client.fetch(ids(5))
    (seen,) = api.requests
    assert seen.headers["api_key"] == TEST_KEY
    assert TEST_KEY not in repr(seen.body)
    assert all(TEST_KEY not in value for name, value in seen.headers.items() if name != "api_key")


def test_no_event_loop_is_needed_to_refuse_a_bad_url() -> None:
    """The refusal happens in the constructor, before any loop or session exists."""
    with pytest.raises(ConfigurationError):
        EventsClient(api_key=TEST_KEY, base_url="http://example.com")
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


# --- the command line ---------------------------------------------------------------------


async def run_cli(argv: list[str]) -> int:
    """Run the CLI's main() in a thread (it runs its own event loop) while this loop serves."""
    from explorium_events.cli import main

    return await asyncio.to_thread(main, argv)


def files_text(directory: Any) -> list[str]:
    """Everything written under a directory, read as text whatever it is (SQLite included)."""
    return [
        path.read_bytes().decode("latin-1")
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    ]


@pytest.mark.parametrize("name", list(FAILING_SERVERS))
@pytest.mark.parametrize(
    ("key_from", "extra"),
    [
        ("flag", []),
        ("environment", []),
        ("flag", ["--checkpoint", "{tmp}/pull.checkpoint"]),
        ("environment", ["--checkpoint", "{tmp}/pull.checkpoint", "--format", "sqlite"]),
    ],
)
async def test_cli_fetch_at_debug_level_never_shows_the_key(
    api: ApiServer,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    ids: IdMaker,
    name: str,
    key_from: str,
    extra: list[str],
) -> None:
    """fetch -v against a failing server writes the key nowhere: streams, logs, checkpoint."""
    api.handler = FAILING_SERVERS[name]
    caplog.set_level(logging.DEBUG)
    (tmp_path / "ids.txt").write_text("\n".join(ids(90)) + "\n")
    argv = [
        "fetch",
        "-v",
        "--no-progress",
        "--ids",
        str(tmp_path / "ids.txt"),
        "--out",
        str(tmp_path / "events.jsonl"),
        "--failed-out",
        str(tmp_path / "failed.txt"),
        "--base-url",
        api.url,
        # One variant retries, so the retry warnings are searched too (their waits are real).
        "--max-attempts",
        "2" if key_from == "flag" and not extra else "1",
        *(arg.format(tmp=tmp_path) for arg in extra),
    ]
    if key_from == "flag":
        argv += ["--api-key", TEST_KEY]
    else:
        monkeypatch.setenv("EXPLORIUM_API_KEY", TEST_KEY)
    status = await run_cli(argv)
    captured = capsys.readouterr()
    assert status in (0, 1), captured.err
    assert api.requests and all(seen.headers.get("api_key") == TEST_KEY for seen in api.requests)
    if extra:
        assert (tmp_path / "pull.checkpoint").exists()
    assert "debug" in captured.err.lower()  # the debug log really was on
    assert_no_key(captured.out, captured.err, caplog.text, *files_text(tmp_path))


async def test_cli_fetch_to_standard_output_never_shows_the_key(
    api: ApiServer,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    ids: IdMaker,
) -> None:
    """With events on standard output and a key-quoting 401, neither stream holds the key."""
    api.handler = FAILING_SERVERS["401 quoting the key"]
    (tmp_path / "ids.txt").write_text("\n".join(ids(10)) + "\n")
    status = await run_cli(
        [
            "fetch",
            "-v",
            "--no-progress",
            "--ids",
            str(tmp_path / "ids.txt"),
            "--base-url",
            api.url,
            "--api-key",
            TEST_KEY,
        ]
    )
    captured = capsys.readouterr()
    assert status == 1
    assert_no_key(captured.out, captured.err)


async def test_cli_fetch_with_no_server_never_shows_the_key(
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    ids: IdMaker,
    unused_tcp_port: int,
) -> None:
    """A refused connection at debug level: the key is not in any output."""
    (tmp_path / "ids.txt").write_text("\n".join(ids(10)) + "\n")
    status = await run_cli(
        [
            "fetch",
            "-v",
            "--no-progress",
            "--ids",
            str(tmp_path / "ids.txt"),
            "--out",
            str(tmp_path / "events.jsonl"),
            "--max-attempts",
            "1",
            "--base-url",
            f"http://127.0.0.1:{unused_tcp_port}",
            "--api-key",
            TEST_KEY,
        ]
    )
    captured = capsys.readouterr()
    assert status == 1
    assert_no_key(captured.out, captured.err, *files_text(tmp_path))


@pytest.mark.parametrize("url", ["http://api.explorium.ai", "http://192.0.2.1:8787"])
async def test_cli_refuses_plain_http_to_a_remote_host_without_showing_the_key(
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    ids: IdMaker,
    url: str,
) -> None:
    """fetch --base-url http://remote exits 2 before sending anything, without the key."""
    (tmp_path / "ids.txt").write_text("\n".join(ids(3)) + "\n")
    status = await run_cli(
        [
            "fetch",
            "-v",
            "--ids",
            str(tmp_path / "ids.txt"),
            "--base-url",
            url,
            "--api-key",
            TEST_KEY,
        ]
    )
    captured = capsys.readouterr()
    assert status == 2 and "plain http" in captured.err
    assert_no_key(captured.out, captured.err)


async def test_cli_demo_at_debug_level_never_shows_the_key(
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """demo -v, with the key in the environment and faults on, shows the key nowhere."""
    monkeypatch.setenv("EXPLORIUM_API_KEY", TEST_KEY)
    status = await run_cli(
        [
            "demo",
            "-v",
            "--no-progress",
            "--prospects",
            "200",
            "--rate-limit",
            "off",
            "--latency-ms",
            "0",
            "--error-rate",
            "0.2",
            "--duplicate-rate",
            "0.2",
            "--out",
            str(tmp_path / "demo.jsonl"),
        ]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.out + captured.err
    assert_no_key(captured.out, captured.err, *files_text(tmp_path))


@pytest.mark.parametrize("command", [[], ["fetch"], ["serve"], ["demo"]])
async def test_cli_help_never_shows_the_key(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    """--help of every command, with the key in the environment, does not print it."""
    monkeypatch.setenv("EXPLORIUM_API_KEY", TEST_KEY)
    assert await run_cli([*command, "--help"]) == 0
    captured = capsys.readouterr()
    assert "usage" in captured.out.lower()
    assert_no_key(captured.out, captured.err)


async def test_cli_serve_at_debug_level_never_shows_the_key(tmp_path: Any) -> None:
    """serve -v --api-key KEY, hit with the right, a wrong and no key, then stopped: no key."""
    import signal
    import sys

    import aiohttp

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "explorium_events",
        "serve",
        "-v",
        "--port",
        "0",
        "--api-key",
        TEST_KEY,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None and process.stdout is not None
    try:
        url = ""
        seen_lines: list[str] = []
        while not url:
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            assert line, "serve exited before it listened: " + "".join(seen_lines)
            seen_lines.append(line)
            for word in line.split():
                if word.startswith("http://127.0.0.1:"):
                    url = word
        body = {"prospect_ids": ["a" * 40], "event_types": ["prospect_changed_role"]}
        statuses = []
        async with aiohttp.ClientSession() as session:
            for headers in ({"api_key": TEST_KEY}, {"api_key": TEST_KEY + "x"}, {}):
                async with session.post(
                    f"{url}/v1/prospects/events", json=body, headers=headers
                ) as response:
                    statuses.append(response.status)
                    texts = [await response.text(), repr(dict(response.headers))]
                    assert_no_key(*texts)
            async with session.post(  # a body the validation rejects, quoting nothing secret
                f"{url}/v1/prospects/events",
                json={"prospect_ids": [TEST_KEY]},
                headers={"api_key": TEST_KEY},
            ) as response:
                statuses.append(response.status)
        assert statuses == [200, 401, 401, 422]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    text = "".join(seen_lines) + err.decode() + out.decode()
    assert "POST /v1/prospects/events" in text  # -v really logged each request
    assert process.returncode == 0, text
    assert TEST_KEY + "x" not in text
    assert_no_key(text)


# --- issue 10: an answer aiohttp cannot parse, quoting the key in its raw bytes ------------

# aiohttp's parse errors quote the offending bytes (status line, header line, chunk size),
# so a server that puts the key there would see it land in ConnectionFailed's message and
# cause: both pass through the transport's redaction, and such a cause is not chained.
RAW_ANSWERS = {
    "status line": f"HTTP/1.1 2x0 {TEST_KEY}\r\nContent-Length: 2\r\n\r\n{{}}",
    "header line": f"HTTP/1.1 200 OK\r\n{TEST_KEY}\r\nContent-Length: 2\r\n\r\n{{}}",
    "content length": f"HTTP/1.1 200 OK\r\nContent-Length: {TEST_KEY}\r\n\r\n{{}}",
    "chunk size": f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{TEST_KEY}\r\n",
}


@contextlib.asynccontextmanager
async def raw_server(answer: str) -> AsyncIterator[str]:
    """A loopback server that reads each request and answers with these exact bytes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer.encode("latin-1"))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("name", list(RAW_ANSWERS))
async def test_an_unparsable_answer_quoting_the_key_never_shows_it(
    clock: FakeClock, ids: IdMaker, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """aiohttp's parse error quotes the raw bytes; neither the error nor its chain shows the key."""
    caplog.set_level(logging.DEBUG)
    async with raw_server(RAW_ANSWERS[name]) as url:
        async with EventsClient(
            api_key=TEST_KEY,
            base_url=url,
            clock=clock,
            retry=RetryPolicy(max_attempts=2, initial=0.01, cap=0.01),
        ) as client:
            with pytest.raises(FetchError) as caught:
                await client.fetch(ids(10))
    assert "****" in str(caught.value.result.failed[0].error)
    assert_no_key(*texts_of(caught.value), caplog.text)


@pytest.mark.parametrize("name", list(RAW_ANSWERS))
async def test_cli_fetch_with_checkpoint_never_writes_a_key_quoted_in_raw_bytes(
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    ids: IdMaker,
    name: str,
) -> None:
    """fetch -v --checkpoint --failed-out: streams, log, checkpoint and failed-out lack the key."""
    caplog.set_level(logging.DEBUG)
    (tmp_path / "ids.txt").write_text("\n".join(ids(50)) + "\n")
    async with raw_server(RAW_ANSWERS[name]) as url:
        status = await run_cli(
            [
                "fetch",
                "-v",
                "--no-progress",
                "--ids",
                str(tmp_path / "ids.txt"),
                "--out",
                str(tmp_path / "events.jsonl"),
                "--failed-out",
                str(tmp_path / "failed.txt"),
                "--checkpoint",
                str(tmp_path / "pull.checkpoint"),
                "--max-attempts",
                "1",
                "--base-url",
                url,
                "--api-key",
                TEST_KEY,
            ]
        )
    captured = capsys.readouterr()
    assert status == 1, captured.err
    assert (tmp_path / "pull.checkpoint").exists()
    assert (tmp_path / "failed.txt").read_text().split() == ids(50)
    assert_no_key(captured.out, captured.err, caplog.text, *files_text(tmp_path))


# --- issue 10: a key that cannot be sent as a header ----------------------------------------

UNSENDABLE = {
    "line break": "\n",
    "carriage return": "\r",
    "NUL": "\0",
    "escape": "\x1b",
    "non-ASCII letter": "\u00e9",
    "emoji": "\U0001f511",
}


@pytest.mark.parametrize("name", list(UNSENDABLE))
@pytest.mark.parametrize("key_from", ["argument", "environment"])
def test_an_unsendable_key_is_refused_when_the_client_is_built_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, name: str, key_from: str
) -> None:
    """A key holding a control or non-ASCII character: ConfigurationError, where but not what."""
    key = TEST_KEY[:16] + UNSENDABLE[name] + TEST_KEY[16:]
    if key_from == "environment":
        if name == "NUL":
            pytest.skip("an environment variable cannot hold a NUL")
        monkeypatch.setenv("EXPLORIUM_API_KEY", key)
    with pytest.raises(ConfigurationError) as caught:
        EventsClient(api_key=key if key_from == "argument" else None)
    message = str(caught.value)
    assert f"(character 17 of {len(key)})" in message
    assert ("EXPLORIUM_API_KEY" in message) == (key_from == "environment")
    assert_no_key(*texts_of(caught.value))
    assert TEST_KEY[16:] not in message and UNSENDABLE[name] not in message


@pytest.mark.parametrize("key_from", ["flag", "environment"])
async def test_cli_fetch_with_an_unsendable_key_exits_2_without_showing_it(
    api: ApiServer,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    ids: IdMaker,
    key_from: str,
) -> None:
    """fetch with a key holding a line break: exit 2, one line saying where, nothing sent."""
    key = TEST_KEY[:16] + "\n" + TEST_KEY[16:]
    (tmp_path / "ids.txt").write_text("\n".join(ids(5)) + "\n")
    argv = [
        "fetch",
        "-v",
        "--ids",
        str(tmp_path / "ids.txt"),
        "--out",
        str(tmp_path / "events.jsonl"),
        "--failed-out",
        str(tmp_path / "failed.txt"),
        "--checkpoint",
        str(tmp_path / "pull.checkpoint"),
        "--base-url",
        api.url,
    ]
    if key_from == "flag":
        argv += ["--api-key", key]
    else:
        monkeypatch.setenv("EXPLORIUM_API_KEY", key)
    status = await run_cli(argv)
    captured = capsys.readouterr()
    assert status == 2, captured.err
    assert "holds a line break (character 17 of 26)" in captured.err
    assert ("(from EXPLORIUM_API_KEY)" in captured.err) == (key_from == "environment")
    assert "Traceback" not in captured.err
    assert api.requests == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ids.txt"]
    assert_no_key(captured.out, captured.err)
    assert TEST_KEY[16:] not in captured.err


async def test_the_webhook_secret_never_leaks_through_library_receiver_or_emulator(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, unused_tcp_port: int
) -> None:
    """Register, show, test, deliver with forged signatures, store: at debug level, the
    secret is in no repr, log, error, answer or file but the one written on purpose."""
    from explorium_events import WebhookVerificationError, verify_webhook
    from explorium_events._receiver import Receiver
    from explorium_events.emulator import DeliveryOptions, Emulator, EmulatorConfig

    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    url = f"http://127.0.0.1:{unused_tcp_port}/hook"
    async with Emulator(EmulatorConfig(rate_limit=None)) as emulator:
        async with EventsClient(api_key=TEST_KEY, base_url=emulator.url) as client:
            await client.enrollments.add(
                [hashlib.sha1(b"one").hexdigest()], key="crm-2026", event_types=None
            )
            hook = await client.webhooks.register("ExpTest", url)
            shown = await client.webhooks.get("ExpTest")
            texts += [repr(hook), str(hook), repr(shown), f"{shown.secret}", repr(client)]
            secret = hook.secret.reveal()
            receiver = Receiver(secret=secret, out=str(tmp_path / "events.db"))
            await receiver.open()
            runner = web.AppRunner(receiver.app())
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
            try:
                await client.webhooks.check_connectivity("ExpTest")
                report = await emulator.deliver(
                    DeliveryOptions(events_per_prospect=3, bad_signature_rate=1.0, backoff_ms=1)
                )
                async with aiohttp.ClientSession() as http:
                    for path in ("/health", "/hook"):
                        async with http.request(
                            "GET" if path == "/health" else "POST", url.replace("/hook", path)
                        ) as response:
                            texts.append(await response.text())
            finally:
                await runner.cleanup()
                await receiver.close()
            texts.append(repr(receiver))
        with pytest.raises(WebhookVerificationError) as caught:
            verify_webhook(b"{}", {"X-Timestamp": "1", "X-Signature": "x"}, secret)
        texts.extend(texts_of(caught.value))
        texts.append(repr(emulator.push))
    assert report.delivered == 3 and emulator.push.bad_signatures_sent == 3
    texts.append(caplog.text)
    texts.extend(files_text(tmp_path))
    for text in texts:
        assert secret not in text and secret[:12] not in text
