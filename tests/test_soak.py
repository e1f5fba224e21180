"""The 2-minute soak (benchmarks/soak.py) against a real `emostream serve` (issue 18)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_minute_soak_has_no_stalls_and_no_growth(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/soak.py", "--minutes", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=540, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["sessions"]["connected"] >= 5, r["sessions"]
    assert r["stalled_sessions"] == 0, r["stalls"]
    assert r["sessions_left_after_drain"] == 0 and r["max_drain_s"] <= 6.0, r["idle_points"]
    for key in ("rss_mb", "fds", "threads"):
        assert r["resources"][key]["growth_pct"] <= 5.0, (key, r["idle_points"])
    statuses = {int(k.rsplit(":", 1)[1]) for k in r["refused"]}
    assert statuses <= {400, 403, 429, 503}, r["refused"]  # never a 500
    assert r["server_tracebacks"] == 0 and r["server_exit_code"] == 0
