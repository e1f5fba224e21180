"""`emostream bench --compare` / benchmarks: the ratios' schema and the README table (not timing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emostream.bench.compare import RATIO_KEYS, CompareConfig, run_compare
from emostream.bench.readme import END, START, render_block, update_readme
from emostream.errors import ConfigError


@pytest.fixture(scope="module")
def compare_result() -> dict:
    # quick: 1 repetition, batches 1 and 2; FOMM left out here (seconds a frame on a CPU)
    return run_compare(CompareConfig(quick=True, fomm_configs=()))


def test_compare_schema(compare_result: dict) -> None:
    r = compare_result
    assert list(r["ratios"]) == list(RATIO_KEYS)
    for k in ("teacher_vs_distilled", "torch_vs_onnx", "size_512_vs_256", "analytic_batch_speedup"):
        assert r["ratios"][k] > 0, k
    assert r["ratios"]["fomm_slim_vs_analytic"] is None  # not measured in this run: null, not 0
    assert r["sampler"]["teacher"]["steps"] > r["sampler"]["distilled"]["steps"] == 4
    for sec in (r["sampler"]["teacher"], r["motion_backend"]["onnx"], r["size"]["analytic_512"]):
        assert sec["cpu_ms"] > 0 and sec["wall_ms"] > 0
    assert set(r["batch"]["analytic"]) == {"1", "2"}
    assert r["config"]["quick"] is True
    json.dumps(r)


def _result(size: int, p95: float, ratios: dict | None = None) -> dict:
    out = {
        "machine": {"cpu": "Test CPU", "cores": 2, "gpu": None, "versions": {"torch": "x"},
                    "load_avg": [3.0]},
        "stages_ms": {"features": 0.5, "emodiff": 1.2, "lip": None, "rig": None, "render": 6.0,
                      "encode_vp8": 2.0, "encode_h264": 3.0},
        "first_frame_ms": 310.0, "latency_ms": {"p50": 280.0, "p95": p95, "max": 400.0},
        "rtf": 0.4, "dropped_frames": 0, "sessions_at_25fps": 3, "rss_mb": 500.0,
        "config": {"device": "cpu", "renderer": "analytic", "size": size},
    }  # fmt: skip
    if ratios is not None:
        out["ratios"] = ratios
    return out


def test_readme_block(tmp_path: Path) -> None:
    ratios = dict.fromkeys(RATIO_KEYS, 2.0)
    block = render_block([_result(256, 240.0, ratios), _result(512, 260.0)])
    assert "| metric | CPU analytic 256² | CPU analytic 512² | GPU | target |" in block
    assert "| latency p95 (ms) | 240 ✓ | 260 ✗ | not measured | ≤ 250 |" in block
    assert "| real-time factor (wall) | 0.4 | 0.4 ✓ | not measured | ≤ 0.5 |" in block  # RTF target at 512
    assert "| sessions at 25 fps | 3 ✓ | 3 | not measured | ≥ 2 |" in block  # sessions at 256
    assert "| lip refiner (ms/frame) | – | – |" in block
    assert "Test CPU, 2 cores" in block and "EmoDiff torch / ONNX Runtime | 2 |" in block

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Benchmarks\n\n{START}\nold\n{END}\n\ntail\n")
    update_readme(readme, [_result(256, 240.0)])
    once = readme.read_text()
    update_readme(readme, [_result(256, 240.0)])
    assert readme.read_text() == once  # regenerating is idempotent
    assert "old" not in once and once.startswith("# x\n") and once.endswith(f"{END}\n\ntail\n")
    readme.write_text("# no markers\n")
    with pytest.raises(ConfigError, match="markers"):
        update_readme(readme, [_result(256, 240.0)])
