"""The README's benchmark table, generated from ``emostream bench`` JSON results.

``update_readme(readme, results)`` replaces what lies between ``<!-- bench:start -->`` and
``<!-- bench:end -->`` with a Markdown table: one column per measured configuration (CPU 256²,
CPU 512², ...), the GPU column marked "not measured" unless a CUDA result is given, the targets of
issue 10 with met / not met, the machine, and the side-by-side ratios when a result has them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emostream.errors import ConfigError, InputError

START, END = "<!-- bench:start -->", "<!-- bench:end -->"

#: (label, getter, target, "<=" or ">=") -- targets of issue 10 (analytic renderer, CPU).
_ROWS: tuple[tuple[str, str, float | None, str], ...] = (
    ("first frame (ms)", "first_frame_ms", 300.0, "<="),
    ("latency p50 (ms)", "latency_ms.p50", None, ""),
    ("latency p95 (ms)", "latency_ms.p95", 250.0, "<="),
    ("latency max (ms)", "latency_ms.max", None, ""),
    ("real-time factor (wall)", "rtf", 0.5, "<="),
    ("real-time factor (CPU time)", "rtf_cpu", None, ""),
    ("dropped frames", "dropped_frames", 0.0, "<="),
    ("sessions at 25 fps", "sessions_at_25fps", 2.0, ">="),
    ("peak RSS (MB)", "rss_mb", None, ""),
    ("features (ms/frame)", "stages_ms.features", None, ""),
    ("EmoDiff (ms/frame)", "stages_ms.emodiff", None, ""),
    ("lip refiner (ms/frame)", "stages_ms.lip", None, ""),
    ("rig (ms/frame)", "stages_ms.rig", None, ""),
    ("render (ms/frame)", "stages_ms.render", None, ""),
    ("encode VP8 (ms/frame)", "stages_ms.encode_vp8", None, ""),
    ("encode H.264 (ms/frame)", "stages_ms.encode_h264", None, ""),
)

_RATIO_LABELS = {
    "teacher_vs_distilled": "EmoDiff teacher / distilled sampler",
    "torch_vs_onnx": "EmoDiff torch / ONNX Runtime",
    "fomm_slim_vs_analytic": "FOMM slim-256 / analytic renderer",
    "fomm_vox_vs_analytic": "FOMM vox-256 / analytic renderer",
    "size_512_vs_256": "analytic 512² / 256²",
    "analytic_batch_speedup": "analytic: batch 1 / largest batch (per frame)",
    "fomm_slim_batch_speedup": "FOMM slim-256: batch 1 / largest batch (per frame)",
}


def _get(result: dict[str, Any], key: str) -> Any:
    v: Any = result
    for part in key.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return v


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, (bool, int)):
        return str(v)
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.0f}"


def _column(result: dict[str, Any]) -> str:
    c = result.get("config", {})
    dev = "GPU" if str(c.get("device", "cpu")).startswith("cuda") else "CPU"
    return f"{dev} {c.get('renderer', 'analytic')} {c.get('size', 256)}²"


def render_block(results: list[dict[str, Any]]) -> str:
    """Markdown for the block between the markers (without the markers)."""
    if not results:
        raise InputError("no benchmark results to tabulate")
    cols = [_column(r) for r in results]
    has_gpu = any(str(r.get("config", {}).get("device", "")).startswith("cuda") for r in results)
    header = ["metric", *cols] + ([] if has_gpu else ["GPU"]) + ["target"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for label, key, target, op in _ROWS:
        cells = [label]
        for r in results:
            v = _get(r, key)
            mark = ""
            if target is not None and v is not None and _relevant(r, key):
                ok = v <= target if op == "<=" else v >= target
                mark = " ✓" if ok else " ✗"
            cells.append(_fmt(v) + mark)
        if not has_gpu:
            cells.append("not measured")
        sign = {"<=": "≤", ">=": "≥"}.get(op, op)
        cells.append(f"{sign} {_fmt(target)}" if target is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    out = ["", *lines, ""]
    m = results[0].get("machine", {})
    v = m.get("versions", {})
    out.append(
        f"Measured on: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, GPU: {m.get('gpu') or 'none'}; "
        f"{m.get('os', '')}; Python {v.get('python', '?')}, torch {v.get('torch', '?')}, "
        f"onnxruntime {v.get('onnxruntime', '?')}."
    )
    loads = [r.get("machine", {}).get("load_avg") for r in results]
    if any(loads):
        out.append(
            "Load average (1 min) during the runs: "
            + ", ".join(f"{c}: {ld[0]:.1f}" for c, ld in zip(cols, loads, strict=True) if ld)
            + " (a shared machine: wall-clock figures include waiting for the CPU)."
        )
    out.append(
        "✓/✗: the issue's target for the analytic renderer on this CPU (RTF target at 512², sessions at "
        "256²). Stages: median CPU ms per frame, warm runs. GPU: not measured (none here)."
    )
    for r in results:
        ratios = r.get("ratios")
        if ratios:
            out += [
                "",
                f"Cost ratios ({_column(r)} run; CPU-time medians; > 1: the second is cheaper):",
                "",
            ]
            out += ["| comparison | ratio |", "|---|---|"]
            out += [f"| {_RATIO_LABELS.get(k, k)} | {_fmt(x)} |" for k, x in ratios.items()]
            break
    out += [
        "",
        "Regenerate: `python benchmarks/update_readme.py README.md "
        "out/bench/bench.json out/bench/bench512.json`",
        "",
    ]
    return "\n".join(out)


def _relevant(result: dict[str, Any], key: str) -> bool:
    """Targets apply to the analytic CPU runs; RTF at 512², sessions at 256²."""
    c = result.get("config", {})
    if str(c.get("device", "cpu")).startswith("cuda") or c.get("renderer", "analytic") != "analytic":
        return False
    if key == "rtf":
        return bool(c.get("size") == 512)
    if key == "sessions_at_25fps":
        return bool(c.get("size") == 256)
    return True


def update_readme(readme: str | Path, results: list[dict[str, Any]]) -> None:
    """Replace the text between the bench markers of ``readme`` with the generated table."""
    path = Path(readme)
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(f"{path}: cannot read README ({e.strerror})") from e
    a, b = text.find(START), text.find(END)
    if a < 0 or b < a:
        raise ConfigError(f"{path}: no '{START}' ... '{END}' markers to write the benchmark table between")
    new = text[: a + len(START)] + "\n" + render_block(results) + text[b:]
    path.write_text(new)


__all__ = ["END", "START", "render_block", "update_readme"]
