"""Peak memory of a whole `explorium-events fetch` process, by input size.

    python benchmarks/memory.py            # 10,000, 100,000 and 1,000,000 IDs
    python benchmarks/memory.py --quick    # 10,000 and 50,000 IDs (about 30 s)

The emulator runs in its own process with no rate limit and no latency; each pull is
a fresh `python -m explorium_events fetch` process reading its IDs from a file, and
its peak resident set size is read from the kernel when it exits (os.wait4), so the
number covers the interpreter, the client, the checkpoint and the output, and nothing
of the benchmark or the emulator. Target: under 250 MB at 1,000,000 IDs, and growth
that does not follow the number of batches done.

Rows: ``mode`` is ``checkpoint`` (``fetch --checkpoint``, the bulk path) or ``plain``
(``fetch`` without one, for comparison); ``MB/100k IDs`` is the growth over the
smallest size of the same mode and format.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

KEY = "bench-key-not-a-secret-0000"
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 50_000)
TARGET_MB = 250.0


@contextmanager
def emulator() -> Iterator[str]:
    """`explorium-events serve` on a free port with no rate limit; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "explorium_events", "serve", "--port", "0", "--rate-limit", "off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        url = None
        for line in process.stderr:
            found = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if found:
                url = found.group(1)
                break
        if url is None:
            raise RuntimeError("the emulator did not start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def write_ids(path: str, count: int) -> None:
    """``count`` distinct valid IDs, one per line."""
    with open(path, "w", encoding="ascii") as out:
        for number in range(count):
            out.write(hashlib.sha1(f"memory-{number}".encode()).hexdigest() + "\n")


def measure(argv: Sequence[str]) -> tuple[int, float, float]:
    """Run a command; its exit status, peak RSS in MB and wall time in seconds."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        sys.stderr.write(errors.decode(errors="replace")[-2000:])
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return process.returncode, usage.ru_maxrss * scale / 1e6, elapsed


def describe(quick: bool) -> str:
    """The setup in one line."""
    sizes = ", ".join(f"{size:,}" for size in (QUICK_SIZES if quick else SIZES))
    return (
        f"Peak RSS of a whole `explorium-events fetch` process for {sizes} IDs from a file, "
        "against the emulator in its own process with no rate limit; with --checkpoint "
        "(JSONL and SQLite) and without (JSONL). Target: under 250 MB at 1,000,000 IDs."
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """Measure every size, mode and format; one row each."""
    sizes = QUICK_SIZES if quick else SIZES
    cases = [("checkpoint", "jsonl"), ("checkpoint", "sqlite"), ("plain", "jsonl")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="explorium-memory-") as folder, emulator() as url:
        for size in sizes:
            ids = os.path.join(folder, f"ids-{size}.txt")
            write_ids(ids, size)
            for mode, fmt in cases:
                out = os.path.join(folder, f"out-{size}-{mode}.{'db' if fmt == 'sqlite' else fmt}")
                argv = [
                    sys.executable,
                    "-m",
                    "explorium_events",
                    "fetch",
                    "--ids",
                    ids,
                    "--out",
                    out,
                    "--format",
                    fmt,
                    "--base-url",
                    url,
                    "--api-key",
                    KEY,
                    "--rate-limit",
                    "off",
                    "--no-progress",
                ]
                if mode == "checkpoint":
                    argv += ["--checkpoint", os.path.join(folder, f"pull-{size}-{fmt}.ckpt")]
                status, peak, elapsed = measure(argv)
                rows.append(
                    {
                        "IDs": size,
                        "mode": mode,
                        "format": fmt,
                        "exit": status,
                        "peak RSS MB": round(peak, 1),
                        "seconds": round(elapsed, 1),
                        "IDs/s": round(size / elapsed) if elapsed else 0,
                        "output MB": round(os.path.getsize(out) / 1e6, 1)
                        if os.path.exists(out)
                        else 0.0,
                    }
                )
                for path in (out, f"{out}-wal", f"{out}-shm"):
                    if os.path.exists(path):
                        os.remove(path)
            os.remove(ids)
    smallest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        base = smallest.setdefault((row["mode"], row["format"]), row)
        extra = (row["IDs"] - base["IDs"]) / 100_000
        row["MB/100k IDs"] = (
            round((row["peak RSS MB"] - base["peak RSS MB"]) / extra, 1) if extra else "-"
        )
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an aligned text table."""
    columns = list(rows[0])
    cells = [
        [
            f"{row[column]:,}"
            if isinstance(row[column], int) and column != "exit"
            else str(row[column])
            for column in columns
        ]
        for row in rows
    ]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)
    ]
    lines = ["  ".join(column.rjust(width) for column, width in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines.extend(
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in cells
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 and 50,000 IDs only")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(table(rows))
    worst = max((row["peak RSS MB"] for row in rows if row["mode"] == "checkpoint"), default=0)
    print(
        f"\npeak RSS of fetch --checkpoint: {worst:.1f} MB at most (target: under "
        f"{TARGET_MB:.0f} MB at 1,000,000 IDs)"
    )
    return 0 if all(row["exit"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
