"""The exception tree. Every exception the library raises on purpose is one of these.

    ExploriumError
    ├── ConfigurationError        bad settings, before any I/O (also a ValueError)
    │   └── CheckpointMismatchError   a bulk pull's checkpoint belongs to another pull
    ├── InvalidIdError            invalid IDs in the input, before any I/O or, for an
    │   │                         iterator, once the IDs before it are done (also a ValueError)
    │   ├── InvalidProspectIdError    prospect IDs: 40 hexadecimal characters
    │   └── InvalidBusinessIdError    business IDs: 32 hexadecimal characters
    ├── ClientClosedError         the client is closed and refuses work (also a RuntimeError)
    ├── ApiError                  the server answered with an error status
    │   ├── BadRequestError       400, 404 and other 4xx without a class of their own
    │   ├── AuthenticationError   401: missing or rejected API key
    │   │   └── PermissionDeniedError   403: not allowed, e.g. out of credits
    │   ├── UnprocessableEntityError    422: the request failed the server's validation
    │   ├── RateLimitError        429: over the rate limit; carries retry_after
    │   └── ServerError           5xx
    ├── TransportError            no usable answer came back
    │   ├── ConnectionFailed      no connection, or it dropped (also a ConnectionError)
    │   ├── RequestTimeout        no answer within the timeout (also a TimeoutError)
    │   └── MalformedResponse     a 200 whose body was truncated or not the documented shape
    ├── ServerUnavailableError    nothing usable came back for give_up_after seconds: the pull
    │                             stopped; every ID not yet done counts as failed
    ├── FetchError                fetch() had failed batches; .result holds all that arrived
    ├── WebhookVerificationError  a webhook delivery failed verify_webhook (also a ValueError)
    │   ├── WebhookHeaderError    X-Signature or X-Timestamp missing or malformed: answer 401
    │   ├── WebhookTimestampError X-Timestamp outside the freshness window, stale or future: 401
    │   ├── WebhookSignatureError the signature does not match (tampered body, wrong secret): 401
    │   └── WebhookPayloadError   signed correctly, but not a JSON delivery with an event_id: 400
    └── OutputWriteError          writing the output failed: disk full, file too large, I/O
                                  error (also an OSError; the cause is chained)

ApiError and TransportError carry the prospect IDs of the batch, the status (if any), the
server's message and the correlation id: support asks for the correlation id.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Any

from ._results import FetchResult

_IDS_SHOWN = 3
_BUSINESS_ID_LENGTH = 32


def _is_business(ids: Sequence[str]) -> bool:
    # IDs reach an error only once validated: 32 characters are a business's, 40 a prospect's.
    return bool(ids) and len(ids[0]) == _BUSINESS_ID_LENGTH


def _describe_ids(prospect_ids: Sequence[str]) -> str:
    shown = ", ".join(prospect_ids[:_IDS_SHOWN])
    more = len(prospect_ids) - _IDS_SHOWN
    suffix = f" and {more} more" if more > 0 else ""
    kind = "business" if _is_business(prospect_ids) else "prospect"
    return f"{len(prospect_ids)} {kind} IDs ({shown}{suffix})"


def _preview(value: str) -> str:
    # A whole file pasted as one value must not make a message megabytes long.
    if len(value) <= 60:
        return repr(value)
    return f"{value[:40]!r}...{value[-20:]!r} ({len(value):,} characters)"


class ExploriumError(Exception):
    """Base class of every error raised by explorium_events."""


class ConfigurationError(ExploriumError, ValueError):
    """A setting or argument is wrong; raised before any request is made."""


class CheckpointMismatchError(ConfigurationError):
    """The checkpoint belongs to a different pull; ``differences`` names what differs."""

    def __init__(self, path: str, differences: Sequence[str]) -> None:
        self.path = path
        self.differences = tuple(differences)
        super().__init__(
            f"the checkpoint {path} belongs to a different pull ({'; '.join(differences)}). "
            "Rerun the original pull to resume it, or pass a new checkpoint path to start "
            "this one."
        )


class InvalidIdError(ExploriumError, ValueError):
    """The input holds IDs that break the rule of their kind (``kind``: prospect, business).

    ``invalid`` lists the offending values (as given), ``count`` how many there are in all.
    When ``fetch()`` meets one in a one-shot iterator (checked as it is consumed, not up
    front), ``result`` holds what the IDs before it fetched; otherwise it is None.
    """

    kind = "prospect"

    def __init__(self, invalid: Sequence[str], *, count: int, rule: str) -> None:
        self.invalid = tuple(invalid)
        self.count = count
        self.rule = rule
        self.result: FetchResult[Any] | None = None
        shown = ", ".join(_preview(value) for value in self.invalid)
        more = count - len(self.invalid)
        suffix = f" and {more} more" if more > 0 else ""
        kind = self.kind
        super().__init__(
            f"{count} invalid {kind} ID{'s' if count != 1 else ''}: {shown}{suffix}. "
            f"A {kind} ID is {rule}. Fix them, or pass skip_invalid=True to skip "
            "them (they are then listed in result.invalid)."
        )


class InvalidProspectIdError(InvalidIdError):
    """The input holds prospect IDs that are not 40 hexadecimal characters (see InvalidIdError)."""


class InvalidBusinessIdError(InvalidIdError):
    """The input holds business IDs that are not 32 hexadecimal characters (see InvalidIdError)."""

    kind = "business"


class ClientClosedError(ExploriumError, RuntimeError):
    """The client was closed; it refuses new work. Create a new one."""


class ApiError(ExploriumError):
    """The API answered with an error status.

    Carries ``status``, ``message`` (the server's own words), ``correlation_id``,
    ``retry_after`` (seconds, when the server said) and the batch's ``prospect_ids``.
    """

    hint = ""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        correlation_id: str | None = None,
        retry_after: float | None = None,
        prospect_ids: Sequence[str] = (),
    ) -> None:
        self.message = message
        self.status = status
        self.correlation_id = correlation_id
        self.retry_after = retry_after
        self.prospect_ids = tuple(prospect_ids)
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [f"HTTP {self.status}: {self.message or 'no message'}"]
        if self.correlation_id:
            parts.append(f"correlation_id={self.correlation_id}")
        if self.retry_after is not None:
            parts.append(f"retry_after={self.retry_after:g}s")
        if self.prospect_ids:
            parts.append(f"batch of {_describe_ids(self.prospect_ids)}")
        text = "; ".join(parts)
        return f"{text}. {self.hint}" if self.hint else text


class BadRequestError(ApiError):
    """400, 404 or another 4xx without a class of its own: the request is wrong; not retried."""


class AuthenticationError(ApiError):
    """401: the API key is missing or was rejected. Not retried."""

    hint = "Check the API key (api_key= or EXPLORIUM_API_KEY)."


class PermissionDeniedError(AuthenticationError):
    """403: the key may not do this, for example because the account is out of credits."""

    hint = "The key was refused this request: check the account's credits and permissions."


class UnprocessableEntityError(ApiError):
    """422: the server's validation rejected the request; nothing was fetched. Not retried."""


class RateLimitError(ApiError):
    """429: over the rate limit. Retried after ``retry_after`` unless that exceeds the cap."""


class ServerError(ApiError):
    """5xx: trouble on the server's side. Retried with backoff."""


class TransportError(ExploriumError):
    """No usable answer came back from the server; the cause is chained."""

    def __init__(
        self,
        message: str,
        *,
        prospect_ids: Sequence[str] = (),
        status: int | None = None,
        correlation_id: str | None = None,
    ) -> None:
        self.message = message
        self.prospect_ids = tuple(prospect_ids)
        self.status = status
        self.correlation_id = correlation_id
        self.retry_after: float | None = None
        text = message
        if correlation_id:
            text += f"; correlation_id={correlation_id}"
        if self.prospect_ids:
            text += f"; batch of {_describe_ids(self.prospect_ids)}"
        super().__init__(text)


class ConnectionFailed(TransportError, ConnectionError):
    """The connection could not be made, or dropped before the answer was complete."""


class RequestTimeout(TransportError, TimeoutError):
    """No answer arrived within the request timeout."""


class MalformedResponse(TransportError):
    """A 200 answer whose body was truncated or not the documented JSON shape."""


class ServerUnavailableError(ExploriumError):
    """The server answered nothing usable for ``give_up_after`` seconds, so the pull stopped.

    "Usable" is an answer that settles a batch: a decoded 200, or a definite client error
    such as a 422. Timeouts, dropped connections, unreadable bodies, 5xx and 429 are not.
    Not a TransportError: it is not retried, it ends the pull. Carries ``silent_for`` and
    ``give_up_after`` (seconds), and the ``status`` and ``correlation_id`` of the last
    failure (None when nothing came back at all), which is ``last_error``.
    """

    def __init__(
        self,
        *,
        silent_for: float,
        give_up_after: float,
        last_error: ExploriumError | None,
    ) -> None:
        self.silent_for = silent_for
        self.give_up_after = give_up_after
        self.last_error = last_error
        status = getattr(last_error, "status", None)
        self.status: int | None = status if isinstance(status, int) else None
        self.correlation_id: str | None = getattr(last_error, "correlation_id", None)
        self.retry_after: float | None = None
        self.prospect_ids: tuple[str, ...] = ()
        if last_error is None:
            last = "no answer at all"
        else:
            last = f"HTTP {self.status}" if self.status is not None else "no status"
            if self.correlation_id:
                last += f", correlation_id {self.correlation_id}"
            last += f": {getattr(last_error, 'message', str(last_error))}"
        self.message = (
            f"the server answered nothing usable for {silent_for:.0f}s "
            f"(give_up_after={give_up_after:g}s; last: {last}); the pull stopped and "
            "every prospect ID not yet fetched counts as failed: retry them once the "
            "server answers again"
        )
        super().__init__(self.message)


class FetchError(ExploriumError):
    """Some batches failed for good. ``result`` still holds every event that did arrive."""

    def __init__(self, result: FetchResult[Any]) -> None:
        self.result = result
        failed_ids = sum(len(failure.prospect_ids) for failure in result.failed)
        business = any(_is_business(failure.prospect_ids) for failure in result.failed)
        kind = "business" if business else "prospect"
        first = result.failed[0].error if result.failed else None
        super().__init__(
            f"{len(result.failed)} of {result.stats.batches} batches failed "
            f"({failed_ids} {kind} IDs); {len(result.events)} events arrived and are in "
            f".result. First failure: {first}"
        )


class WebhookVerificationError(ExploriumError, ValueError):
    """A webhook delivery failed verification: do not trust it, answer 401 (or 400).

    ``status`` is the status a receiver should answer with. The message names what was
    wrong, never the secret nor the signature expected.
    """

    status = 401


class WebhookHeaderError(WebhookVerificationError):
    """``X-Signature`` or ``X-Timestamp`` is missing, or ``X-Timestamp`` is not an integer."""


class WebhookTimestampError(WebhookVerificationError):
    """``X-Timestamp`` is further than the tolerance from now: a replay, or a clock off.

    ``skew`` is the timestamp minus now, in seconds: negative when stale, positive when
    from the future.
    """

    def __init__(self, message: str, *, skew: int, tolerance: float) -> None:
        self.skew = skew
        self.tolerance = tolerance
        super().__init__(message)


class WebhookSignatureError(WebhookVerificationError):
    """The signature does not match the body and timestamp: tampered, or another secret."""


class WebhookPayloadError(WebhookVerificationError):
    """The delivery is signed correctly but is not a JSON delivery with an ``event_id``."""

    status = 400


class OutputWriteError(ExploriumError, OSError):
    """Writing events to the output failed (disk full, file too large, an I/O error).

    ``path`` names the output; ``errno`` and ``strerror`` are the operating system's (or
    ENOSPC for an SQLite "database or disk is full"). The cause is chained. Nothing
    after the output's last durable point is claimed written: a checkpointed pull
    resumes from there once the cause is fixed.
    """

    def __init__(self, path: str, error: BaseException) -> None:
        code = getattr(error, "errno", None)
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        if code is None and getattr(error, "sqlite_errorname", None) == "SQLITE_FULL":
            code = errno.ENOSPC
        super().__init__(code, reason)
        self.path = path
        self.filename = path

    def __str__(self) -> str:
        name = errno.errorcode.get(self.errno, "") if self.errno is not None else ""
        return f"cannot write {self.path}: {self.strerror}" + (f" ({name})" if name else "")
