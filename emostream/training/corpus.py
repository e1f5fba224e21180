"""Build, store and load the training corpus.

Layout: ``DIR/manifest.json`` and ``DIR/shards/NNNNN.npz``. A shard holds the utterances of
one engine, rendered in order by one worker, so its bytes depend only on the build seed:

- ``audio`` int16[sum N] (16 kHz) and ``audio_offsets`` int64[n + 1]
- ``targets`` float32[sum T, 55] and ``target_offsets`` int64[n + 1]
- ``phone_start``/``phone_end`` int32, ``phone_id`` uint8 (index into manifest ``phones``) and
  ``phone_offsets`` int64[n + 1]
- ``meta`` uint8 (UTF-8 JSON list: uid, text, engine, voice, emotion, intensity, split, seed, fps)

Zip entries are written in sorted order with a fixed timestamp: same seed, same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import multiprocessing
import sys
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from emostream.arkit import EMOTIONS, MEAD_LEVELS, MOTION_DIM, EmotionStyle
from emostream.config import DEFAULT_FPS, SAMPLE_RATE, frames_covering
from emostream.errors import ConfigError, InputError
from emostream.training.engines import ENGINE_NAMES, create_engine
from emostream.training.engines.base import Job
from emostream.training.engines.real import is_test_prompt, read_prompts
from emostream.training.phones import PHONE_TO_VISEME, PHONES
from emostream.training.schema import Phone, Utterance
from emostream.training.targets import make_targets, prosody_from_audio
from emostream.training.text import sentence

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_PHONE_ID = {p: i for i, p in enumerate(PHONES)}


@dataclass(frozen=True)
class Preset:
    """How much of each engine to render: hours for TTS engines (planned from an estimated
    mean utterance length), prompt counts for real speech."""

    name: str
    hours: dict[str, float]
    real_train: int | None  # None: every prompt not held out
    real_test: int | None
    shard_size: int
    val_every: int = 20  # every 20th synthetic job goes to ``val``
    mean_seconds: dict[str, float] = field(
        default_factory=lambda: {"espeak": 2.6, "flite": 2.9, "festival": 3.2, "piper": 2.65}
    )


PRESETS: dict[str, Preset] = {
    "ci": Preset("ci", {"espeak": 0.011, "flite": 0.008, "festival": 0.003, "piper": 0.003},
                 real_train=3, real_test=3, shard_size=8),
    "small": Preset("small", {"espeak": 0.25, "flite": 0.2, "festival": 0.08, "piper": 0.12},
                    real_train=120, real_test=40, shard_size=48),
    "full": Preset("full", {"espeak": 2.1, "flite": 1.5, "festival": 0.55, "piper": 0.85},
                   real_train=None, real_test=None, shard_size=64),
}  # fmt: skip


def job_seed(seed: int, engine: str, index: int) -> int:
    ss = np.random.SeedSequence([seed, ENGINE_NAMES.index(engine), index])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _emotion(index: int) -> EmotionStyle:
    """Balanced: every 24 consecutive jobs cover the 8 emotions x 3 intensities once."""
    return EmotionStyle(EMOTIONS[index % 8], MEAD_LEVELS[(index // 8) % 3])


def plan_jobs(preset: Preset, seed: int, engines: list[str], voices: dict[str, tuple[str, ...]]) -> list[Job]:
    """Every utterance of the build, in a fixed order (depends only on preset and seed)."""
    jobs: list[Job] = []
    for engine in engines:
        if engine == "real":
            jobs += _plan_real(preset, seed)
            continue
        n = max(8, math.ceil(preset.hours[engine] * 3600 / preset.mean_seconds[engine]))
        vs = voices[engine]
        for i in range(n):
            s = job_seed(seed, engine, i)
            rng = np.random.default_rng(s)
            voice = vs[int(rng.integers(len(vs)))]
            split = "val" if i % preset.val_every == 3 else "train"
            jobs.append(
                Job(i, engine, voice, sentence(rng), _emotion(i + ENGINE_NAMES.index(engine)), split, s)
            )
    return jobs


def _plan_real(preset: Preset, seed: int) -> list[Job]:
    prompts = read_prompts()
    order = np.random.default_rng([seed, 991]).permutation(len(prompts))
    test = [prompts[i] for i in order if is_test_prompt(prompts[i][0])]
    train = [prompts[i] for i in order if not is_test_prompt(prompts[i][0])]
    test = test if preset.real_test is None else test[: preset.real_test]
    train = train if preset.real_train is None else train[: preset.real_train]
    chosen = sorted([(n, t, "test_real") for n, t in test] + [(n, t, "train_real") for n, t in train])
    return [
        Job(i, "real", "asterisk-allison", text, _emotion(i), split, job_seed(seed, "real", i), name)
        for i, (name, text, split) in enumerate(chosen)
    ]


# ----------------------------------------------------------------------------- shards


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            zf.writestr(info, arr.getvalue(), compresslevel=6)
    return buf.getvalue()


def write_shard(path: Path, utts: list[Utterance]) -> None:
    """Write utterances to one shard file (reproducible bytes)."""

    def offsets(lengths: list[int]) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    phones = [p for u in utts for p in u.phones]
    meta = [
        {"uid": u.uid, "text": u.text, "engine": u.engine, "voice": u.voice,
         "emotion": u.emotion.name, "intensity": round(float(u.emotion.intensity), 6),
         "split": u.split, "seed": u.seed, "fps": u.fps}
        for u in utts
    ]  # fmt: skip
    audio = [_to_int16(u.audio) for u in utts]
    arrays = {
        "audio": np.concatenate(audio) if audio else np.zeros(0, np.int16),
        "audio_offsets": offsets([len(a) for a in audio]),
        "targets": (np.concatenate([u.targets for u in utts]) if utts else np.zeros((0, MOTION_DIM))).astype(
            np.float32
        ),
        "target_offsets": offsets([len(u.targets) for u in utts]),
        "phone_start": np.array([p.start for p in phones], np.int32),
        "phone_end": np.array([p.end for p in phones], np.int32),
        "phone_id": np.array([_PHONE_ID[p.phone] for p in phones], np.uint8),
        "phone_offsets": offsets([len(u.phones) for u in utts]),
        "meta": np.frombuffer(json.dumps(meta, sort_keys=True, ensure_ascii=False).encode(), np.uint8),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(_npz_bytes(arrays))
    tmp.replace(path)


def read_shard(path: Path, phones: tuple[str, ...] = PHONES) -> Iterator[Utterance]:
    try:
        z = np.load(path, allow_pickle=False)
        meta = json.loads(bytes(z["meta"]).decode())
        audio, ao = z["audio"], z["audio_offsets"]
        targets, to = z["targets"], z["target_offsets"]
        ps, pe, pid, po = z["phone_start"], z["phone_end"], z["phone_id"], z["phone_offsets"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as e:
        raise InputError(f"unreadable corpus shard ({e})", path) from e
    for i, m in enumerate(meta):
        ph = [
            Phone(int(ps[j]), int(pe[j]), phones[pid[j]], PHONE_TO_VISEME.get(phones[pid[j]], "sil"))
            for j in range(po[i], po[i + 1])
        ]
        yield Utterance(
            uid=m["uid"], audio=audio[ao[i] : ao[i + 1]].astype(np.float32) / 32768.0,
            phones=ph, targets=np.array(targets[to[i] : to[i + 1]], np.float32), fps=m["fps"],
            emotion=EmotionStyle(m["emotion"], m["intensity"]), engine=m["engine"],
            voice=m["voice"], text=m["text"], split=m["split"], seed=m["seed"],
        )  # fmt: skip


def read_manifest(root: str | Path) -> dict[str, Any]:
    path = Path(root) / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError("no corpus manifest here (build one with `emostream data build`)", path) from e
    except (OSError, ValueError) as e:
        raise InputError(f"unreadable corpus manifest ({e})", path) from e
    if manifest.get("format") != FORMAT_VERSION:
        raise InputError(f"unsupported corpus format {manifest.get('format')!r}", path)
    return manifest


def load_corpus(root: str | Path, split: str | None = None) -> Iterator[Utterance]:
    """Yield every utterance of the corpus at ``root`` (optionally one split), shard by shard."""
    manifest = read_manifest(root)
    phones = tuple(manifest["phones"])
    for shard in manifest["shards"]:
        if split is not None and not shard["splits"].get(split):
            continue
        for utt in read_shard(Path(root) / shard["file"], phones):
            if split is None or utt.split == split:
                yield utt


def corpus_fingerprint(root: str | Path) -> str:
    """SHA-256 over the manifest and every shard's bytes: caches of prepared items key on it, so
    a corpus rebuilt in place (new phones or targets, same options) is never served stale."""
    h = hashlib.sha256()
    h.update((Path(root) / "manifest.json").read_bytes())
    for shard in read_manifest(root)["shards"]:
        with open(Path(root) / shard["file"], "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- build

_ENGINES: dict[str, Any] = {}


def _engine(name: str) -> Any:
    if name not in _ENGINES:
        _ENGINES[name] = create_engine(name)
    return _ENGINES[name]


def render_job(job: Job, fps: int = DEFAULT_FPS) -> Utterance:
    """Speech + phones from the engine, then targets drawn with the job's seed."""
    speech = _engine(job.engine).render(job)
    # Targets are drawn from the audio exactly as stored (int16), so redraw_targets(utt,
    # utt.seed) reproduces them bit for bit.
    speech.audio = _quantize(speech.audio)
    n = frames_covering(len(speech.audio), fps)
    prosody = prosody_from_audio(speech.audio, n, fps)
    targets = make_targets(speech.phones, n, fps, job.emotion, prosody, job.seed)
    return Utterance(
        uid=f"{job.engine}-{job.index:06d}", audio=speech.audio, phones=speech.phones,
        targets=targets, fps=fps, emotion=job.emotion, engine=job.engine, voice=job.voice,
        text=job.text, split=job.split, seed=job.seed,
    )  # fmt: skip


def _quantize(audio: np.ndarray) -> np.ndarray:
    """float32 → the int16 the shard stores → float32 (what ``load_corpus`` returns)."""
    return _to_int16(audio).astype(np.float32) / 32768.0


def _to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _build_shard(args: tuple[int, list[Job], str, int]) -> dict[str, Any]:
    """Render one shard's jobs in order and write it; returns its manifest entry."""
    index, jobs, out_dir, fps = args
    engine = _engine(jobs[0].engine)
    if hasattr(engine, "reset"):
        engine.reset(jobs[0].seed)  # noise generators restart per shard → reproducible bytes
    utts: list[Utterance] = []
    failures: list[str] = []
    for job in jobs:
        try:
            utt = render_job(job, fps)
        except Exception as e:  # one bad sentence must not sink the build; it is recorded
            failures.append(f"{job.engine}-{job.index:06d}: {type(e).__name__}: {e}")
            continue
        if len(utt.audio) < SAMPLE_RATE // 5 or not any(p.viseme != "sil" for p in utt.phones):
            failures.append(f"{utt.uid}: no speech rendered for {job.text!r}")
            continue
        utts.append(utt)
    name = f"shards/{index:05d}.npz"
    write_shard(Path(out_dir) / name, utts)
    return shard_entry(name, jobs[0].engine, utts, failures)


def shard_entry(name: str, engine: str, utts: list[Utterance], failures: list[str]) -> dict[str, Any]:
    """A shard's manifest entry (sizes per voice / emotion / split)."""
    secs: dict[str, dict[str, float]] = {k: defaultdict(float) for k in ("voice", "emotion", "split")}
    for u in utts:
        d = len(u.audio) / SAMPLE_RATE
        secs["voice"][f"{u.engine}/{u.voice}"] += d
        secs["emotion"][f"{u.emotion.name}:{u.emotion.intensity:.2f}"] += d
        secs["split"][u.split] += d
    return {
        "file": name, "engine": engine, "utterances": len(utts),
        "seconds": round(sum(len(u.audio) for u in utts) / SAMPLE_RATE, 4),
        "splits": {k: sum(u.split == k for u in utts) for k in sorted({u.split for u in utts})},
        "seconds_by": {k: {kk: round(vv, 4) for kk, vv in sorted(v.items())} for k, v in secs.items()},
        "failures": failures,
    }  # fmt: skip


@dataclass
class BuildResult:
    manifest: dict[str, Any]
    skipped: dict[str, str]


def build_corpus(
    out: str | Path,
    preset: str = "ci",
    seed: int = 0,
    workers: int = 1,
    engines: list[str] | None = None,
    fps: int = DEFAULT_FPS,
    progress: bool = True,
) -> BuildResult:
    """Render the corpus into ``out`` (created; existing shards are replaced)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    wanted = list(ENGINE_NAMES) if engines is None else engines
    for name in wanted:
        if name not in ENGINE_NAMES:
            raise ConfigError(f"unknown engine {name!r}; choose from {', '.join(ENGINE_NAMES)}")
    p = PRESETS[preset]
    skipped: dict[str, str] = {}
    usable: list[str] = []
    voices: dict[str, tuple[str, ...]] = {}
    licences: dict[str, str] = {}
    for name in wanted:
        eng = create_engine(name)
        why = eng.missing()
        if why is not None:
            skipped[name] = why
            msg = f"skipping speech engine {name!r}: {why}"
            log.warning(msg)
            print(f"emostream: warning: {msg}", file=sys.stderr)
            continue
        usable.append(name)
        voices[name], licences[name] = eng.voices, eng.licence
    if not usable:
        raise ConfigError("no speech engine is available; see the warnings above")
    jobs = plan_jobs(p, seed, usable, voices)
    tasks: list[tuple[int, list[Job], str, int]] = []
    for name in usable:
        mine = [j for j in jobs if j.engine == name]
        for k in range(0, len(mine), p.shard_size):
            tasks.append((len(tasks), mine[k : k + p.shard_size], str(out), fps))
    root = Path(out)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    for old in (root / "shards").glob("*.npz"):
        old.unlink()

    bar = tqdm(total=len(jobs), unit="utt", desc="data build", disable=not progress, file=sys.stderr)
    entries: list[dict[str, Any]] = []
    if workers <= 1:
        for t in tasks:
            entries.append(_build_shard(t))
            bar.update(len(t[1]))
    else:
        # Longest shards first (piper, festival) so the pool finishes together.
        order = sorted(tasks, key=lambda t: -_cost(t[1]))
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for entry in pool.imap_unordered(_build_shard, order):
                entries.append(entry)
                bar.update(entry["utterances"] + len(entry["failures"]))
    bar.close()
    entries.sort(key=lambda e: e["file"])
    manifest = _manifest(entries, p, seed, usable, engines, skipped, licences, fps)
    write_manifest(root, manifest)
    return BuildResult(manifest, skipped)


def write_manifest(root: str | Path, manifest: dict[str, Any]) -> None:
    path = Path(root) / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")


_COST = {"piper": 4.0, "festival": 3.0, "real": 1.0, "espeak": 0.3, "flite": 0.5}


def _cost(jobs: list[Job]) -> float:
    return _COST.get(jobs[0].engine, 1.0) * len(jobs)


_SOURCE_LICENCES = {
    "text": "sentences generated by emostream (templates + CMU dictionary words, BSD-2)",
    "targets": "procedural ARKit targets generated by emostream",
}


def _manifest(
    entries: list[dict[str, Any]], p: Preset, seed: int, usable: list[str],
    engines_arg: list[str] | None, skipped: dict[str, str], licences: dict[str, str], fps: int,
) -> dict[str, Any]:  # fmt: skip
    command = f"emostream data build --preset {p.name} --seed {seed}"
    if engines_arg is not None:
        command += "".join(f" --engine {e}" for e in engines_arg)
    return make_manifest(
        entries, preset=p.name, seed=seed, command=command, engines=usable, skipped=skipped,
        licences={**{k: licences[k] for k in sorted(licences)}, **_SOURCE_LICENCES}, fps=fps,
    )  # fmt: skip


def make_manifest(
    entries: list[dict[str, Any]], *, preset: str, seed: int, command: str, engines: list[str],
    skipped: dict[str, str], licences: dict[str, str], fps: int,
) -> dict[str, Any]:  # fmt: skip
    """The manifest for shards described by ``entries`` (see ``shard_entry``)."""

    def hours(group: str) -> dict[str, float]:
        acc: dict[str, float] = defaultdict(float)
        for e in entries:
            for k, v in e["seconds_by"][group].items():
                acc[k] += v
        return {k: round(v / 3600, 5) for k, v in sorted(acc.items())}

    by_engine: dict[str, float] = defaultdict(float)
    for e in entries:
        by_engine[e["engine"]] += e["seconds"]
    return {
        "format": FORMAT_VERSION,
        "preset": preset,
        "seed": seed,
        "seeds": {"build": seed, "job_seed": "SeedSequence([build_seed, engine_index, job_index])"},
        "command": command,
        "fps": fps,
        "sample_rate": SAMPLE_RATE,
        "phones": list(PHONES),
        "engines": engines,
        "skipped_engines": skipped,
        "licences": licences,
        "utterances": sum(e["utterances"] for e in entries),
        "hours": round(sum(e["seconds"] for e in entries) / 3600, 5),
        "hours_by_engine": {k: round(v / 3600, 5) for k, v in sorted(by_engine.items())},
        "hours_by_voice": hours("voice"),
        "hours_by_emotion": hours("emotion"),
        "hours_by_split": hours("split"),
        "failures": [f for e in entries for f in e["failures"]],
        "shards": [{k: e[k] for k in ("file", "engine", "utterances", "seconds", "splits")} for e in entries],
    }
