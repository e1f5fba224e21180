"""Teacher training of EmoDiff (v-prediction, cosine schedule) on windows of the corpus.

Each training example is a window of ``W`` frames cut from an utterance: audio features (clean
or one of ``augment_copies`` augmented versions of the audio), the target motion, the emotion.
A random part of the window's prefix is given as a hard condition, as in streaming (mostly the
full ``P = W - H - L`` prefix; sometimes none, as at a stream start). The loss is the v-MSE on
the frames that are not given. Conditions are dropped for classifier-free guidance. The style
encoder's reference path is trained alongside (pulled onto the label path's vector).

Outputs: ``OUT.safetensors/.json`` (EMA weights, used for sampling), ``OUT.train.safetensors``
+ ``OUT.train.json`` (raw weights, optimiser, step: ``--resume``), ``OUT_train/loss.png`` and
``OUT_train/eval_STEP.png`` (generated vs target curves of a held-out utterance).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from emostream.arkit import BLENDSHAPE_INDEX, EMOTIONS, MOTION_DIM, MOUTH_INDICES, EmotionStyle
from emostream.engine.backends import TorchBackend
from emostream.engine.features import features_for
from emostream.engine.sampler import WindowSampler, WindowSchedule
from emostream.errors import CheckpointError, ConfigError, DeviceError, InputError
from emostream.models.emodiff import EmoDiff, EmoDiffConfig, save_emodiff
from emostream.models.weights import checkpoint_paths
from emostream.training.augment import augment
from emostream.training.corpus import load_corpus
from emostream.training.schema import Utterance

log = logging.getLogger(__name__)

#: Streaming schedule the model is trained for (hop + lookahead frames after the prefix).
DEFAULT_HOP, DEFAULT_LOOKAHEAD = 3, 2


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 4000
    batch: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 200
    ema: float = 0.998
    seed: int = 0
    augment_copies: int = 1
    hop: int = DEFAULT_HOP
    lookahead: int = DEFAULT_LOOKAHEAD
    eval_every: int = 500
    ref_loss_weight: float = 0.5
    #: weight of the mouth dimensions in the v-MSE (the other 28 dims weigh 1); > 1 spends more
    #: of the network on lip sync, which a loss averaged over 55 dims under-serves.
    mouth_loss_weight: float = 1.0
    model: dict[str, Any] = field(default_factory=dict)  # EmoDiffConfig overrides

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Clip:
    """One utterance prepared for training: feature versions [V][T, F], targets [T, 55]."""

    uid: str
    feats: list[np.ndarray]
    targets: np.ndarray
    emotion: int
    intensity: float


def _fit(feats: np.ndarray, n: int) -> np.ndarray:
    if len(feats) >= n:
        return feats[:n]
    return np.concatenate([feats, np.repeat(feats[-1:], n - len(feats), axis=0)])


def prepare_clips(
    utts: Sequence[Utterance],
    featurize: Callable[[np.ndarray, int], np.ndarray],
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None,
    copies: int,
    seed: int,
) -> list[Clip]:
    rng = np.random.default_rng(seed)
    clips = []
    for u in utts:
        n = len(u.targets)
        versions = [_fit(featurize(u.audio, u.fps), n)]
        for _ in range(copies if augment is not None else 0):
            assert augment is not None
            versions.append(_fit(featurize(augment(u.audio, rng), u.fps), n))
        clips.append(
            Clip(u.uid, versions, u.targets.astype(np.float32), u.emotion.index, u.emotion.intensity)
        )
    return clips


@dataclass
class Batch:
    x0: torch.Tensor  # [B, W, 55] normalised targets
    audio: torch.Tensor  # [B, W, F]
    emotion: torch.Tensor  # [B] int64
    intensity: torch.Tensor  # [B]
    mask: torch.Tensor  # [B, W, 1] known prefix frames
    valid: torch.Tensor  # [B, W, 1] frames inside the utterance
    raw: torch.Tensor  # [B, W, 55] un-normalised targets (reference clips)


class WindowBatcher:
    """Random training windows; prefix masks drawn like the streaming sampler will use them."""

    def __init__(
        self,
        clips: Sequence[Clip],
        window: int,
        prefix: int,
        silence: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        seed: int,
    ) -> None:
        if not clips:
            raise InputError("no training utterances")
        self.clips, self.W, self.P = list(clips), window, prefix
        self.silence, self.mean, self.std = silence, mean, std
        lengths = np.array([len(c.targets) for c in clips], dtype=np.float64)
        self.p = lengths / lengths.sum()
        self.rng = np.random.default_rng(seed)

    def _mask_len(self) -> int:
        u = self.rng.random()
        if u < 0.15:
            return 0
        if u < 0.65:
            return self.P
        return int(self.rng.integers(1, self.P + 1))

    def sample(self, B: int) -> Batch:
        W, F = self.W, self.clips[0].feats[0].shape[1]
        x = np.zeros((B, W, MOTION_DIM), np.float32)
        a = np.repeat(self.silence[None, None], B, 0).repeat(W, 1).astype(np.float32)
        mask = np.zeros((B, W, 1), np.float32)
        valid = np.zeros((B, W, 1), np.float32)
        emo, inten = np.zeros(B, np.int64), np.zeros(B, np.float32)
        for b in range(B):
            c = self.clips[int(self.rng.choice(len(self.clips), p=self.p))]
            T = len(c.targets)
            s = int(self.rng.integers(0, T - W + 1)) if T >= W else 0
            n = min(W, T - s)
            x[b, :n] = c.targets[s : s + n]
            x[b, n:] = c.targets[-1]
            a[b, :n] = c.feats[int(self.rng.integers(len(c.feats)))][s : s + n]
            valid[b, :n] = 1
            p = self._mask_len()
            mask[b, self.P - p : self.P] = 1
            emo[b], inten[b] = c.emotion, c.intensity
        xn = (x - self.mean) / self.std
        assert a.shape[-1] == F
        return Batch(
            torch.from_numpy(xn),
            torch.from_numpy(a),
            torch.from_numpy(emo),
            torch.from_numpy(inten),
            torch.from_numpy(mask),
            torch.from_numpy(valid),
            torch.from_numpy(x),
        )


def cosine_alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def dim_weights(mouth_weight: float) -> torch.Tensor:
    """float32[55] loss weight per motion dimension, mean 1."""
    w = torch.ones(MOTION_DIM)
    w[list(MOUTH_INDICES)] = mouth_weight
    return w / w.mean()


def diffusion_loss(
    model: EmoDiff, b: Batch, gen: torch.Generator, ref_w: float, dim_w: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    B, W, _ = b.x0.shape
    cfg = model.cfg
    t = torch.rand(B, generator=gen)
    eps = torch.randn(b.x0.shape, generator=gen)
    al, si = cosine_alpha_sigma(t)
    al, si = al[:, None, None], si[:, None, None]
    z = al * b.x0 + si * eps
    v_target = al * eps - si * b.x0
    keep = (torch.rand(B, 2, generator=gen) >= torch.tensor([cfg.p_drop_audio, cfg.p_drop_style])).float()
    style = model.style_encoder.from_label(b.emotion, b.intensity)[:, None].expand(B, W, -1)
    v = model(z, t, b.audio, style, b.x0, b.mask, keep)
    w = (1 - b.mask) * b.valid  # [B, W, 1]
    err = (v - v_target) ** 2 if dim_w is None else (v - v_target) ** 2 * dim_w.to(v.device)
    mse = (err * w).sum() / (w.sum() * MOTION_DIM).clamp(min=1)
    ref = model.style_encoder.reference_loss(b.raw, b.emotion, b.intensity)
    loss = mse + ref_w * ref
    return loss, {"loss": float(mse.detach()), "ref": float(ref.detach())}


def data_stats(clips: Sequence[Clip]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(motion mean, motion std, feature mean, feature std) of the training clips."""
    tg = np.concatenate([c.targets for c in clips])
    ft = np.concatenate([c.feats[0] for c in clips])
    return (tg.mean(0), np.maximum(tg.std(0), 1e-2), ft.mean(0), np.maximum(ft.std(0), 1e-2))


def init_stats(model: EmoDiff, clips: Sequence[Clip], silence: np.ndarray) -> None:
    mm, ms, fm, fs = data_stats(clips)
    with torch.no_grad():
        for name, val in (
            ("motion_mean", mm),
            ("motion_std", ms),
            ("feat_mean", fm),
            ("feat_std", fs),
            ("silence_feat", silence),
        ):
            getattr(model, name).copy_(torch.from_numpy(np.asarray(val, np.float32)))
        model.style_encoder.motion_mean.copy_(torch.from_numpy(mm.astype(np.float32)))
        model.style_encoder.motion_std.copy_(torch.from_numpy(ms.astype(np.float32)))


class Ema:
    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    prog = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * prog))


# -- resumable training state --------------------------------------------------------------------
def _state_paths(out: Path) -> tuple[Path, Path]:
    st, _ = checkpoint_paths(out)
    base = st.with_suffix("")
    return base.with_name(base.name + ".train.safetensors"), base.with_name(base.name + ".train.json")


def save_train_state(
    out: Path,
    model: torch.nn.Module,
    ema: Ema,
    opt: torch.optim.Optimizer,
    step: int,
    history: list[dict[str, float]],
    cfg: dict[str, Any],
) -> None:
    st, js = _state_paths(out)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().contiguous()
    for k, v in ema.shadow.items():
        tensors[f"ema.{k}"] = v.contiguous()
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            for sk, sv in opt.state.get(p, {}).items():
                if torch.is_tensor(sv):
                    tensors[f"opt.{names[id(p)]}.{sk}"] = sv.detach().reshape(sv.shape).contiguous()
    save_file(tensors, str(st.with_suffix(".tmp")))
    st.with_suffix(".tmp").replace(st)
    js.write_text(json.dumps({"step": step, "history": history, "config": cfg}))


def load_train_state(
    out: Path, model: torch.nn.Module, ema: Ema, opt: torch.optim.Optimizer
) -> tuple[int, list[dict[str, float]]]:
    st, js = _state_paths(out)
    if not st.is_file() or not js.is_file():
        raise CheckpointError("--resume: no training state next to the output (NAME.train.safetensors)", st)
    try:
        tensors = load_file(str(st))
        doc = json.loads(js.read_text())
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"--resume: unreadable training state: {e}", st) from e
    msd = model.state_dict()
    for k, v in msd.items():
        got = tensors.get(f"model.{k}")
        if got is None or got.shape != v.shape:
            raise CheckpointError(f"--resume: tensor {k!r} missing or of another shape", st)
    model.load_state_dict({k: tensors[f"model.{k}"] for k in msd})
    ema.shadow = {k: tensors[f"ema.{k}"].clone() for k in msd}
    for n, p in model.named_parameters():
        ea, es = tensors.get(f"opt.{n}.exp_avg"), tensors.get(f"opt.{n}.exp_avg_sq")
        stp = tensors.get(f"opt.{n}.step")
        if ea is not None and es is not None and stp is not None:
            opt.state[p] = {"exp_avg": ea.clone(), "exp_avg_sq": es.clone(), "step": stp.clone()}
    return int(doc["step"]), list(doc.get("history", []))


def plot_loss(history: list[dict[str, float]], path: Path) -> None:
    # deferred: matplotlib (heavy), only when plotting
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib.pyplot, once the headless Agg backend is chosen
    import matplotlib.pyplot as plt

    if not history:
        return
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [h["loss"] for h in history], label="v-MSE (train)")
    if any("val" in h for h in history):
        vs = [(h["step"], h["val"]) for h in history if "val" in h]
        ax.plot([s for s, _ in vs], [v for _, v in vs], "o-", label="v-MSE (val)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


CURVES = ("jawOpen", "mouthPucker", "eyeBlinkLeft", "browInnerUp", "mouthSmileLeft")


def plot_curves(gen: np.ndarray, target: np.ndarray, title: str, path: Path) -> None:
    """Generated vs target curves of a few blendshapes and the head yaw/pitch."""
    # deferred: matplotlib (heavy), only when plotting
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib.pyplot, once the headless Agg backend is chosen
    import matplotlib.pyplot as plt

    names = [*CURVES, "headYaw", "headPitch"]
    idx = [BLENDSHAPE_INDEX[n] for n in CURVES] + [52, 53]
    fig, axes = plt.subplots(len(idx), 1, figsize=(8, 1.3 * len(idx)), sharex=True)
    for ax, i, n in zip(axes, idx, names, strict=True):
        ax.plot(target[:, i], "k-", lw=1, label="target")
        for g in gen[:3]:
            ax.plot(g[:, i], lw=1, alpha=0.8)
        ax.set_ylabel(n, fontsize=7)
    axes[0].set_title(title, fontsize=9)
    axes[-1].set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


@torch.no_grad()
def val_loss(model: EmoDiff, batches: Sequence[Batch], seed: int) -> float:
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    losses = [diffusion_loss(model, b, gen, 0.0)[1]["loss"] for b in batches]
    model.train()
    return float(np.mean(losses))


def generate_clip(
    model: EmoDiff,
    feats: np.ndarray,
    emotion: int,
    intensity: float,
    seeds: Sequence[int],
    steps: int,
    hop: int,
    lookahead: int,
) -> np.ndarray:
    """Offline generation through the streaming sampler (torch backend): [len(seeds), T, 55]."""
    net = TorchBackend(model)
    style = model.style_encoder.style_vector(EmotionStyle(EMOTIONS[emotion], float(intensity)))
    ws = WindowSampler(
        net,
        model.motion_mean.numpy(),
        model.motion_std.numpy(),
        model.silence_feat.numpy(),
        style,
        seeds=tuple(seeds),
        steps=steps,
        schedule=WindowSchedule(model.cfg.window, hop, lookahead),
    )
    a, _ = ws.push(feats)
    b, _ = ws.flush()
    return np.concatenate([a, b], axis=1)


def train(
    train_clips: Sequence[Clip],
    val_clips: Sequence[Clip],
    out: str | Path,
    cfg: TrainConfig,
    *,
    silence: np.ndarray,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
    extra_meta: dict[str, Any] | None = None,
) -> tuple[EmoDiff, list[dict[str, float]]]:
    out = Path(out)
    torch.manual_seed(cfg.seed)
    F = train_clips[0].feats[0].shape[1]
    mcfg = EmoDiffConfig.from_dict({"feature_dim": F, **cfg.model})
    prefix = mcfg.window - cfg.hop - cfg.lookahead
    if prefix < 1:
        raise ConfigError(f"window {mcfg.window} too short for hop {cfg.hop} + lookahead {cfg.lookahead}")
    model = EmoDiff(mcfg)
    init_stats(model, train_clips, silence)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda requested but torch sees no CUDA GPU")
    mean, std = model.motion_mean.numpy().copy(), model.motion_std.numpy().copy()
    batcher = WindowBatcher(train_clips, mcfg.window, prefix, silence, mean, std, cfg.seed)
    vb = WindowBatcher(val_clips or train_clips, mcfg.window, prefix, silence, mean, std, cfg.seed + 1)
    val_batches = [vb.sample(cfg.batch) for _ in range(4)]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    ema = Ema(model, cfg.ema)
    step, history = 0, list[dict[str, float]]()
    if resume:
        step, history = load_train_state(out, model, ema, opt)
        batcher.rng = np.random.default_rng([cfg.seed, step])
    model.to(dev).train()
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + step)
    plot_dir = out.parent / (checkpoint_paths(out)[0].stem + "_train")
    plot_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "train": cfg.to_dict(),
        "n_train_clips": len(train_clips),
        "hop": cfg.hop,
        "lookahead": cfg.lookahead,
        **(extra_meta or {}),
    }
    pbar = None
    if progress:
        pbar = tqdm(total=cfg.steps, initial=step, desc="emodiff", dynamic_ncols=True)
    t0, run_loss = time.time(), []
    ema_model = EmoDiff(mcfg)
    dim_w = dim_weights(cfg.mouth_loss_weight) if cfg.mouth_loss_weight != 1.0 else None

    def checkpoint(step: int) -> None:
        ema_model.load_state_dict(ema.shadow)
        save_emodiff(ema_model, out, {**meta, "step": step, "train_seconds": round(time.time() - t0, 1)})
        save_train_state(out, model, ema, opt, step, history, cfg.to_dict())
        plot_loss(history, plot_dir / "loss.png")

    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        b = batcher.sample(cfg.batch)
        if dev.type != "cpu":
            b = Batch(*(x.to(dev) for x in (b.x0, b.audio, b.emotion, b.intensity, b.mask, b.valid, b.raw)))
        loss, info = diffusion_loss(model, b, gen, cfg.ref_loss_weight, dim_w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model, step)
        step += 1
        run_loss.append(info["loss"])
        if pbar is not None:
            pbar.update(1)
            pbar.set_postfix(loss=f"{np.mean(run_loss[-50:]):.4f}", ref=f"{info['ref']:.3f}")
        if step == 1 or step % 50 == 0 or step == cfg.steps:
            history.append({"step": step, "loss": float(np.mean(run_loss[-50:]))})
        if step % cfg.eval_every == 0 or step == cfg.steps:
            ema_model.load_state_dict(ema.shadow)
            history[-1]["val"] = val_loss(ema_model, val_batches, cfg.seed)
            if val_clips:
                c = val_clips[0]
                gen_clip = generate_clip(
                    ema_model,
                    c.feats[0],
                    c.emotion,
                    c.intensity,
                    (0, 1, 2),
                    mcfg.sampler_steps,
                    cfg.hop,
                    cfg.lookahead,
                )
                plot_curves(gen_clip, c.targets, f"{c.uid} step {step}", plot_dir / f"eval_{step:06d}.png")
            checkpoint(step)
            log.info("step %d val %.4f", step, history[-1]["val"])
    if pbar is not None:
        pbar.close()
    ema_model.load_state_dict(ema.shadow)
    return ema_model.eval(), history


def load_clips(
    root: str | Path, splits: Sequence[str], copies: int, seed: int, limit: int | None = None
) -> list[Clip]:
    utts: list[Utterance] = []
    for sp in splits:
        for u in load_corpus(root, split=sp):
            utts.append(u)
            if limit is not None and len(utts) >= limit:
                break
    return prepare_clips(utts, lambda a, fps: features_for(a, fps), augment, copies, seed)


def silence_features(fps: int) -> np.ndarray:
    """float32[F]: the features of digital silence (what padding and VAD gating feed)."""
    return features_for(np.zeros(16000, np.float32), fps)[5].astype(np.float32)
