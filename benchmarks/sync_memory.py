"""Peak memory of a whole `explorium-events sync` process, over a state of N IDs.

    python benchmarks/sync_memory.py            # 1,000,000 IDs
    python benchmarks/sync_memory.py --quick    # 20,000 IDs (about 20 s)

The emulator runs in its own process with no rate limit and no latency. For each size,
two `python -m explorium_events sync` processes run one after the other on the same
list and state: the ``first`` run (every ID new: its whole window fetched, every event
recorded in the state), then, after the emulator's clock moved a day, the ``daily``
run (every ID has a cursor; the state already remembers every event emitted). Peak
resident set size is read from the kernel when each exits (os.wait4): the interpreter,
the client, the state and the output, nothing of the benchmark or the emulator.
Target: under 250 MB at 1,000,000 IDs.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import urllib.request
from contextlib import closing
from typing import Any

if __package__ in (None, ""):  # run as a script: python benchmarks/sync_memory.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.memory import KEY, emulator, measure, table, write_ids

SIZES = (1_000_000,)
QUICK_SIZES = (20_000,)
TARGET_MB = 250.0


def describe(quick: bool) -> str:
    """The setup in one line."""
    sizes = ", ".join(f"{size:,}" for size in (QUICK_SIZES if quick else SIZES))
    return (
        f"Peak RSS of a whole `explorium-events sync` process over a state of {sizes} IDs "
        "(JSONL output): the first run (whole windows) and the next day's run (cursors and "
        "remembered event ids for every ID), against the emulator in its own process with "
        "no rate limit. Target: under 250 MB at 1,000,000 IDs."
    )


def _advance(url: str, by: str) -> None:
    request = urllib.request.Request(
        f"{url}/_emulator/clock",
        data=json.dumps({"advance": by}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


def _remembered(state: str) -> int:
    with closing(sqlite3.connect(state)) as db:
        return int(db.execute("SELECT COUNT(*) FROM emitted").fetchone()[0])


def run(quick: bool) -> list[dict[str, Any]]:
    """Measure the first and the daily run at every size; one row each."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="explorium-sync-memory-") as folder, emulator() as url:
        for size in QUICK_SIZES if quick else SIZES:
            ids = os.path.join(folder, f"ids-{size}.txt")
            state = os.path.join(folder, f"state-{size}.sync")
            write_ids(ids, size)
            for name in ("first", "daily"):
                out = os.path.join(folder, f"out-{size}-{name}.jsonl")
                argv = [
                    sys.executable, "-m", "explorium_events", "sync",
                    "--ids", ids, "--state", state, "--out", out,
                    "--base-url", url, "--api-key", KEY, "--rate-limit", "off",
                ]  # fmt: skip
                status, peak, elapsed = measure(argv)
                rows.append(
                    {
                        "IDs": size,
                        "run": name,
                        "exit": status,
                        "peak RSS MB": round(peak, 1),
                        "seconds": round(elapsed, 1),
                        "state MB": round(os.path.getsize(state) / 1e6, 1),
                        "event ids kept": _remembered(state),
                        "new events": sum(1 for _ in open(out, "rb")),  # noqa: SIM115
                    }
                )
                os.remove(out)
                _advance(url, "1d")
            os.remove(ids)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 IDs only")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(table(rows))
    worst = max((row["peak RSS MB"] for row in rows), default=0)
    print(f"\npeak RSS of sync: {worst:.1f} MB at most (target: under {TARGET_MB:.0f} MB)")
    return 0 if all(row["exit"] == 0 for row in rows) and worst < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
