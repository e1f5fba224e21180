"""Training of the lip refiner (``emostream train lip``).

Data: every utterance of the ``train`` (synthetic) and ``train_real`` (real speech, aligned)
splits; ``val`` for validation. Audio features are computed once per utterance for the clean audio
and for ``augment_copies`` augmented versions (``emostream.training.augment``: noise, reverb, gain,
band-limiting, codec, resampling), and a random version is drawn for each sample.

A sample is a crop of an utterance (starting at frame 0 half of the time, since streams start with
a zero LSTM state). The network hears ``lookahead_frames`` frames past the crop (the utterance's last
feature frame repeated past its end, exactly as ``LipStream.flush`` pads), and its outputs
``y[:, L:]`` are compared with the crop's mouth targets. The style is the utterance's label and
intensity, or (``clip_prob``) a reference clip: the non-mouth target channels of another utterance
of the same emotion, whose encoding is also pulled onto the label vector (so both paths agree).

Prior input (``LipRefinerConfig.prior_input``): each feature version also carries the mouth the
shipped EmoDiff sampler generates from it (``add_priors``; the same streaming engine the refiner
sits behind, its own seed per version), aligned as the engine feeds it: step ``s`` of a crop gets
the prior of frame ``s - L`` (zeros before the utterance's first frame).

Loss: weighted MSE (+ ``l1_weight`` · weighted L1) on the 27 mouth values (jawOpen, mouthClose
and the lip rolls/presses weigh more: they decide closure) + a velocity term + the lip-gap and
closure-gate terms + (``rest_weight``) a hinge pulling jaw and lip gap under the rest thresholds
wherever the target is at rest. Adam, cosine schedule, gradient clipping, seeded.

Generalisation to real speech (one speaker, ~12 min in ``train_real``, memorised otherwise):
``feat_aug_prob`` perturbs a sample's features as a different speaker / channel would (mel-axis
warp, spectral tilt, band masks; ``perturb_features``), real utterances can get more augmented copies
(``real_copies``), and part of ``train_real`` can be held out (``hold_out_real``) as a real-speech
validation set: its bilabial closure is logged during training and ``calibrate_gate`` picks the
closure-gate calibration on it and on synthetic ``val`` (``test_real`` is never used).
Checkpoints (``OUT.safetensors`` + ``OUT.json``) every ``ckpt_every`` steps with the optimizer state
in ``OUT.optim.safetensors``: re-running the same command resumes. Curves: ``OUT.curves.png``.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from emostream.arkit import BLENDSHAPE_INDEX, EMOTIONS, MOUTH_INDICES, MOUTH_SLICE, NUM_MOUTH, EmotionStyle
from emostream.config import DEFAULT_SEED, SAMPLE_RATE
from emostream.engine.features import N_MELS, features_for
from emostream.engine.motion import MotionEngine
from emostream.errors import ConfigError, InputError
from emostream.models.lip_ensemble import LipEnsemble, LipNet
from emostream.models.lip_refiner import (
    CLIP_CHANNELS,
    LipRefiner,
    LipRefinerConfig,
    load_lip_checkpoint,
    save_lip_checkpoint,
)
from emostream.models.weights import checkpoint_paths
from emostream.training.augment import augment
from emostream.training.corpus import load_corpus
from emostream.training.eval_lip import CLOSED_GAP, pad_utterance
from emostream.training.schema import Utterance

log = logging.getLogger(__name__)

TRAIN_SPLITS = ("train", "train_real")
VAL_SPLIT = "val"
#: Mouth channels that decide lip closure weigh more in the loss.
_JAW = MOUTH_INDICES.index(BLENDSHAPE_INDEX["jawOpen"])
_CLOSE = MOUTH_INDICES.index(BLENDSHAPE_INDEX["mouthClose"])
_ROLL = MOUTH_INDICES.index(BLENDSHAPE_INDEX["mouthRollLower"])
_HEAVY = {"jawOpen": 3.0, "mouthClose": 2.0, "mouthRollLower": 2.0, "mouthRollUpper": 2.0}


@dataclass(frozen=True)
class TrainLipConfig:
    steps: int = 3000
    batch: int = 16
    crop_frames: int = 150  # 6 s at 25 fps
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    augment_copies: int = 2  # augmented feature versions per utterance (plus the clean one)
    clean_prob: float = 0.35  # chance of the clean version
    real_share: float = 0.3  # share of each batch drawn from real speech (if any)
    clip_prob: float = 0.5  # chance of a reference-clip style instead of the label
    align_weight: float = 0.1  # reference-clip → label vector alignment
    velocity_weight: float = 0.5
    gap_weight: float = 2.0  # lip gap jawOpen − mouthClose
    gate_weight: float = 0.05  # lip-closure gate (BCE)
    bilabial_weight: float = 4.0  # extra weight of bilabial-closure frames in the gate loss
    rest_weight: float = 0.0  # hinge: jaw / lip gap under the rest thresholds where the target rests
    feat_aug_prob: float = 0.0  # chance of a speaker/channel feature perturbation per sample
    l1_weight: float = 0.0  # weighted |error| term beside the MSE (the mouth_mae metric is an L1)
    ckpt_every: int = 250
    eval_every: int = 250
    max_val: int = 64  # validation utterances
    seed: int = DEFAULT_SEED
    threads: int = 1
    device: str = "cpu"
    model: dict[str, Any] = field(default_factory=dict)  # LipRefinerConfig overrides

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.crop_frames < 8:
            raise ConfigError(f"bad lip training sizes: steps={self.steps} batch={self.batch}")
        if not 0.0 <= self.real_share <= 1.0:
            raise ConfigError(f"real_share must be in [0, 1], got {self.real_share}")
        if not 0.0 <= self.feat_aug_prob <= 1.0:
            raise ConfigError(f"feat_aug_prob must be in [0, 1], got {self.feat_aug_prob}")
        if self.rest_weight < 0 or self.l1_weight < 0:
            raise ConfigError(f"rest_weight and l1_weight must be >= 0: {self.rest_weight}, {self.l1_weight}")


@dataclass
class _Item:
    """One utterance, ready to sample: feature versions with their mouth targets, and the style."""

    feats: list[np.ndarray]  # [clean, aug1, ...] each float32[T_v, F]
    mouths: list[np.ndarray]  # matching float32[T_v, 27] (augmented versions may carry silence pads)
    clip: np.ndarray  # float32[T, 28] non-mouth target channels
    emotion: int
    intensity: float
    real: bool
    bilabials: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # int64[K]: p/b/m mid frames
    priors: list[np.ndarray] = field(default_factory=list)  # EmoDiff's mouth per version, float32[T_v, 27]


def bilabial_frames(u: Utterance) -> np.ndarray:
    """int64[K]: the frame holding each p/b/m phone's middle sample (as ``eval_lip`` measures)."""
    n = u.targets.shape[0]
    mids = [(p.start + p.end) // 2 for p in u.phones if p.viseme == "PP"]
    return np.array([min(n - 1, m * u.fps // SAMPLE_RATE) for m in mids], dtype=np.int64)


def _fit_frames(feats: np.ndarray, n: int) -> np.ndarray:
    """Trim or pad (repeat last frame) features to exactly n frames."""
    if feats.shape[0] >= n:
        return feats[:n]
    if feats.shape[0] == 0:
        raise InputError("utterance gave no feature frames")
    return np.concatenate([feats, np.repeat(feats[-1:], n - feats.shape[0], axis=0)])


def _pad_silence(u: Utterance, rng: np.random.Generator, max_s: float) -> Utterance:
    """``u`` with 0..max_s s of digital silence before and after (whole frames) and its targets
    drawn again by the corpus generator for the padded phones, so the mouth comes to rest in the
    pause as the procedural targets define it. Teaches rest in long pauses, which the corpus's
    utterances rarely contain."""
    step = u.fps // math.gcd(SAMPLE_RATE, u.fps)  # frames per whole number of samples
    k0, k1 = (int(rng.integers(0, int(max_s * u.fps) // step + 1)) * step for _ in range(2))
    return pad_utterance(u, k0 / u.fps, k1 / u.fps)


def prepare_items(
    utts: Iterable[Utterance],
    featurize: Callable[[np.ndarray, int], np.ndarray],
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None,
    copies: int,
    rng: np.random.Generator,
    pad_silence_s: float = 1.5,
    real_copies: int | None = None,
) -> list[_Item]:
    """Features of each utterance: the clean audio, plus ``copies`` versions (``real_copies`` for
    real speech, default ``copies``) padded with random silence and then augmented (when
    ``augment`` is given)."""
    items = []
    for u in utts:
        n = u.targets.shape[0]
        real = u.engine == "real" or u.split.endswith("_real")
        mouth = np.ascontiguousarray(u.targets[:, MOUTH_SLICE], dtype=np.float32)
        feats, mouths = [_fit_frames(featurize(u.audio, u.fps), n)], [mouth]
        for _ in range(real_copies if (real and real_copies is not None) else copies):
            padded = _pad_silence(u, rng, pad_silence_s)
            audio = padded.audio
            if augment is not None:
                audio = np.asarray(augment(audio, rng), dtype=np.float32)
            m = np.ascontiguousarray(padded.targets[:, MOUTH_SLICE], dtype=np.float32)
            feats.append(_fit_frames(featurize(audio, u.fps), len(m)))
            mouths.append(m)
        items.append(
            _Item(
                feats=[v.astype(np.float32) for v in feats],
                mouths=mouths,
                clip=np.ascontiguousarray(u.targets[:, list(CLIP_CHANNELS)], dtype=np.float32),
                emotion=u.emotion.index,
                intensity=float(u.emotion.intensity),
                real=real,
                bilabials=bilabial_frames(u),
            )
        )
    return items


def perturb_features(f: np.ndarray, rng: np.random.Generator, bands: int) -> np.ndarray:
    """float32[T, F] standardised log-mel features (``F = k · bands``, band-fastest per sub-frame)
    as another speaker / channel would give them: the mel axis warped by a factor in [0.9, 1.1]
    (vocal-tract length), a random spectral tilt and level, and 0-2 bands masked (set to 0, the
    standardised mean). Same perturbation on every frame of the crop."""
    t, fdim = f.shape
    x = f.reshape(t, fdim // bands, bands)  # [T, k, bands]
    alpha = rng.uniform(0.9, 1.1)
    src = np.clip(np.arange(bands) / alpha, 0, bands - 1)
    i0 = np.minimum(src.astype(np.int64), bands - 2)
    w = (src - i0).astype(np.float32)
    x = x[..., i0] * (1 - w) + x[..., i0 + 1] * w
    pos = np.linspace(-0.5, 0.5, bands, dtype=np.float32)
    x = x + np.float32(rng.uniform(-0.3, 0.3)) + np.float32(rng.uniform(-0.6, 0.6)) * pos
    for _ in range(int(rng.integers(0, 3))):
        width = int(rng.integers(1, 4))
        b0 = int(rng.integers(0, bands - width + 1))
        x[..., b0 : b0 + width] = 0.0
    return np.ascontiguousarray(x.reshape(t, fdim), dtype=np.float32)


@dataclass
class Batch:
    feats: torch.Tensor  # [B, Tc + L, F]
    mouth: torch.Tensor  # [B, Tc, 27]
    mask: torch.Tensor  # [B, Tc] 1 where a real frame
    emotion: torch.Tensor  # long[B]
    intensity: torch.Tensor  # [B]
    clip: torch.Tensor  # [B, Tr, 28] reference clips (same emotion, other utterance)
    use_clip: torch.Tensor  # bool[B]
    prior: torch.Tensor | None = None  # [B, Tc + L, 27]: EmoDiff's mouth of frame s - L at step s


class Sampler:
    def __init__(self, items: Sequence[_Item], cfg: TrainLipConfig, lookahead: int, seed: int) -> None:
        if not items:
            raise InputError("no training utterances (splits train/train_real are empty)")
        self.items = list(items)
        self.cfg = cfg
        self.L = lookahead
        self.rng = np.random.default_rng(seed)
        self.real = [i for i, it in enumerate(self.items) if it.real]
        self.synth = [i for i, it in enumerate(self.items) if not it.real]
        self.by_emotion: dict[int, list[int]] = {}
        for i, it in enumerate(self.items):
            self.by_emotion.setdefault(it.emotion, []).append(i)

    def _pick(self) -> int:
        pool = self.real if (self.real and self.rng.random() < self.cfg.real_share) else self.synth
        pool = pool or self.real
        return int(pool[self.rng.integers(len(pool))])

    def _version(self, it: _Item) -> int:
        if len(it.feats) == 1 or self.rng.random() < self.cfg.clean_prob:
            return 0
        return int(self.rng.integers(1, len(it.feats)))

    def batch(self) -> Batch:
        cfg, rng, lookahead = self.cfg, self.rng, self.L
        picks = [self._pick() for _ in range(cfg.batch)]
        crops = []
        for i in picks:
            it = self.items[i]
            v = self._version(it)
            n = it.mouths[v].shape[0]
            tc = min(cfg.crop_frames, n)
            start = 0 if (n <= tc or rng.random() < 0.5) else int(rng.integers(0, n - tc + 1))
            crops.append((it, v, start, tc))
        tmax = max(tc for _, _, _, tc in crops)
        fdim = self.items[0].feats[0].shape[1]
        feats = np.zeros((cfg.batch, tmax + lookahead, fdim), np.float32)
        mouth = np.zeros((cfg.batch, tmax, NUM_MOUTH), np.float32)
        mask = np.zeros((cfg.batch, tmax), np.float32)
        ref_len = int(rng.integers(25, 126))
        clip = np.zeros((cfg.batch, ref_len, len(CLIP_CHANNELS)), np.float32)
        use_prior = bool(self.items[0].priors)
        prior = np.zeros((cfg.batch, tmax + lookahead, NUM_MOUTH), np.float32) if use_prior else None
        for b, (it, v, start, tc) in enumerate(crops):
            if prior is not None:
                pidx = np.arange(start - lookahead, start + tmax)  # frame s - L at step s
                ok = pidx >= 0
                prior[b, ok] = it.priors[v][np.minimum(pidx[ok], it.priors[v].shape[0] - 1)]
            f = it.feats[v]
            idx = np.minimum(np.arange(start, start + tmax + lookahead), f.shape[0] - 1)
            feats[b] = f[idx]  # past the utterance's end: its last frame repeated (as flush pads)
            if cfg.feat_aug_prob > 0 and rng.random() < cfg.feat_aug_prob:
                feats[b] = perturb_features(feats[b], rng, N_MELS)
            mouth[b, :tc] = it.mouths[v][start : start + tc]
            mask[b, :tc] = 1.0
            same = self.by_emotion[it.emotion]
            ref = self.items[int(same[rng.integers(len(same))])]
            rs = int(rng.integers(0, max(1, ref.clip.shape[0] - ref_len + 1)))
            ridx = np.minimum(np.arange(rs, rs + ref_len), ref.clip.shape[0] - 1)
            clip[b] = ref.clip[ridx]
        return Batch(
            feats=torch.from_numpy(feats),
            mouth=torch.from_numpy(mouth),
            mask=torch.from_numpy(mask),
            emotion=torch.tensor([c[0].emotion for c in crops], dtype=torch.long),
            intensity=torch.tensor([c[0].intensity for c in crops], dtype=torch.float32),
            clip=torch.from_numpy(clip),
            use_clip=torch.from_numpy(rng.random(cfg.batch) < cfg.clip_prob),
            prior=None if prior is None else torch.from_numpy(prior),
        )


def channel_weights() -> torch.Tensor:
    w = torch.ones(NUM_MOUTH)
    for name, v in _HEAVY.items():
        w[MOUTH_INDICES.index(BLENDSHAPE_INDEX[name])] = v
    return w / w.mean()


def loss_fn(model: LipRefiner, b: Batch, cfg: TrainLipConfig, w: torch.Tensor) -> tuple[torch.Tensor, dict]:
    label = model.emotion.from_label(b.emotion, b.intensity)  # [B, D]
    ref = model.emotion.from_clip(b.clip)  # [B, D]
    style = torch.where(b.use_clip[:, None], ref, label)
    y, logit = model.forward_train(b.feats, style, b.prior)  # [B, Tc + L, 27], [B, Tc + L]
    lookahead = model.cfg.lookahead_frames
    pred, logit = y[:, lookahead:], logit[:, lookahead:]  # frame t is predicted at step t + L
    m = b.mask[..., None]
    err = (pred - b.mouth) ** 2 * w
    mse = (err * m).sum() / (m.sum() * NUM_MOUTH)
    l1 = ((pred - b.mouth).abs() * w * m).sum() / (m.sum() * NUM_MOUTH)
    mv = m[:, 1:] * m[:, :-1]
    dv = ((pred[:, 1:] - pred[:, :-1]) - (b.mouth[:, 1:] - b.mouth[:, :-1])) ** 2
    vel = (dv * mv).sum() / (mv.sum() * NUM_MOUTH).clamp_min(1)
    align = ((ref - label.detach()) ** 2).mean()
    # Lip gap (jawOpen − mouthClose): closure for p/b/m and rest in silence depend on it exactly.
    gp = torch.relu(pred[..., _JAW] - pred[..., _CLOSE])
    gt = torch.relu(b.mouth[..., _JAW] - b.mouth[..., _CLOSE])
    gap = (((gp - gt) ** 2) * b.mask).sum() / b.mask.sum()
    # Closure gate: lips shut in the target (gap ~ 0); bilabial closures (lips rolled/pressed
    # while shut) are rare and decide the closure metric, so they weigh more.
    shut = (gt <= 0.01).float()
    bilabial = shut * (b.mouth[..., _ROLL] >= 0.29).float()
    bw = b.mask * (1.0 + (cfg.bilabial_weight - 1.0) * bilabial)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, shut, reduction="none")
    gate = (bce * bw).sum() / bw.sum()
    # Rest: where the target jaw is (nearly) shut, jaw and lip gap stay under the thresholds the
    # rest-in-silence metric uses (a hinge, so it only acts on a mouth that lags open).
    at_rest = b.mask * (b.mouth[..., _JAW] <= 0.03).float()
    over = torch.relu(pred[..., _JAW] - 0.05) ** 2 + torch.relu(gp - 0.02) ** 2
    rest = (over * at_rest).sum() / (at_rest.sum() + 1.0)
    total = mse + cfg.velocity_weight * vel + cfg.align_weight * align + cfg.gap_weight * gap
    total = total + cfg.gate_weight * gate + cfg.rest_weight * rest + cfg.l1_weight * l1
    parts = {
        "mse": mse.item(),
        "l1": l1.item(),
        "vel": vel.item(),
        "align": align.item(),
        "gap": gap.item(),
        "gate": gate.item(),
        "rest": rest.item(),
    }
    return total, parts


@torch.no_grad()
def head_outputs(model: LipNet, it: _Item) -> tuple[np.ndarray, np.ndarray]:
    """Clean-audio, label-style pass over one item: (raw head mouth float[T, 27] before the
    closure gate, closure logit float[T]), aligned with the item's frames. An ensemble gives
    the mean of its members' (as ``LipEnsemble.step`` averages them)."""
    if isinstance(model, LipEnsemble):
        outs = [head_outputs(m, it) for m in model.nets]
        return np.mean([o[0] for o in outs], axis=0), np.mean([o[1] for o in outs], axis=0)
    lookahead = model.cfg.lookahead_frames
    f = it.feats[0]
    f = np.concatenate([f, np.repeat(f[-1:], lookahead, axis=0)])
    style = model.emotion.from_label(torch.tensor([it.emotion]), torch.tensor([it.intensity]))
    prior = None
    if model.cfg.prior_input:
        pr = np.concatenate([np.zeros((lookahead, NUM_MOUTH), np.float32), it.priors[0]])
        prior = torch.from_numpy(pr)[None]  # [1, T+L, 27]: frame s - L at step s
    x = model._inputs(torch.from_numpy(f)[None], prior)  # [1, T+L, H]
    out, _ = model.lstm(x, model.initial_state(1))  # [1, T+L, H]
    raw, logit = model.head_raw(out, style[:, None, :].expand(1, out.shape[1], -1), prior)
    return raw[0, lookahead:].numpy(), logit[0, lookahead:].numpy()


def gated_mouth(raw: np.ndarray, logit: np.ndarray, scale: float, bias: float) -> np.ndarray:
    """``LipRefiner.mouth``'s closure gate in numpy, clamped to [0, 1] as the engine does."""
    p = 1.0 / (1.0 + np.exp(-(scale * logit + bias)))
    y = raw.copy()
    y[:, _CLOSE] = raw[:, _CLOSE] + p * np.maximum(0.0, raw[:, _JAW] - raw[:, _CLOSE])
    return np.clip(y, 0.0, 1.0)


def _closure(preds: Sequence[np.ndarray], items: Sequence[_Item]) -> float | None:
    """Share of p/b/m mid frames whose lip gap is closed (``eval_lip.CLOSED_GAP``); None: no p/b/m."""
    gaps = [
        np.maximum(0.0, y[it.bilabials, _JAW] - y[it.bilabials, _CLOSE])
        for y, it in zip(preds, items, strict=True)
    ]
    allg = np.concatenate(gaps) if gaps else np.zeros(0)
    return float((allg <= CLOSED_GAP).mean()) if allg.size else None


@torch.no_grad()
def validate(model: LipRefiner, items: Sequence[_Item], real_items: Sequence[_Item] = ()) -> dict[str, float]:
    """Clean-audio mouth MAE, jawOpen correlation and bilabial closure on validation items (label
    style), and the same on held-out real speech as ``val_real_*`` when given."""
    model.eval()
    out: dict[str, float] = {}
    for prefix, its in (("val", items), ("val_real", real_items)):
        if not its:
            continue
        heads = [head_outputs(model, it) for it in its]
        preds = [gated_mouth(r, lg, model.cfg.gate_scale, model.cfg.gate_bias) for r, lg in heads]
        p, t = np.concatenate(preds), np.concatenate([it.mouths[0] for it in its])
        out[f"{prefix}_mouth_mae"] = float(np.abs(p - t).mean())
        out[f"{prefix}_jaw_corr"] = float(np.corrcoef(p[:, _JAW], t[:, _JAW])[0, 1])
        closure = _closure(preds, its)
        if closure is not None:
            out[f"{prefix}_closure"] = closure
    model.train()
    return out


GATE_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0)
GATE_BIASES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)


@torch.no_grad()
def calibrate_gate(
    model: LipNet, sets: Mapping[str, Sequence[_Item]], mae_tolerance: float = 0.02
) -> dict[str, Any]:
    """Closure-gate calibration (scale, bias) on held-out validation sets (never a test split).

    Every grid point whose mouth MAE stays within ``mae_tolerance`` (relative) of the trained gate's
    (1, 0) on every set is a candidate; the one with the best mean bilabial closure over the sets
    wins (ties within 0.005: the lowest summed MAE). Returns the choice and the whole grid."""
    model.eval()
    heads = {name: [head_outputs(model, it) for it in its] for name, its in sets.items() if its}
    if not heads:
        raise InputError("gate calibration needs at least one non-empty validation set")
    grid = []
    for scale in GATE_SCALES:
        for bias in GATE_BIASES:
            row: dict[str, Any] = {"scale": scale, "bias": bias}
            for name, hs in heads.items():
                preds = [gated_mouth(r, lg, scale, bias) for r, lg in hs]
                p = np.concatenate(preds)
                t = np.concatenate([it.mouths[0] for it in sets[name]])
                row[f"{name}_mouth_mae"] = float(np.abs(p - t).mean())
                row[f"{name}_closure"] = _closure(preds, sets[name])
            grid.append(row)
    base = next(r for r in grid if r["scale"] == 1.0 and r["bias"] == 0.0)
    ok = [
        r for r in grid
        if all(r[f"{n}_mouth_mae"] <= base[f"{n}_mouth_mae"] * (1 + mae_tolerance) for n in heads)
    ]  # fmt: skip

    def score(r: dict[str, Any]) -> float:
        vals = [r[f"{n}_closure"] for n in heads if r[f"{n}_closure"] is not None]
        return float(np.mean(vals)) if vals else 0.0

    best = max(score(r) for r in ok)
    near = [r for r in ok if score(r) >= best - 0.005]
    choice = min(near, key=lambda r: sum(r[f"{n}_mouth_mae"] for n in heads))
    return {"scale": choice["scale"], "bias": choice["bias"], "chosen": choice, "base": base, "grid": grid}


def _save_optimizer(opt: torch.optim.Optimizer, model: LipRefiner, path: Path) -> None:
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            for k in ("exp_avg", "exp_avg_sq"):
                if k in st:
                    tensors[f"{names[id(p)]}.{k}"] = st[k].detach().cpu().contiguous()
            if "step" in st:
                tensors[f"{names[id(p)]}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    save_file(tensors, str(path))


def _load_optimizer(opt: torch.optim.Optimizer, model: LipRefiner, path: Path) -> None:
    tensors = load_file(str(path))
    for n, p in model.named_parameters():
        if f"{n}.exp_avg" in tensors:
            opt.state[p] = {
                "step": tensors[f"{n}.step"][0].clone(),
                "exp_avg": tensors[f"{n}.exp_avg"].to(p.device),
                "exp_avg_sq": tensors[f"{n}.exp_avg_sq"].to(p.device),
            }


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    # deferred: matplotlib (heavy), only when plotting
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib.pyplot, once the headless Agg backend is chosen
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = [h["step"] for h in history if "loss" in h]
    axes[0].plot(steps, [h["loss"] for h in history if "loss" in h], lw=0.8, label="train loss")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].legend()
    vs = [h for h in history if "val_mouth_mae" in h]
    if vs:
        axes[1].plot([h["step"] for h in vs], [h["val_mouth_mae"] for h in vs], "o-", label="val mouth MAE")
        ax2 = axes[1].twinx()
        ax2.plot([h["step"] for h in vs], [h["val_jaw_corr"] for h in vs], "s-", c="C1", label="val jaw corr")
        ax2.set_ylabel("jawOpen corr")
        axes[1].set_ylabel("mouth MAE")
        axes[1].set_xlabel("step")
        axes[1].legend(loc="upper left")
        ax2.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    cfg: TrainLipConfig,
    train_items: Sequence[_Item],
    val_items: Sequence[_Item],
    out: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    progress: bool = False,
    real_val_items: Sequence[_Item] = (),
) -> dict[str, Any]:
    """Train (or resume) and write ``out``; returns the final metrics and history."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    st_path, _ = checkpoint_paths(out)
    base = st_path.with_suffix("")
    optim_path = base.with_name(base.name + ".optim.safetensors")
    fdim = train_items[0].feats[0].shape[1]
    history: list[dict[str, float]] = []
    start_step = 0
    elapsed0 = 0.0
    if st_path.is_file() and optim_path.is_file():
        model, old = load_lip_checkpoint(st_path)
        if model.cfg.feature_dim != fdim:
            raise ConfigError(
                f"cannot resume {st_path}: feature_dim {model.cfg.feature_dim} != data's {fdim}"
            )
        start_step = int(old.get("step", 0))
        history = list(old.get("history", []))
        elapsed0 = float(old.get("train_seconds", 0.0))
        log.info("resuming %s at step %d", st_path, start_step)
    else:
        mcfg = LipRefinerConfig(feature_dim=fdim, **cfg.model)
        model = LipRefiner(mcfg)
        allf = np.concatenate([it.feats[0] for it in train_items])
        model.feat_mean.copy_(torch.from_numpy(allf.mean(0)))
        model.feat_std.copy_(torch.from_numpy(allf.std(0) + 1e-3))
    if model.cfg.prior_input and not all(it.priors for it in train_items):
        raise ConfigError("a refiner with prior_input needs EmoDiff priors on every item (add_priors)")
    model.to(cfg.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if start_step:
        _load_optimizer(opt, model, optim_path)
    # Each step's batch depends only on (seed, step): resuming gives the same run.
    w = channel_weights().to(cfg.device)
    t0 = time.perf_counter()
    bar = None
    if progress:
        bar = tqdm(total=cfg.steps, initial=start_step, desc="train lip", unit="step")
    last: dict[str, float] = {}
    sampler = Sampler(train_items, cfg, model.cfg.lookahead_frames, seed=cfg.seed)
    for step in range(start_step, cfg.steps):
        sampler.rng = np.random.default_rng([cfg.seed, step])
        b = sampler.batch()
        if cfg.device != "cpu":
            b = Batch(**{k: v.to(cfg.device) for k, v in vars(b).items()})
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        loss, parts = loss_fn(model, b, cfg, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        rec = {"step": step + 1, "loss": loss.item(), **parts}
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            rec.update(validate(model.cpu(), val_items[: cfg.max_val], real_val_items))
            model.to(cfg.device)
            log.info("step %d %s", step + 1, rec)
        history.append(rec)
        last = rec
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.4f}")
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            secs = elapsed0 + time.perf_counter() - t0
            m = {**(meta or {}), "step": step + 1, "history": history, "train_seconds": round(secs, 1)}
            m["train_config"] = asdict(replace(cfg))
            save_lip_checkpoint(model.cpu(), st_path, m)
            model.to(cfg.device)
            _save_optimizer(opt, model, optim_path)
            plot_curves(history, base.with_name(base.name + ".curves.png"))
    if bar is not None:
        bar.close()
    return {"final": last, "history": history, "path": str(st_path)}


def load_utterances(
    data: str | Path,
    splits: Sequence[str],
    fps: int,
    limit: int | None = None,
    synthetic_stride: int = 1,
) -> list[Utterance]:
    """Corpus utterances of ``splits``. ``synthetic_stride`` keeps every k-th utterance of the
    synthetic ``train`` split (shards are grouped by TTS engine, so a stride samples every engine
    where ``limit`` would not); the other splits are used whole (up to ``limit``)."""
    if synthetic_stride < 1:
        raise ConfigError(f"synthetic_stride must be >= 1, got {synthetic_stride}")

    utts: list[Utterance] = []
    for split in splits:
        stride = synthetic_stride if split == "train" else 1
        for i, u in enumerate(load_corpus(data, split=split)):
            if limit is not None and i >= limit * stride:
                break
            if i % stride:
                continue
            if u.fps != fps:
                raise InputError(f"utterance {u.uid} is at {u.fps} fps, training asks for {fps}", data)
            utts.append(u)
    return utts


def hold_out_real(utts: Sequence[Utterance], every: int) -> tuple[list[Utterance], list[Utterance]]:
    """(train, held out): every ``every``-th real utterance (``train_real``) is held out as a
    real-speech validation set for checkpoint reading and gate calibration; 0 holds out none."""
    if every < 0 or every == 1:
        raise ConfigError(f"real_val_every must be 0 (none) or >= 2, got {every}")
    if every == 0:
        return list(utts), []
    train_utts: list[Utterance] = []
    held: list[Utterance] = []
    k = 0
    for u in utts:
        if u.split == "train_real":
            (held if k % every == every - 1 else train_utts).append(u)
            k += 1
        else:
            train_utts.append(u)
    return train_utts, held


def items_for(
    utts: Sequence[Utterance], copies: int, seed: int, real_copies: int | None = None
) -> list[_Item]:
    """Training items of ``utts`` (features computed here, corpus augmentation when available)."""
    rng = np.random.default_rng(seed)
    return prepare_items(utts, lambda a, f: features_for(a, f), augment, copies, rng, real_copies=real_copies)


def load_items(
    data: str | Path,
    splits: Sequence[str],
    fps: int,
    copies: int,
    seed: int,
    limit: int | None = None,
    synthetic_stride: int = 1,
) -> list[_Item]:
    """Corpus utterances of ``splits`` as training items (``load_utterances`` + ``items_for``)."""
    return items_for(load_utterances(data, splits, fps, limit, synthetic_stride), copies, seed)


def add_priors(
    items: Sequence[_Item],
    generate: Callable[[np.ndarray, int, float, int], np.ndarray],
    seed: int,
    progress: bool = False,
) -> None:
    """Fill ``item.priors``: ``generate(features float32[T, F], emotion index, intensity, seed)
    -> float32[T, 55]`` (the EmoDiff motion engine) run on every feature version, its mouth kept.
    Version ``v`` of item ``i`` gets seed ``(seed, i, v)`` folded into one int."""
    bar = None
    if progress:
        bar = tqdm(total=sum(len(it.feats) for it in items), desc="EmoDiff priors", unit="utt")
    for i, it in enumerate(items):
        it.priors = []
        for v, f in enumerate(it.feats):
            s = int(np.random.SeedSequence([seed, i, v]).generate_state(1)[0])
            motion = np.asarray(generate(f, it.emotion, it.intensity, s), dtype=np.float32)
            if motion.shape[0] != f.shape[0]:
                raise InputError(f"prior generator gave {motion.shape[0]} frames for {f.shape[0]}")
            it.priors.append(np.ascontiguousarray(motion[:, MOUTH_SLICE]))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()


def emodiff_prior_generator(
    path: str | Path | None, steps: int | None, fps: int
) -> Callable[[np.ndarray, int, float, int], np.ndarray]:
    """The motion engine (EmoDiff only, no refiner, ONNX Runtime on CPU) as ``add_priors`` wants it."""
    eng = MotionEngine.load(path, steps=steps, fps=fps, refiner=False, backend="onnx")

    def generate(features: np.ndarray, emotion: int, intensity: float, seed: int) -> np.ndarray:
        return eng.generate(features, EmotionStyle(EMOTIONS[emotion], intensity), seed=seed)

    return generate


def save_items_cache(path: str | Path, key: dict[str, Any], sets: tuple[list[_Item], ...]) -> None:
    """Pickle prepared item sets with the options that made them (``load_items_cache`` checks)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump({"key": key, "sets": sets}, fh, protocol=pickle.HIGHEST_PROTOCOL)


def load_items_cache(path: str | Path, key: dict[str, Any]) -> tuple[list[_Item], ...] | None:
    """The item sets pickled at ``path`` if they were made with the same options, else None."""
    if not Path(path).is_file():
        return None
    with open(path, "rb") as fh:
        doc = pickle.load(fh)
    if doc.get("key") != key:
        log.warning("items cache %s was made with other options: preparing again", path)
        return None
    return tuple(doc["sets"])
