"""Side-by-side cost ratios measured in one run (issue 10, part 2).

``run_compare(CompareConfig(...))`` times, in this process and one after the other:

* ``sampler``: EmoDiff teacher (its DDIM steps) vs the distilled sampler, per output frame of one
  live stream (2-frame feature chunks, as a session pushes them; refiner off);
* ``motion_backend``: the distilled sampler on torch vs ONNX Runtime (``MotionEngine`` backends);
* ``renderer``: the analytic renderer vs the FOMM renderer (rig render + keypoints + generator)
  with the slim-256 and vox-256 configs (random-init weights: the cost does not depend on them);
* ``size``: the analytic renderer at 256² vs 512²;
* ``batch``: per-frame render cost at batch 1, 2, 4, 8 (analytic, and FOMM slim-256);
  ``*_batch_speedup`` = per-frame cost at batch 1 / at the largest batch.

Every figure is the median over warm repetitions (one untimed warm-up first) of CPU time
(``process_time``: robust to the other processes of a shared machine) per frame; wall-clock
medians are kept next to them. ``ratios`` are slow / fast (> 1: the second is that many times
cheaper), computed from the CPU-time medians.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emostream.arkit import EmotionStyle
from emostream.engine.motion import TEACHER_WEIGHTS, MotionEngine, weights_path
from emostream.errors import CheckpointError
from emostream.models.emodiff import EmoDiff, EmoDiffConfig
from emostream.models.fomm.checkpoint import build_model
from emostream.models.fomm.config import load_config
from emostream.render.analytic import AnalyticRenderer
from emostream.render.eval import scripted_motion
from emostream.render.fomm_renderer import FommRenderer
from emostream.render.portrait import load_image, prepare_portrait

#: Keys of the flat ``ratios`` summary (also merged into ``emostream bench``'s JSON).
RATIO_KEYS = (
    "teacher_vs_distilled",
    "torch_vs_onnx",
    "fomm_slim_vs_analytic",
    "fomm_vox_vs_analytic",
    "size_512_vs_256",
    "analytic_batch_speedup",
    "fomm_slim_batch_speedup",
)


@dataclass(frozen=True)
class CompareConfig:
    device: str = "cpu"
    #: Distilled EmoDiff weights (None: the shipped default; else the teacher at ``distilled_steps``).
    motion_path: str | None = None
    #: Teacher EmoDiff weights (None: the shipped teacher; else a random-init default config).
    teacher_path: str | None = None
    distilled_steps: int = 4
    fomm_configs: tuple[str, ...] = ("slim-256", "vox-256")
    batches: tuple[int, ...] = (1, 2, 4, 8)
    reps: int = 5
    #: Frames of motion per sampler repetition.
    motion_frames: int = 60
    quick: bool = False

    def effective(self) -> CompareConfig:
        if not self.quick:
            return self
        return replace(self, fomm_configs=self.fomm_configs[:1], batches=(1, 2), reps=1, motion_frames=12)


def _timed(fn: Callable[[], int], reps: int) -> dict[str, float]:
    """fn() does some work and returns the frames it made: median CPU / wall ms per frame."""
    fn()  # warm
    cpu, wall = [], []
    for _ in range(max(reps, 1)):
        c, w = time.process_time(), time.perf_counter()
        n = max(fn(), 1)
        cpu.append((time.process_time() - c) * 1000.0 / n)
        wall.append((time.perf_counter() - w) * 1000.0 / n)
    return {"cpu_ms": round(float(np.median(cpu)), 3), "wall_ms": round(float(np.median(wall)), 3)}


def _ratio(slow: dict[str, float] | None, fast: dict[str, float] | None) -> float | None:
    if not slow or not fast or fast["cpu_ms"] <= 0:
        return None
    return round(slow["cpu_ms"] / fast["cpu_ms"], 3)


# ---------------------------------------------------------------------------------- motion
def _motion_engine(
    path: str | None, steps: int | None, backend: str, device: str, *, teacher: bool = False
) -> tuple[Any, str]:
    """(MotionEngine without refiner, where its weights came from)."""
    if path is not None:
        return MotionEngine.load(path, device=device, backend=backend, steps=steps, refiner=False), path
    p = weights_path(TEACHER_WEIGHTS) if teacher else weights_path()  # the shipped weights
    try:
        return MotionEngine.load(p, device=device, backend=backend, steps=steps, refiner=False), str(p)
    except CheckpointError:
        pass
    torch.manual_seed(0)
    model = EmoDiff(EmoDiffConfig(feature_dim=160))
    meta = {"hop": 3, "lookahead": 2, "fps": 25}
    eng = MotionEngine(model, meta, device=device, backend=backend, steps=steps, refiner=None)
    return eng, "random-init default EmoDiffConfig (cost does not depend on weight values)"


def _stream_cost(eng: Any, frames: int, reps: int) -> dict[str, float]:
    feats = np.random.default_rng(0).standard_normal((frames, eng.feature_dim)).astype(np.float32)
    vad = np.ones(frames, np.float32)

    def run() -> int:
        s = eng.new_stream(0, EmotionStyle("happy"))
        n = 0
        for i in range(0, frames, 2):
            n += len(s.push(feats[i : i + 2], vad[i : i + 2]))
        return n + len(s.flush())

    return _timed(run, reps)


def compare_motion(cfg: CompareConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(sampler section, motion_backend section)."""
    teacher, t_src = _motion_engine(cfg.teacher_path, None, "torch", cfg.device, teacher=True)
    d_path = cfg.motion_path
    if d_path is None and not weights_path().with_suffix(".safetensors").is_file():
        d_path = cfg.teacher_path  # no distilled weights yet: the same network at fewer steps
    distilled, d_src = _motion_engine(d_path, cfg.distilled_steps, "torch", cfg.device)
    if d_path is not None and d_path == cfg.teacher_path:
        d_src += f" (teacher weights at {cfg.distilled_steps} steps: same network as the distilled one)"
    t = _stream_cost(teacher, cfg.motion_frames, cfg.reps)
    d = _stream_cost(distilled, cfg.motion_frames, cfg.reps)
    sampler = {
        "teacher": {"weights": t_src, "steps": teacher.steps, **t},
        "distilled": {"weights": d_src, "steps": distilled.steps, **d},
        "ratio": _ratio(t, d),
    }
    onnx, _ = _motion_engine(d_path, cfg.distilled_steps, "onnx", cfg.device)
    o = _stream_cost(onnx, cfg.motion_frames, cfg.reps)
    backend = {"steps": distilled.steps, "torch": d, "onnx": o, "ratio": _ratio(d, o)}
    return sampler, backend


# ---------------------------------------------------------------------------------- render
def _render_cost(renderer: Any, motion: np.ndarray, batch: int, reps: int, frames: int) -> dict[str, float]:
    def run() -> int:
        for i in range(0, frames, batch):
            renderer.render(motion[i : i + batch])
        return frames

    return _timed(run, reps)


def _fomm_renderer(portrait: Any, name: str, batch: int, device: str) -> Any:
    torch.manual_seed(0)
    model = build_model(load_config(name))
    backend = "torch-cuda" if device.startswith("cuda") else "torch-cpu"
    dtype = "fp16" if backend == "torch-cuda" else "fp32"
    rig = AnalyticRenderer(portrait)
    return FommRenderer(
        portrait.crop, rig, model, backend=backend, dtype=dtype, batch_size=batch, out_size=portrait.size
    )


def compare_render(cfg: CompareConfig) -> dict[str, Any]:
    """Sections renderer, size and batch."""
    motion = scripted_motion().motion
    img = load_image(None)
    p256, p512 = prepare_portrait(img, 256), prepare_portrait(img, 512)
    nmax = max(cfg.batches)
    frames = max(nmax, 8 if cfg.quick else 2 * nmax)
    a256, a512 = AnalyticRenderer(p256), AnalyticRenderer(p512)
    analytic = _render_cost(a256, motion, 1, cfg.reps, frames)
    out: dict[str, Any] = {
        "renderer": {"frames": frames, "analytic": analytic},
        "size": {
            "analytic_256": analytic,
            "analytic_512": _render_cost(a512, motion, 1, cfg.reps, frames),
        },
        "batch": {"analytic": {str(b): _render_cost(a256, motion, b, cfg.reps, frames) for b in cfg.batches}},
    }
    out["size"]["ratio"] = _ratio(out["size"]["analytic_512"], analytic)
    for name in cfg.fomm_configs:
        slim = name.startswith("slim")
        fomm = _fomm_renderer(p256, name, 1, cfg.device)
        # vox-256 is ~1 s a frame on a CPU: one frame per repetition, half the repetitions
        fr, reps = (min(frames, 4), cfg.reps) if slim else (1, max(cfg.reps // 2, 1))
        out["renderer"][f"fomm/{name}"] = _render_cost(fomm, motion, 1, reps, fr)
        if slim:
            by_b = {}
            for b in cfg.batches:
                fomm.batch_size = b
                by_b[str(b)] = _render_cost(fomm, motion, b, max(cfg.reps // 2, 1), b)
            out["batch"][f"fomm/{name}"] = by_b
    return out


def run_compare(cfg: CompareConfig) -> dict[str, Any]:
    """The comparison JSON: sections + a flat ``ratios`` summary (keys RATIO_KEYS)."""
    cfg = cfg.effective()
    sampler, backend = compare_motion(cfg)
    render = compare_render(cfg)
    rend, batch = render["renderer"], render["batch"]

    def batch_ratio(key: str) -> float | None:
        by_b = batch.get(key)
        if not by_b:
            return None
        hi = str(max(cfg.batches))
        return _ratio(by_b.get("1"), by_b.get(hi))

    ratios = {
        "teacher_vs_distilled": sampler["ratio"],
        "torch_vs_onnx": backend["ratio"],
        "fomm_slim_vs_analytic": _ratio(rend.get("fomm/slim-256"), rend["analytic"]),
        "fomm_vox_vs_analytic": _ratio(rend.get("fomm/vox-256"), rend["analytic"]),
        "size_512_vs_256": render["size"]["ratio"],
        "analytic_batch_speedup": batch_ratio("analytic"),
        "fomm_slim_batch_speedup": batch_ratio("fomm/slim-256"),
    }
    cfg_d = asdict(cfg)
    return {
        "unit": "median ms per frame over warm runs; cpu_ms = process CPU time, wall_ms = wall clock",
        "ratios": ratios,
        "sampler": sampler,
        "motion_backend": backend,
        **render,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg_d.items()},
    }


def default_teacher() -> str | None:
    """The teacher checkpoint to compare against when none is given: the shipped one, else the
    EmoDiff engineer's training output (``out/emodiff/teacher``) when present."""
    for p in (weights_path(TEACHER_WEIGHTS), Path("out/emodiff/teacher")):
        if p.with_suffix(".safetensors").is_file():
            return str(p)
    return None


__all__ = [
    "RATIO_KEYS",
    "CompareConfig",
    "compare_motion",
    "compare_render",
    "default_teacher",
    "run_compare",
]
