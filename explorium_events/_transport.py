"""The one HTTP exchange with the API. The only module that touches aiohttp.ClientSession.

Foreign exceptions are translated here, once, with their cause chained; error statuses
become ApiError subclasses built from whichever body shape the server chose. An events
POST (prospects', businesses': ``events_call``) is one ``Call``; enrollments and
webhooks are others (any method, path and body).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from ._clock import Clock
from ._entity import PROSPECT, Entity
from ._errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConnectionFailed,
    MalformedResponse,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    TransportError,
    UnprocessableEntityError,
)
from ._models import EventsResponse, ResponseContext
from ._ratelimit import RateLimitHeaders
from ._results import E
from ._retry import parse_retry_after
from ._settings import proxy_from_environment
from ._version import __version__

logger = logging.getLogger("explorium_events")

EVENTS_PATH = PROSPECT.path
_decode_error_body = msgspec.json.Decoder(Any)

USER_AGENT = f"explorium-events/{__version__}"

_T = TypeVar("_T")


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` names this machine (localhost or a loopback address)."""
    if not host:
        return False
    if host.lower() in {"localhost", "localhost."} or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str) -> URL:
    """The parsed base URL; plain http is refused for anything but a loopback host."""
    url = URL(base_url)
    if url.scheme not in {"http", "https"} or not url.host:
        raise ConfigurationError(f"base_url {base_url!r} is not an http(s) URL")
    if url.scheme == "http" and not is_loopback_host(url.host):
        raise ConfigurationError(
            f"base_url {base_url!r} is plain http to a host that is not this machine: the "
            "API key would travel in clear text. Use https (http is allowed for loopback only)."
        )
    return url


@dataclass(frozen=True, slots=True)
class Answer(Generic[_T]):
    """What came back: the decoded 200 answer or the error for its status, and the headers."""

    outcome: _T | ApiError
    headers: RateLimitHeaders


@dataclass(frozen=True, slots=True)
class Call(Generic[_T]):
    """One request to send: method, path, JSON body, and how to decode its 200 answer.

    ``ids`` are the IDs it is about (named in its errors, and its rate-limit cost when a
    unit is an ID). ``sensitive``: the 200 body holds a secret (a webhook's), so an
    error about it never quotes the body.
    """

    method: str
    path: str
    body: bytes | None
    decode: Callable[[bytes], _T]
    ids: tuple[str, ...] = ()
    sensitive: bool = False

    def describe(self) -> str:
        """``POST /v1/...`` for logs."""
        return f"{self.method} {self.path}"


def events_call(entity: Entity[E], body: bytes, ids: Sequence[str]) -> Call[EventsResponse[E]]:
    """The events POST of ``ids`` to ``entity``'s endpoint, decoded as its events."""
    return Call("POST", entity.path, body, entity.decode_response, ids=tuple(ids))


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    # "inf" or "nan" from a hostile or broken server reads as absent, not as a crash.
    return int(number) if math.isfinite(number) else None


def rate_limit_headers(headers: Mapping[str, str], *, now: float) -> RateLimitHeaders:
    """Read ``X-RateLimit-*`` and ``Retry-After``; absent or unreadable ones become None."""
    reset_text = headers.get("X-RateLimit-Reset")
    try:
        reset = float(reset_text) if reset_text is not None else None
    except ValueError:
        reset = None
    if reset is not None and not math.isfinite(reset):
        reset = None
    return RateLimitHeaders(
        limit=_int_header(headers, "X-RateLimit-Limit"),
        remaining=_int_header(headers, "X-RateLimit-Remaining"),
        reset=reset,
        retry_after=parse_retry_after(headers.get("Retry-After"), now=now),
    )


def _no_redaction(text: str) -> str:
    return text


def _message_and_correlation(
    body: bytes, redact: Callable[[str], str] = _no_redaction
) -> tuple[str, str | None, float | None]:
    """The server's message, correlation id and retry_after from any documented error shape.

    Every string taken from the body goes through ``redact`` whole, before it is cut to
    length: a cut made first could leave a prefix of a secret behind.
    """

    def clip(text: str) -> str:
        return redact(text)[:300]

    try:
        parsed = _decode_error_body.decode(body)
    except msgspec.DecodeError:
        text = body.decode("utf-8", "replace").strip()
        # An HTML error page says little that fits on a line; say what it was instead.
        if text.lstrip().startswith("<"):
            return "the server answered with an HTML page, not JSON", None, None
        return clip(text), None, None
    if not isinstance(parsed, dict):
        return clip(str(parsed)), None, None
    correlation = parsed.get("correlation_id")
    if correlation is None and isinstance(parsed.get("response_context"), dict):
        correlation = parsed["response_context"].get("correlation_id")
    retry_after = parsed.get("retry_after")
    detail = parsed.get("detail")
    if isinstance(detail, list):
        problems = []
        for item in detail[:5]:
            if isinstance(item, dict):
                # Read defensively: "loc" may be null, a string or a number on a bad day.
                loc = item.get("loc")
                parts = loc if isinstance(loc, list) else [] if loc is None else [loc]
                location = ".".join(str(part) for part in parts)
                problems.append(f"{location}: {item.get('msg', '')}".strip(": "))
        message = clip("; ".join(problems) or str(detail))
    else:
        pieces = [parsed.get(key) for key in ("error", "message", "details", "detail")]
        message = clip(": ".join(str(piece) for piece in pieces if piece) or str(parsed))
    return (
        message,
        clip(str(correlation)) if correlation else None,
        float(retry_after) if isinstance(retry_after, int | float) else None,
    )


def error_for_status(
    status: int,
    body: bytes,
    headers: RateLimitHeaders,
    prospect_ids: Sequence[str],
    *,
    reason: str = "",
    redact: Callable[[str], str] = _no_redaction,
) -> ApiError:
    """The ApiError for an error status, with the server's message and correlation id.

    ``reason`` (the status line's phrase) stands in when the body says nothing; every
    text the server sent passes through ``redact``.
    """
    message, correlation_id, body_retry_after = _message_and_correlation(body, redact)
    if not message and reason:
        message = redact(reason)[:100]
    retry_after = headers.retry_after if headers.retry_after is not None else body_retry_after
    kind: type[ApiError]
    if status == 401:
        kind = AuthenticationError
    elif status == 403:
        kind = PermissionDeniedError
    elif status == 422:
        kind = UnprocessableEntityError
    elif status == 429:
        kind = RateLimitError
    elif status >= 500:
        kind = ServerError
    else:
        kind = BadRequestError
    return kind(
        message,
        status=status,
        correlation_id=correlation_id,
        retry_after=retry_after,
        prospect_ids=prospect_ids,
    )


class Transport:
    """Sends requests to the API over one aiohttp session: the events POST and any ``Call``."""

    def __init__(
        self,
        *,
        base_url: URL,
        api_key: str,
        session: aiohttp.ClientSession | None,
        max_connections: int,
        request_timeout: float,
        clock: Clock,
        trust_env: bool = True,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        self._base_url = base_url
        self._url = base_url.join(URL(EVENTS_PATH))
        self._trust_env = trust_env
        self._trace_configs = list(trace_configs)
        self._proxy: URL | None = None
        self._proxy_headers: dict[str, str] | None = None
        self._api_key = api_key
        # Longest first, so that a longer spelling is replaced before a shorter one inside it.
        self._secret_forms = sorted(
            {api_key, quote(api_key, safe=""), json.dumps(api_key)[1:-1], repr(api_key)[1:-1]}
            - {""},
            key=len,
            reverse=True,
        )
        self._own_session = session is None
        self._session = session
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout, sock_connect=min(request_timeout, 10.0)
        )
        self._clock = clock

    @property
    def url(self) -> URL:
        """Where prospect requests go."""
        return self._url

    def url_for(self, entity: Entity[Any]) -> URL:
        """Where requests for ``entity``'s events go."""
        return self._url if entity is PROSPECT else self._base_url.join(URL(entity.path))

    def _session_for_use(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Created lazily, inside the running loop, and sized to the concurrency
            # limit: never limit=0 (unlimited).
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                trace_configs=self._trace_configs or None,
            )
            if self._trust_env:
                self._proxy, self._proxy_headers = self._environment_proxy()
        return self._session

    def _environment_proxy(self) -> tuple[URL | None, dict[str, str] | None]:
        """The proxy the environment names for the base URL, read once per session.

        Read here rather than by aiohttp's ``trust_env``, which reads ``~/.netrc`` in a
        worker thread on every request. Over https a proxy only tunnels the encrypted
        bytes. Plain http is allowed for loopback only, so that the key never crosses a
        network in clear text: an ``HTTP_PROXY`` elsewhere would carry it there, so it
        is ignored (with a warning).
        """
        found = proxy_from_environment(self._url.scheme, self._url.host or "")
        if found is None:
            return None, None
        proxy = URL(found if "://" in found else f"http://{found}")
        if self._url.scheme == "http" and not is_loopback_host(proxy.host):
            logger.warning(
                "ignoring the environment's http proxy (%s) for %s: plain http would carry "
                "the API key to it in clear text; add the host to NO_PROXY to silence this",
                proxy.host,
                self._url.host,
            )
            return None, None
        if not proxy.user:
            return proxy, None
        credentials = f"{proxy.user}:{proxy.password or ''}".encode()
        auth = "Basic " + base64.b64encode(credentials).decode("ascii")
        return proxy.with_user(None), {"Proxy-Authorization": auth}

    async def post(
        self,
        body: bytes,
        prospect_ids: Sequence[str],
        entity: Entity[E] = PROSPECT,  # type: ignore[assignment]
    ) -> Answer[EventsResponse[E]]:
        """Send one events request to ``entity``'s endpoint (prospects' by default): ``send``."""
        return await self.send(events_call(entity, body, prospect_ids))

    async def send(self, call: Call[_T]) -> Answer[_T]:
        """Send one request.

        An error status comes back as the outcome, not raised, so that the caller still
        reads the rate-limit headers that came with it. Raises
        ConnectionFailed, RequestTimeout or MalformedResponse when no usable answer came.

        Every text the server chose (body, reason phrase, Location, any header, and
        aiohttp's parse errors, which quote the raw bytes) goes through ``_redact`` here,
        the one boundary, before it can reach an exception, a log line or a checkpoint.
        """
        session = self._session_for_use()
        prospect_ids = call.ids
        url = self._url if call.path == EVENTS_PATH else self._base_url.join(URL(call.path))
        headers = {"api_key": self._api_key}
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        if self._proxy_headers and self._url.scheme == "http":
            # aiohttp sends proxy_headers on an https tunnel's CONNECT only; a plain-http
            # request goes to the proxy itself, so they ride on the request.
            headers.update(self._proxy_headers)
        failure: TransportError | None = None
        cause: BaseException | None = None
        payload = b""
        try:
            # Never follow a redirect: aiohttp drops only Authorization and Cookie on a
            # cross-origin hop, so the api_key header would go wherever Location says.
            async with session.request(
                call.method,
                url,
                data=call.body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
            ) as response:
                status = response.status
                reason = response.reason or ""
                limits = rate_limit_headers(response.headers, now=self._clock.time())
                redirect = 300 <= status < 400
                location = response.headers.get("Location", "") if redirect else ""
                try:
                    payload = await response.read()
                except aiohttp.ClientPayloadError as exc:
                    failure, cause = (
                        MalformedResponse(
                            f"the answer (HTTP {status}) was cut short: {self._redact(str(exc))}",
                            prospect_ids=prospect_ids,
                            status=status,
                        ),
                        exc,
                    )
        except TimeoutError as exc:
            failure, cause = (
                RequestTimeout(
                    f"no answer from {self._url.host} within {self._timeout.total:g}s",
                    prospect_ids=prospect_ids,
                ),
                exc,
            )
        except aiohttp.ClientConnectionError as exc:
            failure, cause = (
                ConnectionFailed(
                    f"connection to {self._url.host}:{self._url.port} failed: "
                    f"{type(exc).__name__}: {self._redact(str(exc))}",
                    prospect_ids=prospect_ids,
                ),
                exc,
            )
        except aiohttp.ClientError as exc:
            failure, cause = (
                ConnectionFailed(
                    f"request to {self._url.host} failed: "
                    f"{type(exc).__name__}: {self._redact(str(exc))}",
                    prospect_ids=prospect_ids,
                ),
                exc,
            )
        if failure is not None:
            # Raised outside the handlers, so that a cause quoting the key (aiohttp's
            # parse errors carry the raw header bytes) is not chained in as the context.
            raise failure from self._safe_cause(cause)
        if 300 <= status < 400:
            location = self._redact(location)[:200]  # only here: a 200 needs no redaction
            return Answer(
                BadRequestError(
                    f"the server redirected to {location!r}; not followed, so that the API "
                    "key goes nowhere else: set base_url to the API's own address",
                    status=status,
                    prospect_ids=prospect_ids,
                ),
                limits,
            )
        if status != 200:
            return Answer(
                error_for_status(
                    status, payload, limits, prospect_ids, reason=reason, redact=self._redact
                ),
                limits,
            )
        try:
            decoded = call.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            # A webhook's answer holds its secret: never quote that body.
            began = (
                ""
                if call.sensitive
                else f"; it began {self._redact(payload.decode('utf-8', 'replace'))[:80]!r}"
            )
            failure, cause = (
                MalformedResponse(
                    f"a 200 answer to {call.describe()} whose body is not the documented JSON "
                    f"({self._redact(str(exc))}){began}",
                    prospect_ids=prospect_ids,
                    status=status,
                ),
                exc,
            )
        if failure is not None:
            raise failure from None if call.sensitive else self._safe_cause(cause)
        context = getattr(decoded, "response_context", None)
        if not isinstance(decoded, msgspec.Struct) or not isinstance(context, ResponseContext):
            return Answer(decoded, limits)
        if context.correlation_id:
            correlation_id = self._redact(context.correlation_id)
            if correlation_id != context.correlation_id:
                decoded = msgspec.structs.replace(
                    decoded,
                    response_context=msgspec.structs.replace(
                        context, correlation_id=correlation_id
                    ),
                )
        return Answer(decoded, limits)

    def _redact(self, text: str) -> str:
        # Some servers quote a rejected key back (in a body, a header, a reason phrase or
        # a Location); that text ends up in exceptions, logs and checkpoints, where the
        # key must never appear, in any of the spellings it can take there.
        for form in self._secret_forms:
            text = text.replace(form, "****")
        return text

    def _safe_cause(self, cause: BaseException | None) -> BaseException | None:
        """``cause`` to chain, or None when it or its own causes quote the key."""
        link = cause
        seen: set[int] = set()
        while link is not None and id(link) not in seen:
            seen.add(id(link))
            shown = f"{link}\n{link!r}"
            if self._redact(shown) != shown:
                return None
            link = link.__cause__ or link.__context__
        return cause

    async def aclose(self) -> None:
        """Close the session if this transport made it. Idempotent."""
        session, self._session = self._session, None
        if session is not None and self._own_session and not session.closed:
            await session.close()
            # Let the connector's transports finish closing, so no ResourceWarning follows.
            await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"<Transport url={str(self._url)!r}>"
