"""Import Live Link Face recordings (iPhone captures: ``NAME.csv`` + the matching audio, e.g.
the take's ``NAME.mov``/``.wav``) into the corpus format, so users train on their own data.

Targets are the recorded ARKit curves on the 25/30 fps grid; phones come from pocketsphinx:
forced alignment when a transcript ``NAME.txt`` sits next to the CSV, else all-phone
recognition (no transcript needed); pause edges are then checked against the audio's energy
(``pauses.tighten_pauses``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from emostream.arkit import EmotionStyle
from emostream.config import DEFAULT_FPS, SAMPLE_RATE, frames_covering
from emostream.errors import InputError
from emostream.livelink import read_livelink_csv
from emostream.media.audio import load_audio
from emostream.training.corpus import make_manifest, shard_entry, write_manifest, write_shard
from emostream.training.engines.real import force_align, normalize, pcm16
from emostream.training.pauses import FRAME, tighten_pauses
from emostream.training.phones import SIL, arpabet_to_phone, finalize, make_phone
from emostream.training.schema import SPLITS, Phone, Utterance

log = logging.getLogger(__name__)
AUDIO_SUFFIXES = (".wav", ".mov", ".mp4", ".m4a", ".aac", ".flac", ".mp3", ".ogg")
#: Calibration takes the app writes beside a recording; they hold no speech.
_SKIP_SUFFIXES = ("_cal", "_neutral", "_calibration")


def find_takes(src: str | Path) -> list[tuple[Path, Path]]:
    """(csv, audio) pairs under ``src`` (recursively), sorted. Clear errors for an unreadable
    folder, no CSV at all, or a CSV without audio."""
    root = Path(src)
    if not root.exists():
        raise InputError("Live Link folder not found", root)
    if not root.is_dir():
        raise InputError("not a folder (give the folder holding the Live Link Face takes)", root)
    try:
        csvs = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".csv" and p.is_file())
    except PermissionError as e:
        raise InputError(f"Live Link folder is not readable ({e.strerror})", root) from e
    csvs = [p for p in csvs if not p.stem.lower().endswith(_SKIP_SUFFIXES)]
    if not csvs:
        raise InputError("no Live Link Face CSV recordings (*.csv) in this folder", root)
    takes: list[tuple[Path, Path]] = []
    for csv in csvs:
        audio = next((csv.with_suffix(s) for s in AUDIO_SUFFIXES if csv.with_suffix(s).is_file()), None)
        if audio is None:
            audio = next(
                (q for q in sorted(csv.parent.glob(csv.stem + ".*")) if q.suffix.lower() in AUDIO_SUFFIXES),
                None,
            )
        if audio is None:
            raise InputError(
                f"no audio next to this recording (expected {csv.stem} with one of "
                f"{', '.join(AUDIO_SUFFIXES)})",
                csv,
            )
        takes.append((csv, audio))
    return takes


def recognize_phones(audio: np.ndarray, transcript: str | None) -> list[Phone]:
    """Phones of 16 kHz speech by pocketsphinx: aligned to ``transcript`` if given, else
    all-phone recognition."""
    # deferred: pocketsphinx (heavy), only when aligning real speech
    from pocketsphinx import Config, Decoder, get_model_path

    phones: list[Phone] = []
    if transcript:
        d = Decoder(Config(samprate=SAMPLE_RATE, loglevel="FATAL"))
        alignment = force_align(d, audio, normalize(transcript))
        if alignment is None:
            raise InputError(
                "pocketsphinx could not align the transcript to the audio (a word missing from its "
                "dictionary, or speech that does not match the text)"
            )
        for word in alignment:
            for ph in word:
                name = arpabet_to_phone(ph.name) or SIL
                phones.append(make_phone(ph.start * FRAME, (ph.start + ph.duration) * FRAME, name))
    else:
        lm = str(Path(get_model_path()) / "en-us" / "en-us-phone.lm.bin")
        d = Decoder(
            Config(samprate=SAMPLE_RATE, allphone=lm, loglevel="FATAL", lw=2.0, beam=1e-20, pbeam=1e-20)
        )
        d.start_utt()
        d.process_raw(pcm16(audio), full_utt=True)
        d.end_utt()
        for seg in d.seg():
            name = arpabet_to_phone(seg.word) or SIL
            phones.append(make_phone(seg.start_frame * FRAME, (seg.end_frame + 1) * FRAME, name))
    return tighten_pauses(finalize(phones, len(audio)), audio)


def import_take(
    csv: Path, audio_path: Path, *, fps: int, emotion: EmotionStyle, split: str,
    swap_mouth_lr: bool = False, phones: bool = True, index: int = 0,
) -> Utterance:  # fmt: skip

    clip = read_livelink_csv(csv, fps=fps, swap_mouth_lr=swap_mouth_lr)
    audio = load_audio(audio_path)
    n = frames_covering(len(audio), fps)
    motion = clip.motion
    if len(motion) < n:  # capture stopped before the audio: hold the last pose
        motion = np.concatenate([motion, np.repeat(motion[-1:], n - len(motion), axis=0)])
    motion = np.ascontiguousarray(motion[:n], dtype=np.float32)
    transcript_path = csv.with_suffix(".txt")
    transcript = transcript_path.read_text(encoding="utf-8").strip() if transcript_path.is_file() else None
    ph = recognize_phones(audio, transcript) if phones else finalize([], len(audio))
    return Utterance(
        uid=f"livelink-{index:06d}", audio=audio.astype(np.float32), phones=ph, targets=motion,
        fps=fps, emotion=emotion, engine="livelink", voice=csv.stem, text=transcript or "",
        split=split, seed=0,
    )  # fmt: skip


def import_livelink(
    src: str | Path, out: str | Path, *, fps: int = DEFAULT_FPS,
    emotion: EmotionStyle | None = None, split: str = "train_real", swap_mouth_lr: bool = False,
    phones: bool = True, shard_size: int = 32,
) -> dict[str, Any]:  # fmt: skip
    """Convert every take under ``src`` and write shards + manifest to ``out``."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    takes = find_takes(src)
    style = emotion or EmotionStyle("neutral", 1.0)
    root = Path(out)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    batch: list[Utterance] = []
    for k, (csv, audio) in enumerate(takes):
        batch.append(import_take(csv, audio, fps=fps, emotion=style, split=split,
                                 swap_mouth_lr=swap_mouth_lr, phones=phones, index=k))  # fmt: skip
        if len(batch) == shard_size or k == len(takes) - 1:
            name = f"shards/{len(entries):05d}.npz"
            write_shard(root / name, batch)
            entries.append(shard_entry(name, "livelink", batch, []))
            batch = []
    manifest = make_manifest(
        entries, preset="livelink", seed=0,
        command=f"emostream data import-livelink {Path(src).name} --split {split}",
        engines=["livelink"], skipped={}, fps=fps,
        licences={"livelink": f"user recordings imported from {Path(src).name} (user's own licence)"},
    )  # fmt: skip
    write_manifest(root, manifest)
    return manifest
