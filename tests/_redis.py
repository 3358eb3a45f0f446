"""A real redis-server on a free loopback port, in a temporary folder, that tests can break.

It can be stopped (SIGTERM), killed (SIGKILL), frozen (SIGSTOP: the store turns slow)
and thawed (SIGCONT), and started again on the same port. Without ``redis-server`` on
the PATH the tests that need it fail with what to install: CI installs it (.ci/run).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time

INSTALL = "apt-get install redis-server (Debian/Ubuntu); .ci/run installs it when missing"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process at a time, always on the same port and folder."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(f"these tests need a real redis-server on the PATH: {INSTALL}")
        self.binary = binary
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="explorium-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (if not running) and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.folder, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}")

    def ping(self) -> bool:
        """Whether it answers PING now (a raw RESP exchange: no client library needed)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        """End it: SIGTERM and wait, or SIGKILL (as a crash)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        if self.frozen:
            self.thaw(process)
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def freeze(self) -> None:
        """SIGSTOP: it keeps accepting connections and answers nothing (a slow store)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self, process: subprocess.Popen[bytes] | None = None) -> None:
        """SIGCONT: it answers again."""
        target = process or self.process
        assert target is not None
        target.send_signal(signal.SIGCONT)
        self.frozen = False

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
