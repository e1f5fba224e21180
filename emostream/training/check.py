"""Corpus sanity checks: sizes, balance and phone/audio alignment judged by Silero VAD."""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import maximum_filter1d

from emostream.config import SAMPLE_RATE, frames_covering
from emostream.engine.vad import speech_probs
from emostream.training.corpus import read_manifest, read_shard
from emostream.training.schema import Utterance

#: An utterance is misaligned when VAD hears speech in less than this share of the frames its
#: speech phones cover (VAD is dilated by one frame: phone edges are soft)...
MIN_SPEECH_COVERAGE = 0.8
#: ... or hears speech in more than this share of its long (>= 300 ms) inner pauses.
MAX_PAUSE_SPEECH = 0.5
LONG_PAUSE = int(0.3 * SAMPLE_RATE)


@dataclass(frozen=True)
class Alignment:
    speech_coverage: float  # share of speech-phone frames VAD calls speech
    pause_speech: float  # share of long-pause frames VAD calls speech (nan: no long pause)


def _frames(start: int, end: int, fps: int) -> range:
    return range(start * fps // SAMPLE_RATE, -((-end * fps) // SAMPLE_RATE))


def alignment(utt: Utterance, probs: np.ndarray) -> Alignment:
    """Compare the phone labels with per-frame VAD probabilities of the utterance's audio."""
    speech = probs > 0.5
    dilated = maximum_filter1d(speech.astype(np.uint8), 3).astype(bool)
    eroded = ~maximum_filter1d((~speech).astype(np.uint8), 3).astype(bool)
    lab = np.zeros(len(probs), bool)
    pause = np.zeros(len(probs), bool)
    last = utt.phones[-1].end if utt.phones else 0
    for p in utt.phones:
        fr = _frames(p.start, p.end, utt.fps)
        if p.viseme != "sil":
            lab[fr.start : fr.stop] = True
        elif p.end - p.start >= LONG_PAUSE and p.start > 0 and p.end < last:
            pause[fr.start + 2 : fr.stop - 2] = True
    cov = float(dilated[lab].mean()) if lab.any() else 0.0
    ps = float(eroded[pause].mean()) if pause.any() else float("nan")
    return Alignment(cov, ps)


def _check_shard(args: tuple[str, tuple[str, ...], bool]) -> dict[str, Any]:
    """Partial report of one shard (sizes in seconds, problems, VAD coverages)."""
    path, phones, vad = args
    acc: dict[str, Any] = {k: defaultdict(float) for k in ("engine", "emotion", "level", "split")}
    problems: list[str] = []
    cover: dict[str, list[float]] = defaultdict(list)
    n = 0
    for utt in read_shard(Path(path), phones):
        n += 1
        d = len(utt.audio) / SAMPLE_RATE
        acc["engine"][utt.engine] += d
        acc["emotion"][utt.emotion.name] += d
        acc["level"][f"{utt.emotion.name}:{utt.emotion.intensity:.2f}"] += d
        acc["split"][utt.split] += d
        problems += _structural(utt)
        if vad and utt.phones:
            a = alignment(utt, speech_probs(utt.audio, utt.fps))
            cover[utt.engine].append(a.speech_coverage)
            if a.speech_coverage < MIN_SPEECH_COVERAGE:
                problems.append(
                    f"{utt.uid}: VAD hears silence in {1 - a.speech_coverage:.0%} of the frames "
                    "labelled as speech (phones misaligned?)"
                )
            if a.pause_speech == a.pause_speech and a.pause_speech > MAX_PAUSE_SPEECH:
                problems.append(
                    f"{utt.uid}: VAD hears speech in {a.pause_speech:.0%} of a long labelled pause"
                )
    return {"n": n, "acc": acc, "problems": problems, "cover": cover}


def check_corpus(root: str | Path, *, vad: bool = True, workers: int = 1) -> dict[str, Any]:
    """Report of the corpus at ``root``: ``{"hours", "utterances", "by_engine", "by_emotion",
    "real_speech_hours", "problems", ...}``. ``problems`` lists one line per defect."""
    manifest = read_manifest(root)
    phones = tuple(manifest["phones"])
    tasks = [(str(Path(root) / sh["file"]), phones, vad) for sh in manifest["shards"]]
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_check_shard, tasks, chunksize=1)
    else:
        parts = [_check_shard(t) for t in tasks]
    total: dict[str, dict[str, float]] = {
        k: defaultdict(float) for k in ("engine", "emotion", "level", "split")
    }
    cover: dict[str, list[float]] = defaultdict(list)
    problems: list[str] = []
    n = 0
    for part in parts:
        n += part["n"]
        problems += part["problems"]
        for k, v in part["acc"].items():
            for kk, vv in v.items():
                total[k][kk] += vv
        for k, v in part["cover"].items():
            cover[k] += v
    if n != manifest["utterances"]:
        problems.append(f"manifest lists {manifest['utterances']} utterances, shards hold {n}")

    def hours(acc: dict[str, float]) -> dict[str, float]:
        return {k: round(v / 3600, 4) for k, v in sorted(acc.items())}

    by_engine = total["engine"]
    return {
        "hours": round(sum(by_engine.values()) / 3600, 4),
        "utterances": n,
        "by_engine": hours(by_engine),
        "by_emotion": hours(total["emotion"]),
        "by_emotion_intensity": hours(total["level"]),
        "by_split": hours(total["split"]),
        "real_speech_hours": round((by_engine.get("real", 0.0)) / 3600, 4),
        "vad_speech_coverage": {k: round(float(np.mean(v)), 4) for k, v in sorted(cover.items())},
        "skipped_engines": manifest.get("skipped_engines", {}),
        "build_failures": len(manifest.get("failures", [])),
        "problems": problems,
    }


def _structural(utt: Utterance) -> list[str]:
    out: list[str] = []
    n = len(utt.audio)
    if not np.isfinite(utt.audio).all() or not np.isfinite(utt.targets).all():
        out.append(f"{utt.uid}: NaN or infinite values in audio or targets")
    if len(utt.targets) != frames_covering(n, utt.fps):
        out.append(f"{utt.uid}: {len(utt.targets)} target frames for {n} samples at {utt.fps} fps")
    prev = 0
    for p in utt.phones:
        if p.end > n:
            out.append(f"{utt.uid}: phone {p.phone!r} ends at sample {p.end}, beyond the audio ({n})")
            break
        if p.start != prev or p.end <= p.start:
            out.append(f"{utt.uid}: phones do not tile the audio at sample {p.start}")
            break
        prev = p.end
    else:
        if utt.phones and prev != n:
            out.append(f"{utt.uid}: phones end at sample {prev}, audio at {n}")
    if utt.engine != "livelink" and not any(p.viseme != "sil" for p in utt.phones):
        out.append(f"{utt.uid}: no speech phones")
    return out
