"""Make aioresponses 0.7.9 work on aiohttp 3.14+, the aiohttp our users get.

aiohttp 3.14 gave ``ClientResponse.__init__`` a required ``stream_writer``; aioresponses
0.7.9 builds responses without one, so every mocked request fails
(pnuckowski/aioresponses#289, fixes unmerged). aiohttp 3.14.0 is a security release, so
pinning below it is not an option. Two patches, applied once from conftest:

1. a ClientResponse subclass that supplies a stand-in stream writer when none is given,
   installed as aioresponses' default response class;
2. a stream reader with a high-water mark above any mocked body, because the stock one
   (64 KiB limit) asserts in ``pause_reading`` once a body passes about 128 KiB (#292).

aioresponses also bypasses the connector, timeouts and tracing, so it is used only for
wire-shape cases; behaviour is tested against real servers on 127.0.0.1. Remove this
module once an aioresponses release supports aiohttp 3.14.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aioresponses.core
from aiohttp import ClientResponse, StreamReader
from aiohttp.client_proto import ResponseHandler
from yarl import URL


class _NullStreamWriter:
    """What ClientResponse reads of a stream writer whose request was already sent."""

    output_size = 0


class CompatClientResponse(ClientResponse):
    """A ClientResponse that accepts being built without a stream writer."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _NullStreamWriter())
        super().__init__(method, url, **kwargs)


def _roomy_stream_reader(loop: asyncio.AbstractEventLoop | None = None) -> StreamReader:
    protocol = ResponseHandler(loop=loop)  # type: ignore[arg-type]
    return StreamReader(protocol, limit=2**30, loop=loop)  # type: ignore[arg-type]


def install_aioresponses_compat() -> None:
    """Patch aioresponses in place; idempotent."""
    aioresponses.core.ClientResponse = CompatClientResponse  # type: ignore[misc]
    aioresponses.core.stream_reader_factory = _roomy_stream_reader
