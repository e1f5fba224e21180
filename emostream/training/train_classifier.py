"""Training of the emotion classifier on corpus targets (random crops of 1-4 s, light noise).

Its accuracy on the held-out targets (``val`` split, whole utterances) is reported in the
checkpoint's meta and printed; ``eval motion`` uses it to judge generated sequences.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from emostream.errors import InputError
from emostream.models.emotion_classifier import ClassifierConfig, EmotionClassifier, save_classifier


@dataclass(frozen=True)
class ClassifierTrainConfig:
    steps: int = 1500
    batch: int = 64
    lr: float = 2e-3
    min_crop: int = 25
    max_crop: int = 100
    noise: float = 0.02  # std of additive noise on blendshapes during training
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batch(
    seqs: Sequence[np.ndarray], labels: np.ndarray, cfg: ClassifierTrainConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(rng.integers(cfg.min_crop, cfg.max_crop + 1))
    xs, ys = [], []
    for _ in range(cfg.batch):
        i = int(rng.integers(len(seqs)))
        s = seqs[i]
        if len(s) < n:
            s = np.concatenate([s, np.repeat(s[-1:], n - len(s), 0)])
        st = int(rng.integers(0, len(s) - n + 1))
        xs.append(s[st : st + n])
        ys.append(labels[i])
    x = np.stack(xs).astype(np.float32)
    x = x + rng.standard_normal(x.shape).astype(np.float32) * cfg.noise
    return torch.from_numpy(x), torch.from_numpy(np.asarray(ys, np.int64))


@torch.no_grad()
def accuracy(model: EmotionClassifier, seqs: Sequence[np.ndarray], labels: Sequence[int]) -> float:
    model.eval()
    hits = [
        int(model(torch.from_numpy(s[None].astype(np.float32))).argmax(1)[0]) == y
        for s, y in zip(seqs, labels, strict=True)
    ]
    return float(np.mean(hits)) if hits else float("nan")


def train_classifier(
    train_seqs: Sequence[np.ndarray],
    train_labels: Sequence[int],
    val_seqs: Sequence[np.ndarray],
    val_labels: Sequence[int],
    out: str | Path,
    cfg: ClassifierTrainConfig,
    *,
    progress: bool = True,
    extra_meta: dict[str, Any] | None = None,
) -> tuple[EmotionClassifier, dict[str, Any]]:
    if not train_seqs:
        raise InputError("no training sequences for the emotion classifier")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = EmotionClassifier(ClassifierConfig())
    allf = np.concatenate(train_seqs)
    with torch.no_grad():
        model.motion_mean.copy_(torch.from_numpy(allf.mean(0).astype(np.float32)))
        model.motion_std.copy_(torch.from_numpy(np.maximum(allf.std(0), 1e-2).astype(np.float32)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    labels = np.asarray(train_labels)
    it = range(cfg.steps)
    if progress:
        it = tqdm(it, desc="classifier", dynamic_ncols=True)
    t0, losses = time.time(), []
    model.train()
    for _ in it:
        x, y = _batch(train_seqs, labels, cfg, rng)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if progress:
            it.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")  # type: ignore[attr-defined]
    acc = accuracy(model, val_seqs, val_labels)
    train_acc = accuracy(model, train_seqs[:200], list(train_labels[:200]))
    meta = {
        "val_accuracy": acc,
        "train_accuracy": train_acc,
        "n_val": len(val_seqs),
        "n_train": len(train_seqs),
        "train": cfg.to_dict(),
        "train_seconds": round(time.time() - t0, 1),
        **(extra_meta or {}),
    }
    save_classifier(model, out, meta)
    return model, meta
