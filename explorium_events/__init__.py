"""Fetch Explorium prospect events for any number of prospects, at the rate limit.

from explorium_events import EventsClient

async with EventsClient(api_key="...") as client:
    result = await client.fetch(prospect_ids)
"""

from ._bulk import pull
from ._client import EventsClient
from ._clock import Clock, SystemClock
from ._errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    CheckpointMismatchError,
    ClientClosedError,
    ConfigurationError,
    ConnectionFailed,
    ExploriumError,
    FetchError,
    InvalidProspectIdError,
    MalformedResponse,
    OutputWriteError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    ServerUnavailableError,
    TransportError,
    UnprocessableEntityError,
)
from ._models import (
    AnniversaryData,
    CompanyChangeData,
    Event,
    EventData,
    EventType,
    RoleChangeData,
)
from ._ratelimit import RateLimitCost, RateLimitState
from ._results import (
    BatchFailure,
    BatchResult,
    FetchResult,
    FetchStats,
    InvalidProspectId,
    PullSummary,
)
from ._retry import RetryPolicy
from ._sinks import EventSink, SqliteSink
from ._stream import BatchStream
from ._version import __version__

__all__ = [
    "AnniversaryData",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "BatchFailure",
    "BatchResult",
    "BatchStream",
    "CheckpointMismatchError",
    "ClientClosedError",
    "Clock",
    "CompanyChangeData",
    "ConfigurationError",
    "ConnectionFailed",
    "Event",
    "EventData",
    "EventSink",
    "EventType",
    "EventsClient",
    "ExploriumError",
    "FetchError",
    "FetchResult",
    "FetchStats",
    "InvalidProspectId",
    "InvalidProspectIdError",
    "MalformedResponse",
    "OutputWriteError",
    "PermissionDeniedError",
    "PullSummary",
    "RateLimitCost",
    "RateLimitError",
    "RateLimitState",
    "RequestTimeout",
    "RetryPolicy",
    "RoleChangeData",
    "ServerError",
    "ServerUnavailableError",
    "SqliteSink",
    "SystemClock",
    "TransportError",
    "UnprocessableEntityError",
    "__version__",
    "pull",
]
