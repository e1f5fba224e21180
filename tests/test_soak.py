"""The 2-minute soak (benchmarks/soak.py) against a real `emostream serve` (issue 18)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("soak") / "soak.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/soak.py", "--minutes", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=540, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(out.read_text()))


def test_soak_has_no_stalls_no_leaked_peers_and_no_500(soak: dict[str, Any]) -> None:
    r = soak
    assert r["sessions"]["connected"] >= 5, r["sessions"]
    assert r["stalled_sessions"] == 0, r["stalls"]
    assert r["sessions_left_after_drain"] == 0 and r["max_drain_s"] <= 6.0, r["idle_points"]
    for key in ("fds", "threads"):
        assert r["resources"][key]["growth_pct"] <= 5.0, (key, r["idle_points"])
    statuses = {int(k.rsplit(":", 1)[1]) for k in r["refused"]}
    assert statuses <= {400, 403, 429, 503}, r["refused"]  # never a 500
    assert r["server_tracebacks"] == 0 and r["server_exit_code"] == 0


def test_soak_rss_grows_at_most_5_percent_after_warm_up(soak: dict[str, Any]) -> None:
    """Issue 18's target, on the trend of the idle points (later half against earlier half; see
    ``growth`` in benchmarks/soak.py): a short run's first idle point alone is too noisy (idle RSS
    wanders 513-538 MB over 30 minutes with no trend). The 30-minute run: +3.5 % last vs first,
    after a closed peer's cycles are collected and the heap trimmed, with 4 malloc arenas."""
    rss = soak["resources"]["rss_mb"]
    assert rss["trend_pct"] <= 5.0, soak["idle_points"]
    assert rss["growth_pct"] <= 10.0, soak["idle_points"]  # and no single-step leak either
