"""The few-step diffusion sampler and the streaming sliding window, written once for every backend.

Diffusion: cosine schedule ``alpha(t) = cos(pi t / 2)``, ``sigma(t) = sin(pi t / 2)``, v-prediction,
deterministic DDIM updates on ``K`` evenly spaced times from 1 to 0. The overlap with the previous
window is a hard condition: the network sees it as ``prefix``/``mask`` inputs and the predicted
clean motion is overwritten with it at every step (inpainting + conditioning).

Streaming (``WindowSchedule``): a window has ``W`` frames = ``P`` known frames (the last emitted
ones) + ``H`` new frames that are emitted + ``L`` lookahead frames that are generated and thrown
away (they are regenerated, with more audio, by the next window). A window runs as soon as the
audio features of all its frames are in, so the algorithmic latency is ``H + L`` frames. The
initial noise of a frame is drawn from ``(seed, absolute frame index)`` (``noise="frame"``): a
frame keeps the same noise in every window that generates it, so the next window regenerates the
lookahead frames close to what the previous one predicted and the joins stay smooth (the older
``noise="window"`` draws fresh noise per ``(seed, window index)``). Either way, for a fixed seed
the output never depends on how the features were chunked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, MOTION_DIM, MOUTH_INDICES, clamp_motion
from emostream.errors import ConfigError, InputError


class Denoiser(Protocol):
    """What a backend provides: one batched network evaluation (numpy in, numpy out)."""

    window: int
    feature_dim: int
    style_dim: int

    def denoise(
        self,
        x_t: np.ndarray,
        t: np.ndarray,
        audio: np.ndarray,
        style: np.ndarray,
        prefix: np.ndarray,
        mask: np.ndarray,
        keep: np.ndarray,
    ) -> np.ndarray: ...


def alpha_sigma(t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, dtype=np.float64)
    return np.cos(0.5 * math.pi * t), np.sin(0.5 * math.pi * t)


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance scales; 1.0 / 1.0 = plain conditional sampling (one evaluation)."""

    audio: float = 1.0
    style: float = 1.0
    #: apply the audio scale to the mouth dimensions only (sharper lip sync; blinks, brows and
    #: head keep their unguided, livelier distribution)
    audio_mouth_only: bool = False

    @property
    def active(self) -> bool:
        return self.audio != 1.0 or self.style != 1.0

    def audio_scale(self) -> np.ndarray | float:
        """The audio scale, float or float32[55] per motion dimension."""
        if not self.audio_mouth_only:
            return self.audio
        g = np.ones(MOTION_DIM, np.float32)
        g[list(MOUTH_INDICES)] = self.audio
        return g

    def to_dict(self) -> dict[str, float | bool]:
        return {"audio": self.audio, "style": self.style, "audio_mouth_only": self.audio_mouth_only}


def guided_v(
    net: Denoiser,
    z: np.ndarray,
    t: float,
    audio: np.ndarray,
    style: np.ndarray,
    prefix: np.ndarray,
    mask: np.ndarray,
    guidance: Guidance,
) -> np.ndarray:
    """v-prediction with compositional CFG: v(∅,∅) + g_a (v(a,∅) − v(∅,∅)) + g_s (v(a,s) − v(a,∅))."""
    B = z.shape[0]
    if not guidance.active:
        keep = np.ones((B, 2), np.float32)
        return net.denoise(z, np.full(B, t, np.float32), audio, style, prefix, mask, keep)
    rep = lambda a: np.concatenate([a, a, a], axis=0)  # noqa: E731
    keep = np.concatenate([np.ones((B, 2)), np.tile([[1.0, 0.0]], (B, 1)), np.zeros((B, 2))], axis=0).astype(
        np.float32
    )
    v = net.denoise(
        rep(z), np.full(3 * B, t, np.float32), rep(audio), rep(style), rep(prefix), rep(mask), keep
    )
    v_as, v_a, v_0 = v[:B], v[B : 2 * B], v[2 * B :]
    return v_0 + guidance.audio_scale() * (v_a - v_0) + guidance.style * (v_as - v_a)


def sample_window(
    net: Denoiser,
    noise: np.ndarray,
    audio: np.ndarray,
    style: np.ndarray,
    prefix: np.ndarray,
    mask: np.ndarray,
    steps: int,
    guidance: Guidance = Guidance(),
) -> np.ndarray:
    """DDIM from pure noise. noise/prefix [B,W,55] (normalised), audio [B,W,F], style [B,W,S],
    mask [B,W,1] -> clean normalised motion [B,W,55] with the known frames equal to ``prefix``."""
    if steps < 1:
        raise ConfigError(f"sampler steps must be >= 1, got {steps}")
    z = noise.astype(np.float32)
    x0 = z
    for i in range(steps):
        t, s = 1.0 - i / steps, 1.0 - (i + 1) / steps
        a_t, s_t = alpha_sigma(t)
        a_s, s_s = alpha_sigma(s)
        v = guided_v(net, z, t, audio, style, prefix, mask, guidance)
        x0 = np.clip(a_t * z - s_t * v, -8.0, 8.0)
        x0 = mask * prefix + (1.0 - mask) * x0  # hard condition
        eps = s_t * z + a_t * v
        z = (a_s * x0 + s_s * eps).astype(np.float32)
    return x0.astype(np.float32)


@dataclass(frozen=True)
class WindowSchedule:
    """W = P (known) + H (emitted) + L (lookahead) frames."""

    window: int = 24
    hop: int = 3
    lookahead: int = 2
    #: weight a of the zero-latency [a/2, 1-a, a/2] temporal filter applied to the emitted frames
    #: of each window (neighbours: the previous emitted frame and the window's own next frame,
    #: a lookahead frame for the last one); 0 disables it.
    smooth: float = 0.0
    #: motion dimensions the filter leaves alone: blinks last 2-4 frames and a 3-tap filter
    #: would cut their peak (a 1-2 frame closure would no longer reach a closed lid).
    sharp: tuple[int, ...] = (BLENDSHAPE_INDEX["eyeBlinkLeft"], BLENDSHAPE_INDEX["eyeBlinkRight"])
    #: "frame": initial noise per (seed, absolute frame); "window": per (seed, window index).
    noise: str = "frame"

    def __post_init__(self) -> None:
        if not 0.0 <= self.smooth < 1.0:
            raise ConfigError(f"smooth must be in [0, 1), got {self.smooth}")
        if self.noise not in ("frame", "window"):
            raise ConfigError(f"noise must be 'frame' or 'window', got {self.noise!r}")
        if any(not 0 <= i < MOTION_DIM for i in self.sharp):
            raise ConfigError(f"sharp dimensions must be in [0, {MOTION_DIM}), got {self.sharp}")
        if self.hop < 1 or self.lookahead < 0 or self.hop + self.lookahead >= self.window:
            raise ConfigError(
                f"bad window schedule W={self.window} H={self.hop} L={self.lookahead}: "
                "need H >= 1, L >= 0, H + L < W"
            )

    @property
    def prefix(self) -> int:
        return self.window - self.hop - self.lookahead

    @property
    def latency_frames(self) -> int:
        return self.hop + self.lookahead


def window_noise(seed: int, index: int, window: int) -> np.ndarray:
    """float32[W, 55] standard normal noise of window ``index``: a function of (seed, index) only."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & 0xFFFFFFFF, index])))
    return rng.standard_normal((window, MOTION_DIM)).astype(np.float32)


def frame_noise(seed: int, frame: int) -> np.ndarray:
    """float32[55] standard normal noise of absolute frame ``frame``: a function of (seed, frame)."""
    ss = np.random.SeedSequence([seed & 0xFFFFFFFF, 0x5EED, frame & 0xFFFFFFFF])
    return np.random.Generator(np.random.PCG64(ss)).standard_normal(MOTION_DIM).astype(np.float32)


class FrameNoise:
    """Noise rows of consecutive windows, reusing the rows of frames already drawn."""

    def __init__(self, seed: int) -> None:
        self.seed, self.f0 = seed, 0
        self.rows = np.zeros((0, MOTION_DIM), np.float32)  # frames f0 .. f0 + len(rows)

    def window(self, start: int, n: int) -> np.ndarray:
        """float32[n, 55]: the noise of frames start .. start + n (windows move forward only)."""
        lo = max(0, start - self.f0)
        have = self.rows[lo : lo + n] if start >= self.f0 else self.rows[:0]
        first_new = start + len(have)
        new = [frame_noise(self.seed, f) for f in range(first_new, start + n)]
        rows = np.concatenate([have, np.stack(new)]) if new else have
        self.rows, self.f0 = rows.copy(), start
        return rows


class StyleTrack:
    """Per-frame style vectors: a change starting at frame f0 ramps linearly over ``ramp`` frames."""

    def __init__(self, vec: np.ndarray, ramp: int) -> None:
        self.ramp = max(1, ramp)
        self.f0 = 0
        self.src = self.dst = vec.astype(np.float32)

    def set(self, vec: np.ndarray, at_frame: int) -> None:
        self.src = self.at(np.array([at_frame]))[0]
        self.dst = vec.astype(np.float32)
        self.f0 = at_frame

    def at(self, frames: np.ndarray) -> np.ndarray:
        """frames int[n] -> float32[n, S]"""
        w = np.clip((frames - self.f0 + 1) / self.ramp, 0.0, 1.0)[:, None].astype(np.float32)
        return self.src[None] + w * (self.dst - self.src)[None]


class WindowSampler:
    """Streaming sliding-window generation for a batch of ``len(seeds)`` parallel streams sharing
    the same audio (batch 1 for a live session; 8 seeds for the diversity metric)."""

    def __init__(
        self,
        net: Denoiser,
        motion_mean: np.ndarray,
        motion_std: np.ndarray,
        silence_feat: np.ndarray,
        style: np.ndarray,
        *,
        seeds: tuple[int, ...] = (0,),
        steps: int = 4,
        schedule: WindowSchedule = WindowSchedule(),
        guidance: Guidance = Guidance(),
    ) -> None:
        if schedule.window != net.window:
            raise ConfigError(f"schedule window {schedule.window} != network window {net.window}")
        self.net, self.sched, self.steps, self.guidance = net, schedule, steps, guidance
        self.mean, self.std = motion_mean.astype(np.float32), motion_std.astype(np.float32)
        self.silence = silence_feat.astype(np.float32)
        self.seeds = tuple(int(s) for s in seeds)
        self.style = StyleTrack(style, ramp=schedule.window // 2)
        W, B = schedule.window, len(self.seeds)
        self.feats = np.zeros((0, net.feature_dim), np.float32)  # features of frames feat0 ..
        self.feat0 = 0
        self.emitted = 0  # frames emitted so far (absolute index of the next frame)
        self.n_windows = 0
        self._noise = [FrameNoise(s) for s in self.seeds]
        self.hist = np.zeros((B, 0, MOTION_DIM), np.float32)  # last <= P emitted frames, normalised
        self.ahead = np.zeros((B, 0, MOTION_DIM), np.float32)  # previous window's frames after its hop
        self._W = W

    # -- input ---------------------------------------------------------------------------------
    def gate(self, features: np.ndarray, vad: np.ndarray | None = None) -> np.ndarray:
        """Check features float32[n, F] and replace the frames with speech probability under 0.5
        by the silence feature: the features the sampler (and the lip refiner) sees."""
        f = np.asarray(features, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != self.net.feature_dim:
            raise InputError(f"features must be float32[n, {self.net.feature_dim}], got shape {f.shape}")
        if not np.isfinite(f).all():
            raise InputError("features contain NaN or inf")
        if vad is not None:
            v = np.asarray(vad, dtype=np.float32).reshape(-1)
            if v.shape[0] != f.shape[0]:
                raise InputError(f"vad has {v.shape[0]} frames but features have {f.shape[0]}")
            f = np.where(v[:, None] >= 0.5, f, self.silence[None])
        return f

    def push(self, features: np.ndarray, vad: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Append features float32[n, F]; returns (motion [B, m, 55], features [m, F]) ready now."""
        self.feats = np.concatenate([self.feats, self.gate(features, vad)], axis=0)
        return self._run(final=False)

    def push_gated(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``push`` for features already returned by ``gate``."""
        self.feats = np.concatenate([self.feats, features], axis=0)
        return self._run(final=False)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """End of input: emit every frame whose features arrived (silence pads the lookahead)."""
        return self._run(final=True)

    def clear(self) -> int:
        """Drop features not yet turned into motion; motion continues from the emitted frames.
        Returns the number of frames dropped (their features arrived, they will never be emitted);
        the next features pushed become frame ``emitted``."""
        keep = max(self.emitted - self.feat0, 0)
        dropped = max(len(self.feats) - keep, 0)
        self.feats = self.feats[:keep]
        return dropped

    def set_style(self, vec: np.ndarray) -> None:
        self.style.set(vec, self.emitted)

    # -- generation ----------------------------------------------------------------------------
    def _features(self, start: int, n: int) -> np.ndarray:
        """float32[n, F] for frames start..start+n, silence outside what has arrived."""
        out = np.repeat(self.silence[None], n, axis=0)
        lo, hi = max(start, self.feat0), min(start + n, self.feat0 + len(self.feats))
        if hi > lo:
            out[lo - start : hi - start] = self.feats[lo - self.feat0 : hi - self.feat0]
        return out

    def _run(self, final: bool) -> tuple[np.ndarray, np.ndarray]:
        S = self.sched
        W, H, P = S.window, S.hop, S.prefix
        total = self.feat0 + len(self.feats)
        motions, feats = [], []
        while True:
            start = self.emitted - P
            if self.emitted >= total or (not final and start + W > total):
                break
            n_new = min(H, total - self.emitted)
            motion, feat = self._window(start, n_new)
            motions.append(motion)
            feats.append(feat)
        # forget features no later window will read
        drop = max(0, self.emitted - P - self.feat0)
        if drop:
            self.feats, self.feat0 = self.feats[drop:], self.feat0 + drop
        B = len(self.seeds)
        if not motions:
            return np.zeros((B, 0, MOTION_DIM), np.float32), np.zeros((0, self.net.feature_dim), np.float32)
        return np.concatenate(motions, axis=1), np.concatenate(feats, axis=0)

    def _window(self, start: int, n_new: int) -> tuple[np.ndarray, np.ndarray]:
        W, P = self.sched.window, self.sched.prefix
        B = len(self.seeds)
        audio = np.broadcast_to(self._features(start, W), (B, W, self.net.feature_dim))
        style = np.broadcast_to(self.style.at(np.arange(start, start + W)), (B, W, self.net.style_dim))
        prefix = np.zeros((B, W, MOTION_DIM), np.float32)
        mask = np.zeros((B, W, 1), np.float32)
        n_hist = self.hist.shape[1]
        if n_hist:
            prefix[:, P - n_hist : P] = self.hist
            mask[:, P - n_hist : P] = 1.0
        if self.sched.noise == "frame":
            noise = np.stack([n.window(start, W) for n in self._noise])
        else:
            noise = np.stack([window_noise(s, self.n_windows, W) for s in self.seeds])
        x0 = sample_window(
            self.net,
            noise,
            np.ascontiguousarray(audio),
            np.ascontiguousarray(style),
            prefix,
            mask,
            self.steps,
            self.guidance,
        )
        # overlap-add: cross-fade the first frames with what the previous window predicted for them
        n_x = min(self.ahead.shape[1], self.sched.lookahead)
        if n_x:
            w = ((n_x - np.arange(n_x)) / (n_x + 1)).astype(np.float32)[None, :, None]
            x0[:, P : P + n_x] = w * self.ahead[:, :n_x] + (1 - w) * x0[:, P : P + n_x]
        self.ahead = x0[:, P + n_new :].copy()
        new = x0[:, P : P + n_new]
        if self.sched.smooth:
            a = np.float32(self.sched.smooth)
            right = np.minimum(np.arange(P + 1, P + 1 + n_new), W - 1)
            filt = (1 - a) * new + 0.5 * a * (x0[:, P - 1 : P - 1 + n_new] + x0[:, right])
            if self.sched.sharp:
                filt[..., list(self.sched.sharp)] = new[..., list(self.sched.sharp)]
            new = filt
        new = clamp_motion(new * self.std + self.mean)  # [B, n_new, 55]
        self.hist = np.concatenate([self.hist, (new - self.mean) / self.std], axis=1)[:, -P:]
        feat = self._features(self.emitted, n_new)
        self.emitted += n_new
        self.n_windows += 1
        return new.astype(np.float32), feat
