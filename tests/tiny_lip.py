"""Lip-refiner test helpers: chunked streaming, noise-burst utterances and a one-shard corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, MOTION_DIM, EmotionStyle
from emostream.config import SAMPLE_RATE, frames_covering
from emostream.engine.lip import LipRefiner
from emostream.training.schema import Phone, Utterance

JAW = BLENDSHAPE_INDEX["jawOpen"]


def chunked_refine(
    refiner: LipRefiner, feats: np.ndarray, motion: np.ndarray, sizes: list[int], style: str = "happy:0.7"
) -> np.ndarray:
    """The refined motion with the input pushed in chunks of ``sizes`` (then the rest), flushed."""
    s = refiner.new_stream(style)
    out, i = [], 0
    for n in sizes:
        out.append(s.push(feats[i : i + n], motion[i : i + n]))
        i += n
    out += [s.push(feats[i:], motion[i:]), s.flush()]
    return np.concatenate(out)


def noise_utt(seed: int, split: str = "train") -> Utterance:
    """Noise bursts ("speech", jaw open) separated by silences (jaw closed)."""
    rng = np.random.default_rng(seed)
    audio, phones, pos = [], [], 0
    for _ in range(int(rng.integers(3, 6))):
        for kind in ("sil", "aa"):
            n = int(rng.integers(2400, 8000))
            amp = 0.0 if kind == "sil" else 0.2
            audio.append((amp * rng.standard_normal(n)).astype(np.float32))
            phones.append(Phone(pos, pos + n, kind, kind))
            pos += n
    a = np.concatenate(audio)
    t = frames_covering(len(a), 25)
    targets = np.zeros((t, MOTION_DIM), np.float32)
    for p in phones:
        if p.viseme == "aa":
            targets[p.start * 25 // SAMPLE_RATE : p.end * 25 // SAMPLE_RATE, JAW] = 0.6
    targets[:, 50] = 0.3  # something non-mouth
    return Utterance(
        f"u{seed}", a, phones, targets, 25, EmotionStyle("happy", 0.5), "test", "v", "", split, seed
    )


def with_bilabial(u: Utterance) -> Utterance:
    k = next(i for i, p in enumerate(u.phones) if p.viseme == "aa")
    p = u.phones[k]
    u.phones[k] = Phone(p.start, p.end, "m", "PP")
    return u


def tiny_lip_corpus(root: Path) -> Path:
    """A corpus at ``root``: 2 train, 1 val and 4 train_real utterances, each with one bilabial."""
    from emostream.training.corpus import make_manifest, shard_entry, write_manifest, write_shard

    utts = [with_bilabial(noise_utt(s, "train")) for s in range(2)] + [with_bilabial(noise_utt(2, "val"))]
    utts += [with_bilabial(noise_utt(s + 3, "train_real")) for s in range(4)]
    for u in utts[3:]:
        u.engine = "real"
    (root / "shards").mkdir(parents=True)
    write_shard(root / "shards" / "00000.npz", utts)
    entry = shard_entry("shards/00000.npz", "test", utts, [])
    write_manifest(root, make_manifest([entry], preset="t", seed=0, command="t", engines=["test"],
                                       skipped={}, licences={}, fps=25))  # fmt: skip
    return root
