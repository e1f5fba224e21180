"""Relative motion, the fold-free warp, identity at neutral, static background, teeth stability."""

from __future__ import annotations

import numpy as np
import pytest
from render_fixtures import *  # noqa: F403  (pytest fixtures)
from render_fixtures import vec

from emostream.arkit import BLENDSHAPE_NAMES, MOTION_DIM
from emostream.render import topology as tp
from emostream.render.motion_transfer import hull_area, movement_scale, relative_keypoints
from emostream.render.warp import jacobian_det, signed_areas


def test_relative_motion_formula() -> None:
    square = np.array([[0.0, 0], [1, 0], [1, 1], [0, 1]])
    source = 2.0 * square + 10.0  # twice as large as the driving face
    initial = square.copy()
    driving = square + np.array([[0.1, 0.0], [0.0, 0.0], [0.0, -0.2], [0.0, 0.0]])
    assert hull_area(source) == pytest.approx(4.0)
    assert movement_scale(source, initial) == pytest.approx(2.0)
    out = relative_keypoints(source, driving, initial)
    np.testing.assert_allclose(out - source, 2.0 * (driving - initial))
    out1 = relative_keypoints(source, driving, initial, adapt_movement_scale=False)
    np.testing.assert_allclose(out1 - source, driving - initial)
    np.testing.assert_allclose(relative_keypoints(source, initial, initial), source)


def _motions() -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = [np.eye(MOTION_DIM, dtype=np.float32)[i] for i in range(len(BLENDSHAPE_NAMES))]
    rows += [vec(yaw=0.35), vec(yaw=-0.35), vec(pitch=0.25), vec(pitch=-0.25), vec(roll=0.3), vec(roll=-0.3)]
    for _ in range(6):  # random expressions + head pose
        m = np.zeros(MOTION_DIM, np.float32)
        m[:52] = rng.uniform(0, 1, 52) * (rng.uniform(0, 1, 52) < 0.3)
        m[52:] = rng.uniform(-0.2, 0.2, 3)
        rows.append(m)
    return np.stack(rows)


def test_warp_is_fold_free(renderer_256) -> None:
    r = renderer_256
    w = r.warp
    kps = r.keypoints(_motions())
    for i, kp in enumerate(kps):
        pts, alpha = w.fold_guard(w.driven_points(kp))
        assert alpha > 0.5, i
        # every driven triangle keeps the orientation of its source triangle: the piecewise-affine
        # backward map has det = area(source) / area(driven) > 0 on every triangle
        assert (signed_areas(pts, w.triangles) > 0).all(), i
    for m in _motions()[[17, 0, 19, 52, 57]]:  # jawOpen, blink, funnel, yaw, random
        mx, my, _ = w.backward_map(r.keypoints(m[None])[0])
        det = jacobian_det(mx, my)[2:-2, 2:-2]
        assert det.min() > 0.0, det.min()


def test_neutral_frame_equals_the_source(renderer_256, astronaut_256) -> None:
    out = renderer_256.render(np.zeros((2, MOTION_DIM), np.float32))
    assert out.shape == (2, 256, 256, 3) and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - astronaut_256.crop.astype(int))
    assert diff.max() <= 1


def test_background_stays_still_and_frames_are_deterministic(renderer_256, astronaut_256) -> None:
    m = _motions()
    a = renderer_256.render(m)
    b = renderer_256.render(m)
    np.testing.assert_array_equal(a, b)
    ring = renderer_256.warp.ring_mask(feather=1.0) > 0.01
    outside = ~ring
    assert outside.mean() > 0.2
    diff = np.abs(a.astype(int) - astronaut_256.crop.astype(int))
    assert diff[:, outside].max() == 0
    assert diff[:, ring].max() > 20  # the face did move


def test_lips_part_and_eyes_close(renderer_256) -> None:
    kp = renderer_256.keypoints(np.stack([vec(), vec(jawOpen=1.0), vec(eyeBlinkLeft=1.0, eyeBlinkRight=1.0)]))
    gap = np.linalg.norm(kp[:, tp.LIP_LOWER_MID] - kp[:, tp.LIP_UPPER_MID], axis=1)
    assert gap[1] > gap[0] + 15
    eye = np.abs(kp[:, tp.EYE_LEFT_BOTTOM, 1] - kp[:, tp.EYE_LEFT_TOP, 1])
    assert eye[2] < 0.15 * eye[0]


def _eye_openings(lm: np.ndarray, size: int) -> list[np.ndarray]:
    """bool[S, S] per eye: the upper 60 % of the opening between the source's lid contours, less
    15 % of its width at each corner (the iris and sclera at rest; at full blink the lids meet
    lower, and the lash fringe drawn there tapers out into the corners)."""
    import cv2

    out = []
    for up, lo in ((tp.EYE_RIGHT_UPPER, tp.EYE_RIGHT_LOWER), (tp.EYE_LEFT_UPPER, tp.EYE_LEFT_LOWER)):
        m = np.zeros((size, size), np.uint8)
        u, lw = lm[list(up), :2], lm[list(lo), :2]
        poly = np.concatenate([u, (0.4 * u + 0.6 * lw)[::-1]])
        cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
        x0, x1 = float(u[:, 0].min()), float(u[:, 0].max())
        m[:, : round(x0 + 0.15 * (x1 - x0))] = 0  # the closed lid's lash fringe ends in the corners
        m[:, round(x1 - 0.15 * (x1 - x0)) :] = 0
        out.append(m > 0)
    return out


def _dark_fraction(frame: np.ndarray, region: np.ndarray, skin: float) -> float:
    lum = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return float((lum[region] < 0.6 * skin).mean())


def test_closed_lids_hide_the_eye(renderer_256, astronaut_256) -> None:
    """At full blink the iris and the dark of the eye are gone from where the eye was open; at
    half blink the eye is still partly visible (the overlay fades in with closure)."""
    import cv2

    lm = astronaut_256.landmarks
    frames = renderer_256.render(
        np.stack([vec(), vec(eyeBlinkLeft=0.4, eyeBlinkRight=0.4), vec(eyeBlinkLeft=1.0, eyeBlinkRight=1.0)])
    )
    oval = np.zeros((256, 256), np.uint8)
    cv2.fillPoly(oval, [np.round(lm[list(tp.FACE_OVAL), :2]).astype(np.int32)], 1)
    skin = float(np.median(frames[0][oval > 0].astype(np.float64) @ np.array([0.299, 0.587, 0.114])))
    for eye in _eye_openings(lm, 256):
        rest, half, closed = (_dark_fraction(f, eye, skin) for f in frames)
        assert rest > 0.3 and half > 0.2, (rest, half)
        assert closed < 0.1 and closed < 0.2 * rest, (rest, closed)


def _upper_teeth(r, m: np.ndarray) -> np.ndarray:
    return r.mouth._project(r.mouth.upper_edge, m, jaw=False)


def test_teeth_are_fixed_to_skull_and_jaw(renderer_256) -> None:
    r = renderer_256
    base = vec(jawOpen=0.7)
    lip = vec(jawOpen=0.7, mouthUpperUpLeft=1.0, mouthUpperUpRight=1.0, mouthFunnel=0.5)
    np.testing.assert_array_equal(_upper_teeth(r, base), _upper_teeth(r, lip))  # lips never drag teeth
    np.testing.assert_array_equal(_upper_teeth(r, base), _upper_teeth(r, vec(jawOpen=0.1)))  # nor the jaw
    lo_a = r.mouth._project(r.mouth.lower_edge, vec(jawOpen=0.2), jaw=True)
    lo_b = r.mouth._project(r.mouth.lower_edge, vec(jawOpen=0.8), jaw=True)
    assert (lo_b[:, 1] - lo_a[:, 1]).mean() > 5  # lower teeth drop with the jaw
    # pixel level: where both frames show the mouth, the upper teeth rows are identical
    fa, fb = r.render(np.stack([base, lip]))
    t = _upper_teeth(r, base)
    x0, x1 = int(t[:, 0].min()) + 4, int(t[:, 0].max()) - 4
    y = round(float(t[:, 1].mean())) - 3
    np.testing.assert_array_equal(fa[y, x0:x1], fb[y, x0:x1])
    assert fa[y, x0:x1].mean() > 100  # and it is a bright tooth row, not the cavity


def test_paste_back_keeps_the_photo(astronaut_256) -> None:
    from emostream.render.analytic import AnalyticRenderer
    from emostream.render.framing import Framing

    r = AnalyticRenderer(astronaut_256, framing=Framing())
    assert (r.height, r.width) == astronaut_256.image.shape[:2]
    out = r.render(np.stack([vec(), vec(jawOpen=1.0, yaw=0.2)]))
    photo = astronaut_256.image.astype(int)
    assert np.abs(out[0].astype(int) - photo).max() <= 2
    assert r.paste is not None
    x0, y0, x1, y1 = r.paste.box
    far = np.ones(photo.shape[:2], bool)
    far[y0:y1, x0:x1] = False
    assert np.abs(out[1].astype(int) - photo)[far].max() == 0


def test_rig_renders_for_fomm(renderer_256) -> None:
    n = renderer_256.rig_render_neutral()
    d = renderer_256.rig_render(np.stack([vec(jawOpen=1.0)]))
    assert n.shape == (256, 256, 3) and d.shape == (1, 256, 256, 3)
    assert np.abs(n.astype(int) - d[0]).sum() > 1000
    np.testing.assert_array_equal(renderer_256.rig_render(vec()[None])[0], n)
