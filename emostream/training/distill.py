"""Progressive distillation of EmoDiff (Salimans & Ho, 2022) down to a few DDIM steps.

Why progressive distillation: the teacher is a v-prediction model sampled with deterministic
DDIM, which is exactly the setting the method was designed for; each round trains a student to
do in one DDIM step what the teacher does in two, so the student keeps the sampler unchanged
(same streaming code, same hard prefix condition, same per-frame initial noise → diversity is
kept, because the noise-to-motion map stays a function of the initial noise). It needs no extra
networks or discriminators, and each round is a short, stable regression, which fits the CPU
budget here; consistency distillation would need many more iterations to reach the same
1–4-step quality. Classifier-free guidance of the teacher is baked into the student (guided
distillation, Meng et al. 2023): the teacher *sampler* is the network plus the guidance named in
its checkpoint meta (e.g. audio 1.5 on the mouth only), and the student learns to reproduce that
sampler with one network evaluation per step instead of two.

Round ``N -> N/2``: for a student step ``t -> t''`` (``t'`` the midpoint) run two teacher DDIM
steps from ``z_t`` (with the hard condition applied), then the student's target is the ``x``
that one DDIM step would need to land on the same ``z_t''``:
``x~ = (z_t'' - (sigma_t''/sigma_t) z_t) / (alpha_t'' - (sigma_t''/sigma_t) alpha_t)``.
The loss is the v-space MSE on the unknown frames (SNR+1 weighting of the x error).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from emostream.arkit import MOTION_DIM
from emostream.engine.sampler import Guidance
from emostream.errors import ConfigError
from emostream.models.emodiff import EmoDiff, EmoDiffConfig, save_emodiff
from emostream.training.train_emodiff import Batch, Clip, Ema, WindowBatcher, cosine_alpha_sigma

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    sampler_steps: int = 4  # final student steps
    teacher_steps: int | None = None  # None: the teacher checkpoint's own sampler_steps
    iters_per_round: int = 800
    batch: int = 32
    lr: float = 3e-4
    ema: float = 0.995
    seed: int = 0
    #: teacher guidance baked into the student; None: the teacher checkpoint's own guidance
    guidance_audio: float | None = None
    guidance_style: float | None = None
    guidance_audio_mouth_only: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def teacher_guidance(cfg: DistillConfig, teacher_meta: dict[str, Any]) -> Guidance:
    """The guidance of the teacher sampler: the CLI's values over the checkpoint meta's."""
    g = teacher_meta.get("guidance") or {}
    try:
        return Guidance(
            float(cfg.guidance_audio if cfg.guidance_audio is not None else g.get("audio", 1.0)),
            float(cfg.guidance_style if cfg.guidance_style is not None else g.get("style", 1.0)),
            bool(
                cfg.guidance_audio_mouth_only
                if cfg.guidance_audio_mouth_only is not None
                else g.get("audio_mouth_only", False)
            ),
        )
    except (TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"bad 'guidance' in the teacher's meta: {g!r}") from e


def _teacher_v(
    teacher: EmoDiff, z: torch.Tensor, t: torch.Tensor, b: Batch, style: torch.Tensor, guidance: Guidance
) -> torch.Tensor:
    B = z.shape[0]
    ones = torch.ones(B, 2)
    if not guidance.active:
        return teacher(z, t, b.audio, style, b.x0, b.mask, ones)
    ga = torch.as_tensor(guidance.audio_scale(), dtype=z.dtype)  # scalar or [55]
    gs = guidance.style
    r = lambda x: torch.cat([x, x, x])  # noqa: E731
    keep = torch.cat([ones, torch.tensor([[1.0, 0.0]]).expand(B, 2), torch.zeros(B, 2)])
    v = teacher(r(z), r(t), r(b.audio), r(style), r(b.x0), r(b.mask), keep)
    v_as, v_a, v_0 = v[:B], v[B : 2 * B], v[2 * B :]
    return v_0 + ga * (v_a - v_0) + gs * (v_as - v_a)


def _ddim(z: torch.Tensor, v: torch.Tensor, t: torch.Tensor, s: torch.Tensor, b: Batch) -> torch.Tensor:
    a_t, s_t = (x[:, None, None] for x in cosine_alpha_sigma(t))
    a_s, s_s = (x[:, None, None] for x in cosine_alpha_sigma(s))
    x0 = (a_t * z - s_t * v).clamp(-8, 8)
    x0 = b.mask * b.x0 + (1 - b.mask) * x0
    eps = s_t * z + a_t * v
    return a_s * x0 + s_s * eps


def distill_round(
    teacher: EmoDiff,
    batcher: WindowBatcher,
    student_steps: int,
    cfg: DistillConfig,
    guidance: Guidance,
    progress: bool,
) -> tuple[EmoDiff, list[float]]:
    """One round: a student (initialised from the teacher) for ``student_steps`` DDIM steps."""
    teacher.eval()
    student = copy.deepcopy(teacher).train()
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.0)
    ema = Ema(student, cfg.ema)
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + student_steps)
    losses: list[float] = []
    it = range(cfg.iters_per_round)
    if progress:
        it = tqdm(it, desc=f"distill -> {student_steps} steps", dynamic_ncols=True)
    for i in it:
        for g in opt.param_groups:
            g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * i / cfg.iters_per_round))
        b = batcher.sample(cfg.batch)
        B, W, _ = b.x0.shape
        k = torch.randint(0, student_steps, (B,), generator=gen)
        t = 1.0 - k.float() / student_steps
        t_mid = t - 0.5 / student_steps
        t_end = t - 1.0 / student_steps
        a_t, s_t = (x[:, None, None] for x in cosine_alpha_sigma(t))
        eps = torch.randn(b.x0.shape, generator=gen)
        z = a_t * b.x0 + s_t * eps
        with torch.no_grad():
            style = teacher.style_encoder.from_label(b.emotion, b.intensity)[:, None].expand(B, W, -1)
            z1 = _ddim(z, _teacher_v(teacher, z, t, b, style, guidance), t, t_mid, b)
            z2 = _ddim(z1, _teacher_v(teacher, z1, t_mid, b, style, guidance), t_mid, t_end, b)
            a_e, s_e = (x[:, None, None] for x in cosine_alpha_sigma(t_end))
            ratio = s_e / s_t
            x_tgt = (z2 - ratio * z) / (a_e - ratio * a_t)
            x_tgt = b.mask * b.x0 + (1 - b.mask) * x_tgt
            v_tgt = (a_t * z - x_tgt) / s_t
        s_style = student.style_encoder.from_label(b.emotion, b.intensity)[:, None].expand(B, W, -1)
        v = student(z, t, b.audio, s_style, b.x0, b.mask, torch.ones(B, 2))
        w = (1 - b.mask) * b.valid
        loss = (((v - v_tgt) ** 2) * w).sum() / (w.sum() * MOTION_DIM).clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        ema.update(student, i)
        losses.append(float(loss.detach()))
        if progress:
            it.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")  # type: ignore[attr-defined]
    cfg_s = EmoDiffConfig.from_dict(
        {**student.cfg.to_dict(), "sampler_steps": student_steps, "p_drop_audio": 0.0, "p_drop_style": 0.0}
    )
    out = EmoDiff(cfg_s)
    out.load_state_dict(ema.shadow)
    return out.eval(), losses


def distill(
    teacher: EmoDiff,
    teacher_meta: dict[str, Any],
    clips: Sequence[Clip],
    out: str | Path,
    cfg: DistillConfig,
    *,
    progress: bool = True,
    teacher_path: str | None = None,
) -> tuple[EmoDiff, dict[str, Any]]:
    n0 = cfg.teacher_steps or teacher.cfg.sampler_steps
    k = cfg.sampler_steps
    if k < 1 or n0 % k or (n0 // k) & (n0 // k - 1):
        raise ConfigError(f"--sampler-steps {k} must be the teacher's {n0} steps divided by a power of 2")
    torch.manual_seed(cfg.seed)
    hop, la = int(teacher_meta.get("hop", 3)), int(teacher_meta.get("lookahead", 2))
    W = teacher.cfg.window
    batcher = WindowBatcher(
        clips,
        W,
        W - hop - la,
        teacher.silence_feat.numpy(),
        teacher.motion_mean.numpy(),
        teacher.motion_std.numpy(),
        cfg.seed,
    )
    t0 = time.time()
    rounds: list[dict[str, Any]] = []
    model, n = teacher, n0
    guidance = teacher_guidance(cfg, teacher_meta)
    while n > k:
        # the first round distills the guided teacher sampler; later rounds distill a student,
        # which already has the guidance baked in
        g = guidance if model is teacher else Guidance()
        model, losses = distill_round(model, batcher, n // 2, cfg, g, progress)
        n //= 2
        rounds.append({"steps": n, "final_loss": float(np.mean(losses[-50:]))})
        log.info("distilled to %d steps, loss %.4f", n, rounds[-1]["final_loss"])
    if not rounds:  # k == n0: the student is the teacher sampled with k DDIM steps
        if guidance.active:
            raise ConfigError(
                "--sampler-steps equal to the teacher's steps distills nothing, so the teacher's "
                "guidance cannot be baked in; distill to fewer steps"
            )
        model = EmoDiff(EmoDiffConfig.from_dict({**teacher.cfg.to_dict(), "sampler_steps": k}))
        model.load_state_dict(teacher.state_dict())
        model.eval()
    meta = {
        **{
            k2: v
            for k2, v in teacher_meta.items()
            if k2 in ("hop", "lookahead", "fps", "n_train_clips", "data")
        },
        "distill": cfg.to_dict(),
        #: the teacher sampler's guidance, now baked into the weights (the student runs unguided)
        "baked_guidance": guidance.to_dict(),
        "rounds": rounds,
        "teacher": teacher_path,
        "teacher_steps": n0,
        "root_teacher": teacher_meta.get("root_teacher", teacher_path),
        "distill_seconds": round(time.time() - t0, 1),
    }
    save_emodiff(model, out, meta)
    return model, meta
