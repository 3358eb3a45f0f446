"""verify_webhook: check one webhook delivery's signature and freshness, then decode it. Pure.

The documented scheme (FACTS-siblings 3, the Python example of ``webhooks.mdx``):

1. ``X-Signature`` and ``X-Timestamp`` must both be present;
2. ``X-Timestamp`` is an integer of Unix seconds;
3. it is at most ``tolerance`` (300) seconds from now, either way;
4. key = ``base64.urlsafe_b64decode(secret)`` (missing ``=`` padding tolerated);
5. message = the X-Timestamp text as received + ``b"."`` + the raw body bytes;
6. signature = ``base64.urlsafe_b64encode(HMAC-SHA256(key, message))``, as text;
7. compared with ``hmac.compare_digest``.

The body is checked as bytes, before any JSON parsing. Any web framework can call this
with the raw body and the request's headers; it imports no web framework and does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

import msgspec

from ._errors import (
    ConfigurationError,
    WebhookHeaderError,
    WebhookPayloadError,
    WebhookSignatureError,
    WebhookTimestampError,
)
from ._push_models import AnyWebhookEvent, WebhookSecret, decode_delivery

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
DEFAULT_TOLERANCE = 300.0
_MAX_TIMESTAMP_CHARS = 20  # Unix seconds fit in 11 digits for the next 30,000 years


def signing_key(secret: str | WebhookSecret) -> bytes:
    """The HMAC key of a webhook secret: its URL-safe base64 decoded (padding optional).

    Raises ConfigurationError, without showing the secret, when it is not URL-safe base64.
    """
    text = secret.reveal() if isinstance(secret, WebhookSecret) else secret
    if not isinstance(text, str):
        raise ConfigurationError(f"the webhook secret must be a str, not {type(text).__name__}")
    text = text.strip()
    if not text:
        raise ConfigurationError("the webhook secret is empty")
    padded = text + "=" * (-len(text) % 4)
    try:
        # validate=True: a stray character is an error, not silently dropped from the key.
        return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ConfigurationError(
            f"the webhook secret ({len(text)} characters) is not URL-safe base64 (A-Z, a-z, "
            "0-9, - and _): use the webhook_secret exactly as the API returned it"
        ) from None


def sign_webhook(body: bytes, timestamp: str | int, secret: str | WebhookSecret) -> str:
    """The ``X-Signature`` value of ``body`` sent at ``timestamp``, as the API computes it."""
    message = str(timestamp).encode("utf-8") + b"." + body
    digest = hmac.new(signing_key(secret), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        # A plain dict from the caller may spell the name in any case; frameworks'
        # header maps are case-insensitive already.
        lowered = name.lower()
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == lowered:
                value = candidate
                break
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if isinstance(value, str) else None


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | WebhookSecret,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> AnyWebhookEvent:
    """Verify one delivery and return its event; raise a WebhookVerificationError if not genuine.

    The event is a WebhookEvent (an ``Event``, ``prospect_id`` set) or, for a delivery
    whose ``entity_type`` is "business", a WebhookBusinessEvent (a ``BusinessEvent``,
    ``business_id`` set). ``body`` is the raw request body, exactly as received (not
    re-serialised JSON); ``headers`` any mapping of the request's headers; ``secret`` the
    webhook_secret the API returned when the webhook was registered. ``tolerance``: how many seconds
    ``X-Timestamp`` may be from ``now`` (default: the time now), in either direction.

    Raises WebhookHeaderError (a header missing or malformed), WebhookTimestampError
    (outside the window), WebhookSignatureError (not signed with this secret: a tampered
    body or timestamp) and WebhookPayloadError (signed, but not a delivery). Answer 401
    for the first three and 400 for the last: each error's ``status`` says which.
    ConfigurationError: the secret itself is unusable.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ConfigurationError(
            f"body must be the raw request bytes, not {type(body).__name__}: a re-encoded "
            "body no longer matches its signature"
        )
    if not (tolerance >= 0 and tolerance != float("inf")):
        raise ConfigurationError(f"tolerance={tolerance!r}: must be a finite number >= 0")
    body = bytes(body)
    key = signing_key(secret)
    signature = _header(headers, SIGNATURE_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    missing = [
        name
        for name, value in ((SIGNATURE_HEADER, signature), (TIMESTAMP_HEADER, stamp))
        if not value
    ]
    if missing:
        raise WebhookHeaderError(f"the delivery has no {' and no '.join(missing)} header")
    assert signature is not None and stamp is not None
    text = stamp.strip()
    if len(text) > _MAX_TIMESTAMP_CHARS or not text.isascii() or not text.isdigit():
        shown = repr(stamp) if len(stamp) <= _MAX_TIMESTAMP_CHARS else f"{len(stamp)} characters"
        raise WebhookHeaderError(
            f"{TIMESTAMP_HEADER} {shown} is not an integer number of Unix seconds"
        )
    signed_at = int(text)
    current = time.time() if now is None else now
    skew = signed_at - int(current)
    if abs(signed_at - current) > tolerance:
        direction = "old" if skew < 0 else "in the future"
        raise WebhookTimestampError(
            f"{TIMESTAMP_HEADER} is {abs(skew)}s {direction}, beyond the {tolerance:g}s window: "
            "a replayed delivery, or a clock that is off (check NTP)",
            skew=skew,
            tolerance=tolerance,
        )
    message = stamp.encode("utf-8") + b"." + body
    expected = base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest())
    given = signature.strip().encode("utf-8", "replace")
    # The other reading of "URL-safe base64": without its "=" padding. Both compared in
    # constant time, each against the whole value.
    matches = hmac.compare_digest(given, expected) | hmac.compare_digest(
        given, expected.rstrip(b"=")
    )
    if not matches:
        raise WebhookSignatureError(
            f"{SIGNATURE_HEADER} does not match the body and timestamp: the delivery was "
            "altered, or signed with another secret (a webhook registered again gets a new one)"
        )
    try:
        return decode_delivery(body, signed_at=signed_at)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WebhookPayloadError(
            f"the delivery is signed but is not a JSON event with an event_id: {exc}"
        ) from None
