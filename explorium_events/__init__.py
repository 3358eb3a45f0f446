"""Fetch Explorium prospect events for any number of prospects, at the rate limit.

from explorium_events import EventsClient

async with EventsClient(api_key="...") as client:
    result = await client.fetch(prospect_ids)
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._bulk import PullSummary, pull
from ._checkpoint import Checkpoint, CheckpointMismatchError, FailedBatchRecord
from ._client import (
    DEFAULT_BASE_URL,
    BatchFailure,
    BatchResult,
    BatchStream,
    EventsClient,
    FetchResult,
    FetchStats,
)
from ._clock import Clock, SystemClock
from ._errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
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
    MAX_BATCH_SIZE,
    PROSPECT_ID_RULE,
    InvalidProspectId,
    invalid_reason,
    normalize_prospect_id,
)
from ._models import (
    AnniversaryData,
    CompanyChangeData,
    Event,
    EventData,
    EventType,
    ResponseContext,
    RoleChangeData,
)
from ._ratelimit import RateLimitCost, RateLimitState
from ._retry import RetryPolicy
from ._sinks import EventSink, SqliteSink

try:
    __version__ = _version("explorium-events")
except _PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0"

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_BATCH_SIZE",
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
    "ResponseContext",
    "RetryPolicy",
    "RoleChangeData",
    "ServerError",
    "ServerUnavailableError",
    "SqliteSink",
    "SystemClock",
    "TransportError",
    "UnprocessableEntityError",
    "__version__",
    "invalid_reason",
    "normalize_prospect_id",
    "pull",
]
