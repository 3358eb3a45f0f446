"""After a fatal error, results other workers queued behind it still end in a state."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from explorium_events._errors import AuthenticationError
from explorium_events._ids import IdStream
from explorium_events._query import Query
from explorium_events._results import BatchResult
from explorium_events._stream import BatchStream, collect
from tests.conftest import FakeClock, prospect_id


class ScriptedRunner:
    """A BatchRunner stand-in: batch 0 fails with a 401, batch 1's answer lands just after."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.max_concurrency = 2
        self.landed = asyncio.Event()

    def check_open(self) -> None:
        pass

    def track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        return task

    def add_stream(self, inbox: asyncio.Queue[Any]) -> None:
        pass

    def discard_stream(self, inbox: asyncio.Queue[Any]) -> None:
        pass

    async def run_batch(self, batch: tuple[str, ...], *_: Any) -> BatchResult[Any]:
        if batch[0] == prospect_id(0):
            await asyncio.sleep(0)
            self.landed.set()  # batch 1's 200 is in, right behind this 401
            raise AuthenticationError("rejected", status=401)
        if batch[0] == prospect_id(1):
            await self.landed.wait()
            return BatchResult(batch, (), None, 1, None)
        await asyncio.Event().wait()  # later batches: in flight until cancelled
        raise AssertionError


async def test_a_result_queued_behind_a_fatal_error_is_still_accounted_for() -> None:
    """Every ID ends in succeeded or failed, even one whose answer landed after the 401."""
    ids = [prospect_id(number) for number in range(4)]
    stream: BatchStream[Any] = BatchStream(
        ScriptedRunner(),  # type: ignore[arg-type]
        IdStream(ids),
        Query(event_types=("prospect_changed_company",)),
        batch_size=1,
    )
    result = await collect(stream, raise_on_error=False)
    accounted = sorted([*result.succeeded, *(i for f in result.failed for i in f.prospect_ids)])
    assert accounted == sorted(ids)


async def test_a_refused_key_hands_back_a_batch_whose_answer_landed_behind_the_401(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """pull() without a checkpoint: each ID is done or handed to on_unfinished, once."""
    from explorium_events import EventsClient, pull
    from tests.conftest import TEST_KEY

    ids = [prospect_id(number) for number in range(4)]
    scripted = ScriptedRunner()
    done: list[str] = []
    unfinished: list[str] = []
    async with EventsClient(
        api_key=TEST_KEY, base_url="http://127.0.0.1:9", max_concurrency=2, batch_size=1
    ) as client:
        monkeypatch.setattr(client._runner, "run_batch", scripted.run_batch)
        with contextlib.suppress(AuthenticationError):
            await pull(
                client,
                iter(ids),
                tmp_path / "e.jsonl",
                None,
                on_batch=lambda record: done.extend(record.prospect_ids),
                on_unfinished=unfinished.extend,
            )
    assert sorted(done + unfinished) == sorted(ids)
