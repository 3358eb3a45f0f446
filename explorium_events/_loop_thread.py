"""LoopThread: a private event loop in a background thread, for blocking code to submit work to.

    runner = LoopThread("explorium-events")
    value = runner.run(some_coroutine())       # blocks this thread until it is done
    runner.stop()

It works the same from a plain script and from code whose thread already runs an event
loop (a Jupyter cell): the coroutine runs on the private loop, never on the caller's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class LoopThread:
    """An event loop running in a daemon thread of its own, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """Whether stop() was called."""
        return self._stopped

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The private loop (started if it was not)."""
        with self._lock:
            if self._stopped:
                raise RuntimeError(f"{self._name}: its event loop thread was stopped")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name=self._name, daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def submit(self, coroutine: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Schedule ``coroutine`` on the private loop; its result arrives in the future."""
        if self._thread is not None and threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError(
                f"{self._name}: a blocking call from its own event loop would wait forever; "
                "await the async client there instead"
            )
        try:
            loop = self.loop
        except RuntimeError:
            coroutine.close()
            raise
        return asyncio.run_coroutine_threadsafe(coroutine, loop)

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the private loop and wait for it here: its result or error.

        If the wait is interrupted (Ctrl-C), the coroutine is cancelled, and the
        interruption goes on.
        """
        future = self.submit(coroutine)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()
                # Let its clean-up run (a pull commits its checkpoint) before going on.
                concurrent.futures.wait([future], timeout=30)
            raise

    def stop(self) -> None:
        """Stop the loop, join the thread and close the loop. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError(f"{self._name}: cannot be stopped from its own event loop")
        # The clean-up runs on the private loop itself: the caller's thread may be running
        # a loop of its own (Jupyter), where run_until_complete() is refused.
        asyncio.run_coroutine_threadsafe(_drain(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running" if self._thread else "not started"
        return f"<LoopThread {self._name!r} {state}>"


async def _drain() -> None:
    """Cancel every other task of the running loop, wait for them, finalise async generators."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
