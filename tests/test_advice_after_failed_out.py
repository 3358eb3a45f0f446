"""The summary's advice after a --failed-out that could not be written, with --append."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from explorium_events.cli._request import PullRequest
from explorium_events.emulator import Emulator, EmulatorConfig
from tests.conftest import prospect_id
from tests.test_bulk import write_ids
from tests.test_review_edges import FULL, NOW, needs_dev_full, run_cli


@needs_dev_full
async def test_after_an_unwritable_failed_out_the_advice_warns_that_append_repeats_events(
    tmp_path: Path,
) -> None:
    """With --append, the advice says a rerun appends the done IDs' events twice (it would)."""
    source = write_ids(tmp_path / "ids.txt", [prospect_id(n) for n in range(400)])
    out = tmp_path / "e.jsonl"
    command = [
        "fetch",
        *("--ids", str(source), "--out", str(out), "--append", "--failed-out", FULL),
        *("--rate-limit", "off", "--max-attempts", "1", "--give-up-after", "off"),
        "--no-progress",
    ]
    config = EmulatorConfig(rate_limit=None, now=NOW, error_rate=0.5, seed=3)
    async with Emulator(config) as emu:
        code, err = await run_cli(*command, "--base-url", emu.url)
        assert code == 1, err
        advice = " ".join(
            line.strip()
            for line in err.splitlines()[
                err.splitlines().index(
                    next(line for line in err.splitlines() if line.startswith("  retry them"))
                ) :
            ][:3]
        )
        assert "run the same command again" not in advice, err
        assert f"--append adds the done batches' events to {out} a second time" in advice, err
        assert "--checkpoint FILE" in advice, err
        emu.configure(error_rate=0.0)  # the cause is fixed: the warning was true
        code, err = await run_cli(*command, "--base-url", emu.url)
    assert code == 0, err
    ids = Counter(json.loads(line)["event_id"] for line in out.read_text().splitlines())
    assert any(count > 1 for count in ids.values())


def test_the_rerun_advice_warns_only_where_a_rerun_writes_twice() -> None:
    """Standard output and --append are warned of; a fresh file and a checkpoint are not."""

    def advice(**settings: object) -> str:
        request = PullRequest(command="fetch", ids=[], total=0, source="x", out=None, fmt="jsonl")
        for name, value in settings.items():
            setattr(request, name, value)
        return request.rerun_advice()

    plain = "fix the cause and run the same command again"
    assert advice(out="e.jsonl") == plain
    assert advice(out="e.jsonl", append=True, checkpoint="p.ckpt") == plain
    assert advice(out=None, checkpoint=None) != plain
    assert "standard output again" in advice(out=None)
    assert "--append adds the done batches' events to e.jsonl" in advice(out="e.jsonl", append=True)
    assert "--checkpoint FILE" in advice(out=None)
