"""EmoDiff streaming cost: CPU milliseconds per output frame on one core (JSON on stdout).

One live stream (batch 1) is fed 80 ms feature chunks; we report CPU time (``process_time``,
robust to other processes on a shared machine) per emitted frame, for the torch and ONNX Runtime
backends, for several sampler step counts (teacher = 8 DDIM steps, distilled = 4/2/1) and window
lengths (hop 3 + lookahead 2 frames throughout). The teacher *sampler* also runs the shipped
teacher's classifier-free guidance (3 network evaluations per step); the distilled student has
it baked in and runs unguided: ``teacher_sampler_onnx`` vs ``distilled_4_steps_onnx``. The cost
does not depend on the weights' values, so a randomly initialised network of the shipped
weights' architecture is timed (the default config's when no weights are shipped).

    python benchmarks/bench_emodiff.py [--frames 150] [--windows 16,24,32,48]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from emostream.arkit import EmotionStyle
from emostream.engine.motion import MotionEngine, weights_path
from emostream.engine.sampler import Guidance
from emostream.errors import CheckpointError
from emostream.models.emodiff import EmoDiff, EmoDiffConfig, load_emodiff

FEATURE_DIM = 160


def base_config() -> tuple[EmoDiffConfig, str]:
    try:
        model, _ = load_emodiff(weights_path())
        return model.cfg, "shipped"
    except CheckpointError:
        return EmoDiffConfig(feature_dim=FEATURE_DIM), "default"


def teacher_guidance() -> Guidance:
    """The shipped teacher sampler's guidance (meta ``guidance`` of ``emodiff``)."""
    try:
        _, meta = load_emodiff(weights_path().with_name("emodiff"))
    except CheckpointError:
        return Guidance()
    g = meta.get("guidance") or {}
    return Guidance(float(g.get("audio", 1.0)), float(g.get("style", 1.0)), bool(g.get("audio_mouth_only")))


BASE, BASE_NAME = base_config()


def engine(window: int, steps: int, backend: str, guidance: Guidance = Guidance()) -> MotionEngine:
    torch.manual_seed(0)
    m = EmoDiff(dataclasses.replace(BASE, window=window))
    meta = {"hop": 3, "lookahead": 2, "fps": 25}
    return MotionEngine(m, meta, steps=steps, backend=backend, refiner=None, guidance=guidance)


def ms_per_frame(eng: MotionEngine, frames: int) -> float:
    f = np.random.default_rng(0).standard_normal((frames, FEATURE_DIM)).astype(np.float32)
    s = eng.new_stream(0, EmotionStyle("happy"))
    s.push(f[:30])  # warm-up
    s = eng.new_stream(1, EmotionStyle("happy"))
    c0 = time.process_time()
    n = 0
    for i in range(0, frames, 2):
        n += len(s.push(f[i : i + 2]))
    n += len(s.flush())
    return (time.process_time() - c0) * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--windows", default="16,24,32,48")
    args = ap.parse_args()
    torch.set_num_threads(1)
    default_w = BASE.window
    res: dict[str, object] = {
        "unit": "CPU ms per output frame, one thread",
        "architecture": f"{BASE_NAME}: d_model {BASE.d_model}, {BASE.n_layers} layers, W {BASE.window}",
        "hop": 3,
        "lookahead": 2,
        "latency_ms": 5 * 40,
        "default_window": default_w,
    }
    by_steps = {}
    for backend in ("torch", "onnx"):
        for steps in (8, 4, 2, 1):
            by_steps[f"{backend}/steps={steps}"] = round(
                ms_per_frame(engine(default_w, steps, backend), args.frames), 3
            )
    res["by_steps"] = by_steps
    by_w = {}
    for w in (int(x) for x in args.windows.split(",")):
        by_w[f"onnx/W={w}/steps=4"] = round(ms_per_frame(engine(w, 4, "onnx"), args.frames), 3)
    res["by_window"] = by_w
    res["distilled_4_steps_onnx"] = by_steps["onnx/steps=4"]
    res["teacher_8_steps_onnx"] = by_steps["onnx/steps=8"]
    g = teacher_guidance()
    res["teacher_guidance"] = g.to_dict()
    teacher_ms = round(ms_per_frame(engine(default_w, 8, "onnx", g), args.frames), 3)
    res["teacher_sampler_onnx"] = teacher_ms
    res["teacher_sampler_vs_distilled"] = round(teacher_ms / by_steps["onnx/steps=4"], 2)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
