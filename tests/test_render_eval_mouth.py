"""The mouth-interior figures of ``eval render`` tell a photo's own tone, detail and stillness from
a pasted-on one: each is checked on interiors painted to known properties."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest
from render_fixtures import *  # noqa: F403  (pytest fixtures)

from emostream.render import eval_mouth as em
from emostream.render.analytic import AnalyticRenderer
from emostream.render.portrait import SEPIA, gray_test_face, prepare_portrait, sepia_test_face

Painter = Callable[[np.ndarray, np.ndarray, int], None]  # (frame, interior mask, call index)


def _painted(img: np.ndarray, paint: Painter) -> AnalyticRenderer:
    """A 256² renderer whose open-mouth interior is overwritten by ``paint`` after rendering."""
    r = AnalyticRenderer(prepare_portrait(img, 256))
    render = r.render
    calls = [0]

    def wrapped(motion: np.ndarray) -> np.ndarray:
        out = render(motion)
        assert r.warp.last_points is not None
        kp = r.warp.last_points[: r.warp.n_face]
        poly = np.concatenate([kp[em._UPPER_INNER], kp[em._LOWER_INNER][::-1]])
        mask = cv2.dilate(em.polygon_mask(out.shape[1:], poly), np.ones((3, 3), np.uint8)) > 0
        paint(out[0], mask, calls[0])
        calls[0] += 1
        return out

    r.render = wrapped  # type: ignore[method-assign]
    return r


def _two_tone(upper: tuple[float, float, float], lower: tuple[float, float, float]) -> Painter:
    """Upper half of the opening ``upper`` (teeth), lower half ``lower`` (cavity)."""

    def paint(frame: np.ndarray, mask: np.ndarray, _: int) -> None:
        ys = np.nonzero(mask)[0]
        mid = (ys.min() + ys.max()) / 2
        top = mask & (np.arange(mask.shape[0])[:, None] < mid)
        frame[top] = upper
        frame[mask & ~top] = lower

    return paint


@pytest.fixture(scope="module")
def gray(render_cache: None) -> np.ndarray:
    return gray_test_face()


@pytest.fixture(scope="module")
def sepia(render_cache: None) -> np.ndarray:
    return sepia_test_face()


def test_white_teeth_and_red_cavity_fail_on_a_greyscale_photo(gray: np.ndarray) -> None:
    m = em.evaluate_mouth(_painted(gray, _two_tone((232, 222, 200), (90, 22, 24))))
    assert m.skin_chroma < em.GREY_CHROMA and m.photo_tone_spread < em.MONO_SPREAD
    assert m.mouth_colour_ok == 0.0 and m.mouth_tone_dist > 5


def test_grey_interior_passes_on_a_greyscale_photo(gray: np.ndarray) -> None:
    m = em.evaluate_mouth(_painted(gray, _two_tone((205, 205, 205), (28, 28, 28))))
    assert m.mouth_colour_ok == 1.0 and m.mouth_chroma < 1


def test_sepia_interior_passes_and_neutral_white_fails_on_a_sepia_photo(sepia: np.ndarray) -> None:
    def tone(y: float) -> tuple[float, float, float]:
        r, g, b = (float(v) for v in np.clip(y * SEPIA, 0, 255))
        return r, g, b

    ok = em.evaluate_mouth(_painted(sepia, _two_tone(tone(190), tone(30))))
    assert ok.photo_tone_spread < em.MONO_SPREAD and ok.mouth_colour_ok == 1.0
    bad = em.evaluate_mouth(_painted(sepia, _two_tone((225, 225, 228), (40, 12, 14))))
    assert bad.mouth_colour_ok == 0.0 and bad.mouth_tone_dist > ok.mouth_tone_dist + 5


def test_colour_photo_rejects_an_off_hue_interior(astronaut_256) -> None:
    from emostream.render.portrait import default_portrait

    green = em.evaluate_mouth(_painted(default_portrait(), _two_tone((60, 200, 90), (10, 90, 40))))
    assert green.mouth_hue_diff_deg > em.MAX_HUE_DIFF_DEG and green.mouth_colour_ok == 0.0


def test_detail_ratio_tells_flat_from_grainy(gray: np.ndarray) -> None:
    flat = em.evaluate_mouth(_painted(gray, _two_tone((120, 120, 120), (120, 120, 120))))
    assert flat.interior_noise_rel < 0.7 and flat.interior_sharpness_rel < 0.7
    assert flat.interior_detail_ok == 0.0

    def grain(frame: np.ndarray, mask: np.ndarray, _: int) -> None:
        rng = np.random.default_rng(0)
        frame[mask] = np.clip(120 + rng.normal(0, 45, (int(mask.sum()), 1)), 0, 255).astype(np.uint8)

    grainy = em.evaluate_mouth(_painted(gray, grain))
    assert grainy.interior_noise_rel > 1.4 and grainy.interior_sharpness_rel > 1.0


def test_temporal_stability_sees_a_changing_interior(gray: np.ndarray) -> None:
    still = em.evaluate_mouth(_painted(gray, _two_tone((200, 200, 200), (40, 40, 40))))
    assert still.interior_temporal_mad == 0.0

    def shimmer(frame: np.ndarray, mask: np.ndarray, i: int) -> None:
        frame[mask] = 100 + 20 * (i % 2)

    moving = em.evaluate_mouth(_painted(gray, shimmer))
    assert moving.interior_temporal_mad == pytest.approx(20, abs=1)


def test_tone_curve_of_a_sepia_ramp() -> None:
    y = np.linspace(10, 245, 4000)
    px = em.lab(np.clip(y[:, None] * SEPIA, 0, 255).astype(np.uint8)[None])[0]
    curve = em.tone_curve(px)
    assert em.tone_distance(px, curve) < 1.0
    white = em.lab(np.full((1, 50, 3), 230, np.uint8))[0]
    assert em.tone_distance(white, curve) > 10  # neutral white is far off a sepia print's curve
