"""`emostream bench --quick`: the JSON schema of issue 10 (not a timing test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from session_doubles import double_engine

from emostream.bench.pipeline import SCHEMA_KEYS, STAGE_KEYS, BenchConfig, plot, run_bench
from emostream.engine.pipeline import Engine
from emostream.errors import CheckpointError


def check_schema(result: dict) -> None:
    assert list(result)[: len(SCHEMA_KEYS)] == list(SCHEMA_KEYS)
    assert {"cpu", "cores", "gpu", "versions"} <= set(result["machine"])
    assert list(result["stages_ms"]) == list(STAGE_KEYS)
    assert list(result["stages_wall_ms"]) == list(STAGE_KEYS)
    assert len(result["machine"]["load_avg"]) == 3
    for k in ("features", "emodiff", "render", "encode_vp8", "encode_h264"):
        assert result["stages_ms"][k] > 0
    assert set(result["latency_ms"]) == {"p50", "p95", "max"}
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p95"] <= result["latency_ms"]["max"]
    assert result["first_frame_ms"] > 0 and result["rtf"] > 0 and result["rss_mb"] > 0
    assert isinstance(result["dropped_frames"], int) and isinstance(result["sessions_at_25fps"], int)
    json.dumps(result)  # serialisable


def test_quick_bench_schema_and_plot(tmp_path: Path) -> None:
    engine = double_engine(real_features=True)
    result, raw = run_bench(BenchConfig(quick=True), engine=engine)
    check_schema(result)
    session = engine.new_session(None)
    session.stop()
    budget = result["session_latency_ms"]
    assert budget["total"] == pytest.approx(1000.0 * float(session.latency), abs=0.01)
    parts = [v for k, v in budget.items() if k not in ("total", "motion_frames")]
    assert budget["total"] == pytest.approx(sum(parts), abs=0.05)
    assert budget["motion_frames"]["latency_frames"] == engine.latency_frames
    assert result["config"]["quick"] is True
    assert len(raw["latencies_ms"]) > 10
    plot(result, raw, str(tmp_path / "bench.png"))
    assert (tmp_path / "bench.png").stat().st_size > 10_000


def test_quick_bench_with_real_stages() -> None:
    try:
        engine = Engine.load()
    except (CheckpointError, ImportError) as e:
        pytest.skip(f"real stages not available: {e}")
    result, _ = run_bench(BenchConfig(quick=True), engine=engine)
    check_schema(result)
