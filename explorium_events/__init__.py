"""Fetch Explorium prospect events for any number of prospects, at the rate limit.

from explorium_events import EventsClient

async with EventsClient(api_key="...") as client:
    result = await client.fetch(prospect_ids)
"""

from ._bulk import PullSummary, pull
from ._checkpoint import Checkpoint, FailedBatchRecord
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
from ._ids import (
    PROSPECT_ID_RULE,
    invalid_reason,
    normalize_prospect_id,
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
from ._results import BatchFailure, BatchResult, FetchResult, FetchStats, InvalidProspectId
from ._retry import RetryPolicy
from ._sinks import EventSink, SqliteSink
from ._stream import BatchStream
from ._sync_client import SyncEventsClient
from ._version import __version__

__all__ = [
    "PROSPECT_ID_RULE",
    "AnniversaryData",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "BatchFailure",
    "BatchResult",
    "BatchStream",
    "Checkpoint",
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
    "FailedBatchRecord",
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
    "SyncEventsClient",
    "SystemClock",
    "TransportError",
    "UnprocessableEntityError",
    "__version__",
    "invalid_reason",
    "normalize_prospect_id",
    "pull",
]
