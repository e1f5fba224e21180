"""Self-supervised FOMM training (Siarohin et al. 2019), without any downloaded network.

Each step takes two frames of the same video, source S and driving D, and reconstructs D from
S with the keypoints of both. Losses:
- reconstruction: L1 between prediction and D at several scales of an image pyramid (1, 1/2,
  1/4, 1/8; the same anti-alias downsampling as the model). The official recipe uses a
  VGG-19 perceptual loss on the same pyramid; VGG weights cannot be downloaded here, so
  emostream uses the pixel pyramid instead (sharper losses would need a learned network);
- keypoint equivariance: D is warped by a random affine map T(z) = A z + b; the keypoints of
  the warped frame, mapped by T, must equal those of D (value, L1), and the jacobians must
  satisfy J_D^-1 A J_T = I (L1), as in the official equivariance losses.
Adam(2e-4, betas 0.5/0.999) as the official config. Resumable: the checkpoint (official layout
+ config + optimiser states + step) is rewritten every ``save_every`` steps; a sample grid PNG
(source | driving | deformed | prediction) is written every ``sample_every`` steps."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from emostream.errors import InputError
from emostream.models.fomm.blocks import AntiAliasInterpolation2d, inverse2x2
from emostream.models.fomm.checkpoint import FommModel, build_model, load_fomm, read_checkpoint, save_fomm
from emostream.models.fomm.config import FommConfig

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".gif")
PYRAMID_SCALES = (1.0, 0.5, 0.25, 0.125)


@dataclass(frozen=True)
class FommTrainConfig:
    steps: int = 20000
    batch_size: int = 4
    lr: float = 2e-4
    equivariance_weight: float = 10.0
    jacobian_weight: float = 10.0
    affine_sigma: float = 0.05
    save_every: int = 500
    sample_every: int = 500
    seed: int = 0
    device: str = "cpu"


def read_video(path: Path, side: int) -> np.ndarray:
    """All frames of a video, resized to side x side: uint8[T, side, side, 3]."""
    try:
        with av.open(str(path)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    except (av.error.FFmpegError, IndexError, ValueError) as e:
        raise InputError(f"cannot decode video: {e}", path) from e
    if len(frames) < 2:
        raise InputError(f"video has {len(frames)} frame(s); training needs at least 2", path)
    return np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in frames])


def load_videos(directory: str | Path, side: int) -> list[np.ndarray]:
    d = Path(directory)
    if not d.is_dir():
        raise InputError("video directory not found", d)
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise InputError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in the directory", d)
    return [read_video(p, side) for p in files]


class ImagePyramid(torch.nn.Module):
    def __init__(self, channels: int, scales: tuple[float, ...] = PYRAMID_SCALES) -> None:
        super().__init__()
        self.downs = torch.nn.ModuleList(AntiAliasInterpolation2d(channels, s) for s in scales)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [d(x) for d in self.downs]


def random_affine(n: int, sigma: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A (N, 2, 2) near identity, b (N, 2) near 0."""
    a = torch.eye(2).expand(n, 2, 2) + sigma * torch.randn(n, 2, 2, generator=gen)
    return a, sigma * torch.randn(n, 2, generator=gen)


def warp_affine(img: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """X'(z) = X(A z + b) on the [-1, 1] grid (align_corners=False, reflection padding)."""
    theta = torch.cat([a, b.unsqueeze(-1)], dim=2)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, padding_mode="reflection", align_corners=False)


class FommTrainer:
    def __init__(self, model: FommModel, cfg: FommTrainConfig) -> None:
        self.model, self.cfg = model, cfg
        self.device = torch.device(cfg.device)
        model.to(self.device)
        self.pyramid = ImagePyramid(model.config.num_channels).to(self.device)
        self.opt_kp = torch.optim.Adam(model.kp_detector.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.opt_gen = torch.optim.Adam(model.generator.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.step = 0

    def losses(
        self, source: torch.Tensor, driving: torch.Tensor, gen: torch.Generator
    ) -> dict[str, torch.Tensor]:
        m = self.model
        ks, kd = m.kp_detector(source), m.kp_detector(driving)
        out = m.generator(source, kd, ks)
        rec = sum(
            (p - t).abs().mean()
            for p, t in zip(self.pyramid(out.prediction), self.pyramid(driving), strict=True)
        )
        a, b = random_affine(driving.shape[0], self.cfg.affine_sigma, gen)
        a, b = a.to(self.device), b.to(self.device)
        kt = m.kp_detector(warp_affine(driving, a, b))
        mapped = torch.einsum("nij,nkj->nki", a, kt.value) + b.unsqueeze(1)  # T(kp of the warped frame)
        res = {"reconstruction": torch.as_tensor(rec), "equivariance": (kd.value - mapped).abs().mean()}
        if kd.jacobian is not None and kt.jacobian is not None:
            jt = torch.matmul(a.unsqueeze(1), kt.jacobian)  # (N, K, 2, 2)
            eye = torch.eye(2, device=self.device).expand_as(jt)
            res["jacobian"] = (eye - torch.matmul(inverse2x2(kd.jacobian), jt)).abs().mean()
        self._last = (source, driving, out)
        return res

    def train_step(
        self, source: torch.Tensor, driving: torch.Tensor, gen: torch.Generator
    ) -> dict[str, float]:
        self.model.kp_detector.train()
        self.model.generator.train()
        parts = self.losses(source.to(self.device), driving.to(self.device), gen)
        total = (
            parts["reconstruction"]
            + self.cfg.equivariance_weight * parts["equivariance"]
            + self.cfg.jacobian_weight * parts.get("jacobian", torch.zeros((), device=self.device))
        )
        self.opt_kp.zero_grad(set_to_none=True)
        self.opt_gen.zero_grad(set_to_none=True)
        total.backward()
        self.opt_kp.step()
        self.opt_gen.step()
        self.step += 1
        return {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in parts.items()}}

    def save(self, path: Path) -> None:
        self.model.kp_detector.eval()
        self.model.generator.eval()
        extra = {
            "optimizer_kp_detector": self.opt_kp.state_dict(),
            "optimizer_generator": self.opt_gen.state_dict(),
            "step": self.step,
        }
        save_fomm(self.model.to("cpu"), path, extra=extra)
        self.model.to(self.device)

    def load_state(self, path: Path) -> None:
        obj = read_checkpoint(path)
        self.opt_kp.load_state_dict(obj["optimizer_kp_detector"])
        self.opt_gen.load_state_dict(obj["optimizer_generator"])
        self.step = int(obj["step"])

    def sample_grid(self, path: Path, rows: int = 4) -> None:
        """PNG: rows of source | driving | deformed | prediction."""
        source, driving, out = self._last
        cols = [source, driving, out.deformed if out.deformed is not None else source, out.prediction]
        grid = torch.cat(
            [torch.cat([c[i] for c in cols], dim=2) for i in range(min(rows, len(source)))], dim=1
        )
        img = (grid.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def sample_pairs(
    videos: list[np.ndarray], n: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """n (source, driving) frame pairs, each from one random video: float (n, 3, S, S) x2."""
    src, drv = [], []
    for _ in range(n):
        v = videos[int(rng.integers(len(videos)))]
        i, j = rng.choice(len(v), size=2, replace=False)
        src.append(v[i])
        drv.append(v[j])

    def t(x: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(x)).permute(0, 3, 1, 2).float() / 255.0

    return t(src), t(drv)


def samples_dir(out: Path) -> Path:
    """Where sample grids of checkpoint ``out`` go: ``<name>_samples/`` next to it."""
    return out.parent / f"{out.name.split('.')[0]}_samples"


def train_fomm(
    videos: list[np.ndarray],
    model_cfg: FommConfig,
    out: str | Path,
    cfg: FommTrainConfig,
    *,
    resume: bool = True,
    progress: bool = True,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train (or resume training of) ``out``; returns the per-step losses of this run."""
    out = Path(out)
    torch.manual_seed(cfg.seed)
    if resume and out.exists():
        model = load_fomm(out, model_cfg)
        trainer = FommTrainer(model, cfg)
        trainer.load_state(out)
    else:
        trainer = FommTrainer(build_model(model_cfg), cfg)
    # per-step streams derived from (seed, step): a resumed run draws what an unbroken run draws
    history: list[dict[str, float]] = []
    bar = tqdm(total=cfg.steps, initial=trainer.step, disable=not progress, desc="train fomm", unit="step")
    while trainer.step < cfg.steps:
        rng = np.random.default_rng([cfg.seed, trainer.step])
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + trainer.step)
        source, driving = sample_pairs(videos, cfg.batch_size, rng)
        losses = trainer.train_step(source, driving, gen)
        if not math.isfinite(losses["loss"]):
            raise FloatingPointError(f"training diverged at step {trainer.step}: {losses}")
        history.append(losses)
        bar.update(1)
        bar.set_postfix(loss=f"{losses['loss']:.4f}")
        if on_step is not None:
            on_step(trainer.step, losses)
        if trainer.step % cfg.sample_every == 0 or trainer.step == cfg.steps:
            trainer.sample_grid(samples_dir(out) / f"step_{trainer.step:07d}.png")
        if trainer.step % cfg.save_every == 0 or trainer.step == cfg.steps:
            trainer.save(out)
    bar.close()
    return history
