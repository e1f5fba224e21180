"""Latency benchmark of the whole runtime: per stage, audio-to-frame, first frame, RTF, sessions.

``run_bench(BenchConfig(...))`` returns the JSON of issue 10::

    {"machine": {...}, "stages_ms": {"features", "emodiff", "lip", "rig", "render",
     "encode_vp8", "encode_h264"}, "first_frame_ms", "latency_ms": {"p50", "p95", "max"},
     "rtf", "dropped_frames", "sessions_at_25fps", "rss_mb", "stages_wall_ms": {...},
     "sessions_curve": [...], "ratios": {...}, "compare": {...}, "config": {...}}

* Stage times are medians over warm repetitions, per frame, of this process's CPU time (robust
  to other processes on a shared machine; wall-clock medians in ``stages_wall_ms``); on CUDA
  they are wall times with the GPU synchronized. A stage that cannot run in this configuration
  (e.g. no lip refiner loaded) is ``null``. ``machine.load_avg`` is the load at the end.
* ``ratios`` / ``compare`` (only with a CompareConfig): see emostream.bench.compare.
* Latency: live sessions on the wall clock are fed the bundled speech sample paced like a
  microphone (20 ms chunks, each pushed when its last sample would have been captured). Each
  chunk's push time is stamped with its sample position; the first video frame covering that
  position, when the session yields it, closes the stamp. ``first_frame_ms`` is the first
  chunk's latency.
* ``rtf``: wall seconds per second of audio through the offline core (features, VAD, motion,
  render) in one thread; ``rtf_cpu``: the same in CPU seconds (robust to machine load).
* ``sessions_at_25fps``: the largest number of concurrent live sessions that all hold 25 fps
  with no dropped frame for ``sessions_seconds``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from typing import Any

import av
import numpy as np
import onnxruntime
import torch

from emostream import __version__
from emostream.arkit import EmotionStyle
from emostream.assets import sample_path
from emostream.bench.compare import CompareConfig, run_compare
from emostream.config import DEFAULT_CROP, LIVE_MAX_SIDE, SAMPLE_RATE
from emostream.engine.features import Featurizer
from emostream.engine.pipeline import Engine, EngineConfig, offline_motion, offline_render
from emostream.engine.session import Session, SessionConfig, SessionStats, VideoFrame
from emostream.errors import ConfigError, DeviceError
from emostream.media.audio import load_audio
from emostream.render.framing import Framing
from emostream.streaming.runner import run_live
from emostream.streaming.sources import FileSource
from emostream.streaming.webrtc.codecs import VideoPolicy


@dataclass(frozen=True)
class BenchConfig:
    device: str = "cpu"
    renderer: str = "analytic"
    size: int = 256
    quick: bool = False
    #: Live run used for latency and drops (seconds of paced audio).
    live_seconds: float = 60.0
    #: How long each concurrency level must hold 25 fps.
    sessions_seconds: float = 30.0
    max_sessions: int = 8
    reps: int = 20
    motion_path: str | None = None
    steps: int | None = None
    renderer_checkpoint: str | None = None
    #: Portrait (None: the default) and output framing; the default is the live commands' own
    #: (the whole photo, long side capped at LIVE_MAX_SIDE).
    image: str | None = None
    crop: str = DEFAULT_CROP
    max_side: int = LIVE_MAX_SIDE
    #: torch intra-op threads for the whole run (None: torch's default, one per core). The
    #: networks are small: on 2 cores, 2 threads cost ~6x the CPU time of 1 (spinning).
    threads: int | None = 1
    #: Load the lip refiner (its look-ahead adds to the latency).
    refiner: bool = True
    #: Session scheduling margins (None: the SessionConfig defaults).
    compute_margin_s: float | None = None
    jitter_margin_s: float | None = None

    def session_config(self) -> SessionConfig:
        base = SessionConfig()
        return replace(
            base,
            compute_margin_s=base.compute_margin_s
            if self.compute_margin_s is None
            else self.compute_margin_s,
            jitter_margin_s=base.jitter_margin_s if self.jitter_margin_s is None else self.jitter_margin_s,
        )

    def effective(self) -> BenchConfig:
        if not self.quick:
            return self
        return replace(self, live_seconds=2.0, sessions_seconds=1.0, max_sessions=2, reps=3)


def machine_info(device: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    versions = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__}
    versions["av"] = av.__version__
    versions["onnxruntime"] = onnxruntime.__version__

    versions["emostream"] = __version__
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": cores,
        "gpu": gpu,
        "device": device,
        "os": platform.platform(),
        "versions": versions,
    }


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median_ms(fn: Any, reps: int, per: int, device: str) -> tuple[float, float]:
    """(median ms per item, median wall ms per item) over warm repetitions. The first is CPU time
    of this process (robust to other processes on a shared machine), or wall time with the GPU
    synchronized on CUDA."""
    fn()  # warm
    _sync(device)
    cpu, wall = [], []
    for _ in range(reps):
        c, t = time.process_time(), time.perf_counter()
        fn()
        _sync(device)
        wall.append((time.perf_counter() - t) / per)
        cpu.append((time.process_time() - c) / per)
    main = wall if device.startswith("cuda") else cpu
    return 1000.0 * float(np.median(main)), 1000.0 * float(np.median(wall))


def _speech(seconds: float) -> np.ndarray:
    one = load_audio(sample_path())
    n = int(seconds * SAMPLE_RATE)
    return np.resize(one, n).astype(np.float32)  # the sample, looped


def stage_times(engine: Engine, cfg: BenchConfig) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """(median CPU ms per frame of each stage, the same as wall-clock ms), warm repetitions of a
    1 s block; a stage that does not run in this configuration is None."""
    fps = engine.fps
    audio = _speech(1.0)
    feats_block = Featurizer(fps).push(audio)
    vad_block = np.ones(len(feats_block), np.float32)
    out: dict[str, float | None] = {k: None for k in STAGE_KEYS}
    wall: dict[str, float | None] = {k: None for k in STAGE_KEYS}

    def put(key: str, fn: Any, per: int) -> None:
        out[key], wall[key] = _median_ms(fn, cfg.reps, per, cfg.device)

    put("features", lambda: Featurizer(fps).push(audio), len(feats_block))
    model: Any = engine.motion_model
    refiner = getattr(model, "refiner", None)
    motion = offline_motion(engine, audio)
    if refiner is not None:
        model.refiner = None  # time EmoDiff alone, then the refiner on its own
    try:
        put(
            "emodiff",
            lambda: model.new_stream(0, EmotionStyle()).push(feats_block, vad_block),
            len(feats_block),
        )
    finally:
        if refiner is not None:
            model.refiner = refiner
    if refiner is not None:
        m = model.new_stream(0, EmotionStyle()).push(feats_block, vad_block)
        rows = len(m)

        def lip() -> None:
            refiner.new_stream(EmotionStyle()).push(feats_block[:rows], m)

        put("lip", lip, max(rows, 1))
    renderer: Any = engine.renderer_for(cfg.image)
    if len(motion) == 0:
        motion = np.zeros((fps, 55), np.float32)
    batch = motion[:1]
    if hasattr(renderer, "keypoints"):  # rig: blendshapes -> 3D landmarks -> image keypoints
        put("rig", lambda: renderer.keypoints(batch), 1)
    put("render", lambda: renderer.render(batch), 1)
    frames = renderer.render(motion[: min(len(motion), 10)])
    out["encode_vp8"], wall["encode_vp8"] = _encode_ms("libvpx", frames, fps)
    out["encode_h264"], wall["encode_h264"] = _encode_ms("libx264", frames, fps)
    return out, wall


def _encode_ms(codec: str, frames: np.ndarray, fps: int) -> tuple[float, float]:
    """(median CPU ms, median wall ms) per frame to encode ``frames`` (as WebRTC/mp4 would:
    realtime settings at the server's pinned bitrate — libvpx's 256 kbit/s default makes it
    thrash at 512²; the encoder's own threads count in the CPU time)."""
    ctx: Any = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height = frames.shape[2], frames.shape[1]
    ctx.pix_fmt = "yuv420p"

    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    ctx.bit_rate = VideoPolicy(width=ctx.width, height=ctx.height, fps=fps).target_bitrate()
    ctx.options = (
        {"deadline": "realtime", "cpu-used": "8"}
        if codec == "libvpx"
        else {"preset": "veryfast", "tune": "zerolatency"}
    )
    cpu, wall = [], []
    for i in range(3 * len(frames)):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i % len(frames)]), format="rgb24")
        vf.pts = i
        c, t = time.process_time(), time.perf_counter()
        ctx.encode(vf)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    k = len(frames)  # the first pass warms the encoder
    return 1000.0 * float(np.median(cpu[k:])), 1000.0 * float(np.median(wall[k:]))


async def _live(
    sessions: list[Session], audio: np.ndarray, seconds: float
) -> list[tuple[SessionStats, float]]:
    """Feed each session ``audio`` paced in 20 ms chunks for ``seconds``; return stats + fps."""

    async def one(s: Session) -> tuple[SessionStats, float]:
        src = FileSource("<bench>", realtime=True, audio=audio[: int(seconds * SAMPLE_RATE)])
        seen: list[float] = []  # [first video frame time, last video frame time]

        def on_item(item: object) -> None:
            if isinstance(item, VideoFrame):
                seen[1:] = [time.perf_counter()]
                if len(seen) == 1:
                    seen.insert(0, seen[0])

        stats = await run_live(s, src, on_item=on_item, tail_frames=0)
        span = seen[-1] - seen[0] if seen else 0.0
        fps = (stats.video_frames - 1) / span if span > 0 else 0.0
        return stats, fps

    return list(await asyncio.gather(*(one(s) for s in sessions)))


def _latency_budget(engine: Engine, scfg: SessionConfig) -> dict[str, Any]:
    """The session's fixed presentation delay and what it is made of (ms; ``motion_frames``
    says where the motion model's frames come from: EmoDiff hop + look-ahead, the lip refiner's
    look-ahead, which runs in parallel and costs nothing while <= EmoDiff's)."""
    look = 1000.0 * engine.lookahead_samples / SAMPLE_RATE
    model = 1000.0 * max(engine.latency_frames - 1, 0) / engine.fps
    frame = 1000.0 / engine.fps
    motion: Any = engine.motion_model
    sched = getattr(motion, "schedule", None)
    refiner = getattr(motion, "refiner", None)
    return {
        "total": round(look + model + frame + 1000.0 * (scfg.compute_margin_s + scfg.jitter_margin_s), 2),
        "features_vad_lookahead": round(look, 2),
        "motion_model_frames": round(model, 2),
        "frame": round(frame, 2),
        "compute_margin": round(1000.0 * scfg.compute_margin_s, 2),
        "jitter_margin": round(1000.0 * scfg.jitter_margin_s, 2),
        "motion_frames": {
            "latency_frames": int(engine.latency_frames),
            "emodiff_hop": getattr(sched, "hop", None),
            "emodiff_lookahead": getattr(sched, "lookahead", None),
            "lip_lookahead": getattr(refiner, "lookahead_frames", None),
        },
    }


def run_bench(
    cfg: BenchConfig, engine: Engine | None = None, compare: CompareConfig | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the JSON result, raw data for the plots: every chunk's latency). With ``compare``, the
    side-by-side comparison (emostream.bench.compare) runs too: its summary goes under
    ``"ratios"`` and its sections under ``"compare"``."""
    cfg = cfg.effective()
    if cfg.threads is not None:
        if cfg.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {cfg.threads}")
        torch.set_num_threads(cfg.threads)
    if cfg.size not in (256, 512):
        raise ConfigError(f"--size must be 256 or 512, got {cfg.size}")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for, but no CUDA GPU is available")
    if engine is None:
        engine = Engine.load(
            EngineConfig(
                renderer=cfg.renderer, size=cfg.size, device=cfg.device, motion_path=cfg.motion_path,
                steps=cfg.steps, renderer_checkpoint=cfg.renderer_checkpoint, refiner=cfg.refiner,
                framing=Framing(cfg.crop, cfg.max_side),
            )
        )  # fmt: skip
    result: dict[str, Any] = {"machine": machine_info(cfg.device)}
    result["stages_ms"], stages_wall = stage_times(engine, cfg)

    audio = _speech(max(cfg.live_seconds, 1.0))
    # Real-time factor: compute / audio duration through the offline core.
    rtf_audio = audio[: int(min(cfg.live_seconds, 10.0) * SAMPLE_RATE)]
    offline_render(engine, audio[:SAMPLE_RATE])  # warm
    c, t = time.process_time(), time.perf_counter()
    offline_render(engine, rtf_audio)
    _sync(cfg.device)
    result["rtf"] = (time.perf_counter() - t) / (rtf_audio.size / SAMPLE_RATE)
    rtf_cpu = (time.process_time() - c) / (rtf_audio.size / SAMPLE_RATE)

    scfg = cfg.session_config()
    ((stats, _),) = asyncio.run(_live([engine.new_session(cfg.image, config=scfg)], audio, cfg.live_seconds))
    result["first_frame_ms"] = stats.first_frame_ms
    result["session_latency_ms"] = _latency_budget(engine, scfg)
    result["rtf_cpu"] = rtf_cpu
    result["latency_ms"] = stats.latency_summary()
    result["dropped_frames"] = stats.dropped_frames
    raw: dict[str, Any] = {"latencies_ms": [round(x, 2) for x in stats.latencies_ms]}

    curve: list[dict[str, float]] = []
    best = 0
    for n in range(1, cfg.max_sessions + 1):
        runs = asyncio.run(
            _live(
                [engine.new_session(cfg.image, seed=i, config=scfg) for i in range(n)],
                audio,
                cfg.sessions_seconds,
            )
        )
        drops = sum(s.dropped_frames for s, _ in runs)
        fps = min(f for _, f in runs)
        curve.append({"sessions": n, "min_fps": round(fps, 2), "dropped_frames": drops})
        if drops == 0:
            best = n
        else:
            break
    result["sessions_at_25fps"] = best
    result["sessions_curve"] = curve
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result["stages_wall_ms"] = stages_wall
    if compare is not None:
        cmp = run_compare(replace(compare, device=cfg.device, quick=compare.quick or cfg.quick))
        result["ratios"] = cmp.pop("ratios")
        result["compare"] = cmp
    result["config"] = asdict(cfg)
    first = engine.renderer_for(cfg.image)
    result["config"]["frame_wh"] = [int(first.width), int(first.height)]
    result["machine"]["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    order = [
        *SCHEMA_KEYS,
        "rtf_cpu",
        "session_latency_ms",
        "stages_wall_ms",
        "sessions_curve",
        "ratios",
        "compare",
        "config",
    ]
    return {k: result[k] for k in order if k in result}, raw


SCHEMA_KEYS = (
    "machine", "stages_ms", "first_frame_ms", "latency_ms", "rtf", "dropped_frames",
    "sessions_at_25fps", "rss_mb",
)  # fmt: skip
STAGE_KEYS = ("features", "emodiff", "lip", "rig", "render", "encode_vp8", "encode_h264")


def plot(result: dict[str, Any], raw: dict[str, Any], path: str) -> None:
    """Three panels: audio-to-frame latency histogram, per-stage bars, sessions vs fps."""
    # deferred: matplotlib (heavy), only when plotting
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib.pyplot, once the headless Agg backend is chosen
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    lat = raw.get("latencies_ms") or []
    ax[0].hist(lat, bins=30, color="tab:blue")
    p95 = (result.get("latency_ms") or {}).get("p95")
    if p95 is not None:
        ax[0].axvline(p95, color="red", ls="--", label=f"p95 {p95:.0f} ms")
        ax[0].legend()
    ax[0].set(title="audio-to-frame latency", xlabel="ms", ylabel="chunks")
    stages = {k: v for k, v in result["stages_ms"].items() if v is not None}
    ax[1].bar(list(stages), list(stages.values()), color="tab:orange")
    ax[1].set(title="per-stage time per frame", ylabel="ms")
    ax[1].tick_params(axis="x", rotation=30)
    curve = result.get("sessions_curve") or []
    ax[2].plot([c["sessions"] for c in curve], [c["min_fps"] for c in curve], "o-")
    ax[2].axhline(25, color="gray", ls="--")
    ax[2].set(title="sessions vs fps (slowest session)", xlabel="concurrent sessions", ylabel="fps")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["SCHEMA_KEYS", "STAGE_KEYS", "BenchConfig", "machine_info", "plot", "run_bench"]
