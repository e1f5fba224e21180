"""FommRenderer: rig renders In/It -> keypoints -> relative motion -> cached-source generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fomm_fixtures import one_thread, paths  # noqa: F401

from emostream.arkit import MOTION_DIM, neutral_vector
from emostream.models.fomm.checkpoint import load_fomm, save_fomm
from emostream.models.fomm.keypoints import movement_scale, normalize_kp
from emostream.render.fomm_renderer import FommRenderer, to_tensor


class DiscRig:
    """A stand-in rig: a disc whose position follows motion[:, 17] (jawOpen) and yaw."""

    def __init__(self, size: int) -> None:
        self.size = size

    def _draw(self, jaw: float, yaw: float) -> np.ndarray:
        yy, xx = np.mgrid[: self.size, : self.size] / self.size
        d = (xx - 0.5 - 0.2 * yaw) ** 2 + (yy - 0.5 - 0.15 * jaw) ** 2
        img = np.stack([np.exp(-d / 0.02), 0.5 + 0.5 * xx, 1 - yy], -1)
        return (img * 255).astype(np.uint8)

    def rig_render(self, motion: np.ndarray) -> np.ndarray:
        return np.stack([self._draw(float(m[17]), float(m[52])) for m in motion])

    def rig_render_neutral(self) -> np.ndarray:
        return self._draw(0.0, 0.0)


def _motion(n: int) -> np.ndarray:
    m = np.tile(neutral_vector(), (n, 1)).astype(np.float32)
    m[:, 17] = np.linspace(0, 1, n)
    m[:, 52] = np.linspace(-0.3, 0.3, n)
    return m


def _source(size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    small = rng.random((8, 8, 3)).astype(np.float32)
    import cv2

    return (cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def test_renderer_matches_reference_modules() -> None:
    """Cached source + batching give the reference generator's prediction for each frame."""
    ckpt, cfg, _ = paths("fomm_small")
    model = load_fomm(ckpt, cfg)
    src, rig = _source(128), DiscRig(128)
    r = FommRenderer(src, rig, model, batch_size=3)
    motion = _motion(5)
    frames = r.render(motion)
    assert frames.shape == (5, 128, 128, 3) and frames.dtype == np.uint8
    assert (r.height, r.width) == (128, 128)
    with torch.no_grad():
        ks = model.kp_detector(to_tensor(src, 128))
        k0 = model.kp_detector(to_tensor(rig.rig_render_neutral(), 128))
        scale = movement_scale(ks, k0, True)
        assert scale == pytest.approx(r.scale, rel=1e-5)
        for i in range(5):
            kd = model.kp_detector(to_tensor(rig.rig_render(motion[i : i + 1]), 128))
            kn = normalize_kp(ks, kd, k0, model.config.normalization, scale=scale)
            ref = model.generator(to_tensor(src, 128), kn, ks).prediction
            want = (ref.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()[0]
            assert np.abs(frames[i].astype(int) - want).max() <= 1
    assert np.array_equal(frames, r.render(motion)), "same motion must give the same frames"
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 0.5, "the motion must move the output"


def test_bad_motion_shape() -> None:
    ckpt, cfg, _ = paths("fomm_small_alt")
    r = FommRenderer(_source(128), DiscRig(128), load_fomm(ckpt, cfg))
    with pytest.raises(ValueError, match=f"motion must be \\[B, {MOTION_DIM}\\]"):
        r.render(np.zeros((2, 10), np.float32))


def test_from_checkpoint_with_the_analytic_rig(tmp_path: Path) -> None:
    """Driven by the analytic renderer's rig renders; our checkpoint embeds its config."""
    from emostream.render.portrait import default_portrait, prepare_portrait

    ckpt, cfg, _ = paths("fomm_small")
    own = tmp_path / "own.pth.tar"
    save_fomm(load_fomm(ckpt, cfg), own)
    portrait = prepare_portrait(default_portrait(), 256)
    r = FommRenderer.from_checkpoint(portrait, own, batch_size=4)
    frames = r.render(_motion(3))
    assert frames.shape == (3, 256, 256, 3)
    assert np.abs(frames[0].astype(int) - frames[2]).mean() > 0.1


def test_sessions_batch_together_with_one_backend() -> None:
    """Two sessions (different portraits) share one backend; one batched pass = separate passes."""
    from emostream.models.fomm.backends import create_backend
    from emostream.render.fomm_renderer import render_sessions

    ckpt, cfg, _ = paths("fomm_small")
    backend = create_backend(load_fomm(ckpt, cfg), "torch-cpu")
    a = FommRenderer(_source(128), DiscRig(128), backend)
    b = FommRenderer(255 - _source(128), DiscRig(128), backend)
    ma, mb = _motion(3), _motion(3)[::-1].copy()
    fa, fb = render_sessions([a, b], [ma, mb])
    assert np.abs(fa.astype(int) - a.render(ma)).max() <= 1
    assert np.abs(fb.astype(int) - b.render(mb)).max() <= 1
    assert np.abs(fa.astype(int) - fb).mean() > 1.0
