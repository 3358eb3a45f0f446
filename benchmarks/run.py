"""Run every benchmark and print one table each: ``python -m benchmarks [--quick]``.

    python -m benchmarks                    # the full run (about 10 minutes)
    python -m benchmarks --quick            # a small version of each (under a minute; CI)
    python -m benchmarks --only ratelimit latency
    python -m benchmarks --json results.json

Tables go to stdout as Markdown; progress goes to stderr. Each benchmark runs in a
fresh interpreter of its own, so that none inherits another's memory (a child's peak
RSS on Linux starts from its parent's) or leftover tasks. A benchmark module that is
not there is skipped with a note; one that fails is reported, the others still run,
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import child_environment, format_table, load_average, machine_info

# (module, title); each module has run(quick: bool) -> list[dict], and optionally
# describe(quick: bool) -> str (the setup in one line).
BENCHMARKS = (
    ("ratelimit", "1. Rate-limit efficiency"),
    ("latency", "2. Latency hiding"),
    ("overhead", "3. Client overhead (CPU)"),
    ("decoding", "4. Decoding"),
    ("memory", "5. Memory"),
    ("batching", "6. Automatic batching (events_for)"),
    ("mixed", "7. One key, prospects and businesses together"),
    ("sync_memory", "8. Memory of an incremental sync"),
    ("shared_limit", "9. One key, many processes: the limit shared through Redis"),
)


def _setup_line(module: Any, quick: bool) -> str:
    describe = getattr(module, "describe", None)
    if callable(describe):
        return str(describe(quick))
    doc = (module.__doc__ or "").strip()
    return doc.split("\n\n")[0].replace("\n", " ") if doc else ""


def _run_alone(name: str, quick: bool, rows_path: str) -> None:
    """In the child: run one benchmark, write its rows as JSON."""
    module = importlib.import_module(f"benchmarks.{name}")
    rows = module.run(quick)
    with open(rows_path, "w", encoding="utf-8") as out:
        json.dump(rows, out, default=str)


def _run_in_child(name: str, quick: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="explorium-bench-") as folder:
        rows_path = os.path.join(folder, "rows.json")
        command = [sys.executable, "-m", "benchmarks.run", "--child", name, rows_path]
        # The child's own prints go to stderr, with the progress: stdout is the tables.
        status = subprocess.run(
            [*command, *(["--quick"] if quick else [])],
            stdout=sys.stderr,
            env=child_environment(),
            check=False,
        ).returncode
        if status != 0:
            raise RuntimeError(f"benchmarks/{name}.py failed (exit {status}); see stderr")
        with open(rows_path, encoding="utf-8") as rows:
            result: list[dict[str, Any]] = json.load(rows)
            return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks named (all by default); 0 when every one ran."""
    names = [name for name, _ in BENCHMARKS]
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a small version of each (CI)")
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                        help=f"run only these: {', '.join(names)}")  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="also write every row to this file")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _run_alone(args.child[0], args.quick, args.child[1])
        return 0

    info = machine_info()
    print("# explorium-events benchmarks" + (" (quick)" if args.quick else ""))
    print()
    print(format_table([info]))
    print(f"\nload average at start: {load_average()}", flush=True)
    results: dict[str, Any] = {"machine": info, "quick": args.quick, "benchmarks": {}}
    failed = []
    started = time.perf_counter()
    for name, title in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        print(f"\n## {title}\n", flush=True)
        print(f"[{name}] starting (load average {load_average()})", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.{name}":
                raise
            print(f"(skipped: benchmarks/{name}.py is not there)", flush=True)
            continue
        setup = _setup_line(module, args.quick)
        if setup:
            print(setup + "\n", flush=True)
        try:
            rows = _run_in_child(name, args.quick)
        except Exception:
            failed.append(name)
            print(f"FAILED:\n```\n{traceback.format_exc()}```", flush=True)
            continue
        seconds = time.perf_counter() - began
        print(format_table(rows))
        print(f"\n({seconds:.0f} s)", flush=True)
        results["benchmarks"][name] = {
            "title": title, "setup": setup, "rows": rows, "seconds": seconds,
        }  # fmt: skip
    total = time.perf_counter() - started
    print(f"\nall done in {total:.0f} s; load average at end: {load_average()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2, default=str)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
