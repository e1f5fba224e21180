"""``emostream eval motion``: motion metrics of an EmoDiff checkpoint on held-out utterances.

Every utterance is generated through the streaming sampler (the same code as live sessions) for
8 seeds at once. Metrics (JSON):

- ``mouth_mae``: mean |generated - target| over the mouth blendshapes (seed 0, after the refiner
  if one is used).
- ``jaw_corr``: Pearson correlation of jawOpen with the target over all frames (seed 0).
- ``emotion_acc``: accuracy of the emotion classifier (trained on targets) on generated sequences.
- ``diversity_upper`` / ``diversity_head``: mean std across the 8 seeds of the upper-face
  blendshapes (eyes, brows, cheeks, nose) / head angles, divided by the same spread of 8 redraws
  of the procedural targets of the same audio (``training.targets.redraw_targets``).
- ``seam_jerk_ratio``: mean |third difference| (per dimension, in units of the training std) of
  the stencils centred on a window join, over that of the stencils centred elsewhere (EmoDiff
  output, before the refiner).
- ``teacher_gap``: Fréchet distance between per-frame [motion, velocity] features (in units of
  the training std) of this model's samples (seeds 0-7) and the teacher's (seeds 100-107),
  divided by the teacher's own seed-to-seed distance (teacher seeds 0-7 vs 100-107). 1.0 means
  the few-step sampler is as close to the teacher as the teacher is to itself; target <= 1.1.
- ``ms_per_frame``: CPU time per output frame of one live stream on one thread (incl. refiner).
- ``blinks``: blink events (mean eyeBlink > 0.3) of the targets, of EmoDiff's raw output and of
  what the engine sends (after ``emostream.engine.blinks`` shaping): rate per minute, median
  length in frames, median peak (seed 0).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import linalg

from emostream.arkit import BLENDSHAPE_INDEX, EMOTIONS, MOUTH_INDICES, NUM_BLENDSHAPES, EmotionStyle
from emostream.engine.blinks import BlinkShaper, blink_stats
from emostream.engine.features import features_for
from emostream.engine.motion import TEACHER_WEIGHTS, MotionEngine, weights_path
from emostream.engine.sampler import WindowSampler
from emostream.errors import InputError
from emostream.models.emotion_classifier import load_classifier
from emostream.training.corpus import load_corpus
from emostream.training.schema import Utterance
from emostream.training.targets import redraw_targets
from emostream.training.train_emodiff import plot_curves

UPPER_INDICES = tuple(i for i in range(NUM_BLENDSHAPES) if i not in MOUTH_INDICES)
HEAD_INDICES = (52, 53, 54)
N_SEEDS = 8


@dataclass
class Generated:
    utt: Utterance
    feats: np.ndarray  # [T, F]
    raw: np.ndarray  # [8, T, 55] EmoDiff output, seeds 0..7
    final0: np.ndarray  # [T, 55] seed 0 after the refiner (== raw[0] without one)


def generate_seeds(
    engine: MotionEngine, feats: np.ndarray, style: EmotionStyle, seeds: Sequence[int]
) -> np.ndarray:
    ws = WindowSampler(
        engine.net,
        engine._mean,
        engine._std,
        engine._silence,
        engine.style_vector(style),
        seeds=tuple(seeds),
        steps=engine.steps,
        schedule=engine.schedule,
        guidance=engine.guidance,
    )
    a, _ = ws.push(feats)
    b, _ = ws.flush()
    return np.concatenate([a, b], axis=1)


def _refine(engine: MotionEngine, feats: np.ndarray, motion: np.ndarray, style: EmotionStyle) -> np.ndarray:
    if engine.refiner is None:
        return motion
    s = engine.refiner.new_stream(style)
    return np.concatenate([s.push(feats, motion), s.flush()], axis=0)


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to rows of a [N, d] and b [M, d]."""
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(c1 @ c2, disp=False)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))


def frame_features(seqs: Sequence[np.ndarray], std: np.ndarray) -> np.ndarray:
    """[motion, velocity] per frame in units of the training std, stacked over sequences."""
    rows = []
    for s in seqs:
        x = s / std
        rows.append(np.concatenate([x[1:], np.diff(x, axis=0)], axis=1))
    return np.concatenate(rows)


def seam_jerk_ratio(seqs: Sequence[np.ndarray], hop: int, std: np.ndarray) -> float:
    seam, inner = [], []
    for s in seqs:
        x = s / std
        if len(x) < 4:
            continue
        d3 = np.abs(x[3:] - 3 * x[2:-1] + 3 * x[1:-2] - x[:-3]).mean(1)  # stencil i..i+3, centre i+1.5
        joins = (np.arange(len(d3)) + 2) % hop == 0  # join between frames i+1 and i+2
        seam.append(d3[joins])
        inner.append(d3[~joins])
    s_, i_ = np.concatenate(seam), np.concatenate(inner)
    return float(s_.mean() / max(i_.mean(), 1e-12))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def load_eval_utterances(root: str | Path, real: bool, max_utts: int) -> list[Utterance]:
    split = "test_real" if real else "val"
    utts = list(load_corpus(root, split=split))
    if not utts:
        raise InputError(f"no utterances in split {split!r}", root)
    if len(utts) > max_utts:  # keep every emotion represented: round-robin over emotions
        by: dict[str, list[Utterance]] = {}
        for u in utts:
            by.setdefault(u.emotion.name, []).append(u)
        picked: list[Utterance] = []
        while len(picked) < max_utts:
            for name in sorted(by):
                if by[name] and len(picked) < max_utts:
                    picked.append(by[name].pop(0))
        utts = picked
    return utts


def _teacher_samples(
    teacher_path: Path, gens: Sequence[Generated], cache_dir: Path, smooth: float
) -> tuple[np.ndarray, np.ndarray]:
    """Frame features of teacher samples for seeds 0-7 and 100-107 (cached on disk)."""
    st = (
        teacher_path.with_name(teacher_path.name + ".safetensors")
        if teacher_path.suffix == ""
        else teacher_path
    )
    key = hashlib.sha1(
        json.dumps([str(st.resolve()), st.stat().st_mtime, [g.utt.uid for g in gens], smooth, 3]).encode()
    ).hexdigest()[:16]
    cache = cache_dir / f"teacher_{key}.npz"
    if cache.is_file():
        d = np.load(cache, allow_pickle=False)
        return d["a"], d["b"]
    teacher = MotionEngine.load(teacher_path, refiner=False, backend="onnx", smooth=smooth)
    a_rows, b_rows = [], []
    for g in gens:
        a_rows.append(generate_seeds(teacher, g.feats, g.utt.emotion, range(N_SEEDS)))
        b_rows.append(generate_seeds(teacher, g.feats, g.utt.emotion, range(100, 100 + N_SEEDS)))
    fa = frame_features([s for r in a_rows for s in r], teacher._std)
    fb = frame_features([s for r in b_rows for s in r], teacher._std)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, a=fa, b=fb)
    return fa, fb


def evaluate(
    ckpt: str | Path | None,
    data: str | Path,
    *,
    steps: int | None = None,
    real: bool = False,
    refiner: bool | str = True,
    classifier: str | Path | None = None,
    teacher: str | Path | None = None,
    max_utts: int = 40,
    n_gap: int = 16,
    plots: str | Path | None = None,
    backend: str = "torch",
    cache_dir: str | Path = "out/emodiff/cache",
    hop: int | None = None,
) -> dict[str, Any]:
    torch.set_num_threads(1)
    engine = MotionEngine.load(ckpt, steps=steps, refiner=refiner, backend=backend, hop=hop)
    clf, _ = load_classifier(classifier if classifier is not None else weights_path("emotion_classifier"))
    utts = load_eval_utterances(data, real, max_utts)
    gens: list[Generated] = []
    for u in utts:
        f = features_for(u.audio, u.fps)[: len(u.targets)]
        raw = generate_seeds(engine, f, u.emotion, range(N_SEEDS))
        gens.append(Generated(u, f, raw, _refine(engine, f, raw[0], u.emotion)))
    # accuracy-type metrics on seed 0
    mouth = np.concatenate(
        [np.abs(g.final0[:, MOUTH_INDICES] - g.utt.targets[:, MOUTH_INDICES]).ravel() for g in gens]
    )
    jaw = BLENDSHAPE_INDEX["jawOpen"]
    jaw_corr = _pearson(
        np.concatenate([g.final0[:, jaw] for g in gens]),
        np.concatenate([g.utt.targets[:, jaw] for g in gens]),
    )
    with torch.no_grad():
        preds = [int(clf(torch.from_numpy(g.final0[None].astype(np.float32))).argmax(1)[0]) for g in gens]
    acc = float(np.mean([p == g.utt.emotion.index for p, g in zip(preds, gens, strict=True)]))
    # diversity vs the targets' own redraws
    gen_up, gen_hd, tg_up, tg_hd = [], [], [], []
    for g in gens:
        red = np.stack([redraw_targets(g.utt, 1000 + s) for s in range(N_SEEDS)])[:, : len(g.utt.targets)]
        gen_up.append(g.raw[:, :, UPPER_INDICES].std(0).mean())
        gen_hd.append(g.raw[:, :, HEAD_INDICES].std(0).mean())
        tg_up.append(red[:, :, UPPER_INDICES].std(0).mean())
        tg_hd.append(red[:, :, HEAD_INDICES].std(0).mean())
    seam = seam_jerk_ratio([g.raw[0] for g in gens], engine.schedule.hop, engine._std)
    # teacher gap
    tpath = Path(teacher) if teacher is not None else None
    if tpath is None:
        root = engine.meta.get("root_teacher")
        tpath = (
            Path(root)
            if root and Path(str(root) + ".safetensors").exists()
            else weights_path(TEACHER_WEIGHTS)
        )
    sub = gens[:n_gap]
    fa, fb = _teacher_samples(tpath, sub, Path(cache_dir), engine.schedule.smooth)
    mine = frame_features([s for g in sub for s in g.raw], engine._std)
    fd_self, fd_model = frechet(fa, fb), frechet(mine, fb)
    # speed: one live stream, one thread, CPU time per output frame
    g0 = max(gens, key=lambda g: len(g.feats))
    s = engine.new_stream(0, g0.utt.emotion)
    c0 = time.process_time()
    n_out = 0
    for i in range(0, len(g0.feats), 2):  # 80 ms chunks
        n_out += len(s.push(g0.feats[i : i + 2]))
    n_out += len(s.flush())
    ms = (time.process_time() - c0) * 1000 / max(n_out, 1)
    if plots is not None:
        plot_per_emotion(gens, Path(plots), f"{engine.steps} steps")
    shaped = [
        BlinkShaper(engine.blinks, engine.fps).shape_frames(g.final0) if engine.blinks else g.final0
        for g in gens
    ]
    blinks = {
        "target": blink_stats([g.utt.targets for g in gens], engine.fps),
        "raw": blink_stats([g.raw[0] for g in gens], engine.fps),
        "engine": blink_stats(shaped, engine.fps),
    }
    return {
        "mouth_mae": float(mouth.mean()),
        "jaw_corr": jaw_corr,
        "emotion_acc": acc,
        "diversity_upper": float(np.mean(gen_up) / max(np.mean(tg_up), 1e-9)),
        "diversity_head": float(np.mean(gen_hd) / max(np.mean(tg_hd), 1e-9)),
        "seam_jerk_ratio": seam,
        "teacher_gap": fd_model / max(fd_self, 1e-12),
        "teacher_fd": fd_model,
        "teacher_self_fd": fd_self,
        "ms_per_frame": ms,
        "sampler_steps": engine.steps,
        "hop": engine.schedule.hop,
        "refiner": engine.refiner is not None,
        "backend": backend,
        "n_utterances": len(gens),
        "split": "test_real" if real else "val",
        "latency_ms": engine.latency_frames * 1000 / engine.fps,
        "blinks": blinks,
    }


def plot_per_emotion(gens: Sequence[Generated], out_dir: Path, label: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in EMOTIONS:
        g = next((g for g in gens if g.utt.emotion.name == name), None)
        if g is None:
            continue
        p = out_dir / f"curves_{name}.png"
        gen = np.concatenate([g.final0[None], g.raw[1:3]])
        plot_curves(gen, g.utt.targets, f"{g.utt.uid} ({name}, {label}): target black, 3 seeds", p)
        paths.append(p)
    return paths
