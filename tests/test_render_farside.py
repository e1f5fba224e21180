"""The far side of a turning head: occluded in painter's order, not folded, not smeared, and no
background pulled into the cheek."""

from __future__ import annotations

import numpy as np
import pytest
from render_fixtures import *  # noqa: F403  (pytest fixtures)
from render_fixtures import vec

from emostream.render.analytic import AnalyticRenderer
from emostream.render.eval_farside import (
    BACKGROUND,
    background_in_face,
    magnification,
    oval_mask,
    turned_poses,
)
from emostream.render.portrait import cached_landmarks, prepare_portrait, sample_faces
from emostream.render.turn import turned_face
from emostream.render.warp import signed_areas

FACES = ("astronaut", "luispedro")


@pytest.fixture(scope="module")
def photos(render_cache: None) -> dict[str, np.ndarray]:
    faces = dict(sample_faces())
    return {n: faces[n] for n in FACES}


@pytest.fixture(scope="module")
def renderers(photos) -> dict[str, AnalyticRenderer]:
    return {n: AnalyticRenderer(prepare_portrait(img, 256)) for n, img in photos.items()}


def _visible_flipped(r: AnalyticRenderer, order: np.ndarray | None = None) -> tuple[int, int]:
    """(raster cells owned by a flipped triangle, face cells) of the last frame, or of the same
    driven points drawn in ``order``."""
    w = r.warp
    assert w.last_points is not None and w.last_ids is not None
    ids = w.last_ids if order is None else w.triangle_ids(w.last_points, order)[0]
    flipped = signed_areas(w.last_points, w.triangles) <= 0
    vis = ids[ids >= 0]
    return int(flipped[vis].sum()), len(vis)


@pytest.mark.parametrize("name", FACES)
def test_painters_order_puts_nearer_triangles_on_top(renderers, name: str) -> None:
    r = renderers[name]
    for m in turned_poses():
        kp = r.keypoints(m[None])[0]
        occ = r.occlusion(m)
        r._warp_crop(kp, m)
        assert r.last_alpha == 1.0  # the far side's fold no longer scales the whole motion down
        assert occ.hidden.any()  # the far side really turns away
        # the visible triangles are drawn far to near
        pts = r.warp.last_points
        a = r.warp.affines(pts)
        order = r.warp.paint_order(pts, np.abs(np.linalg.det(a[:, :, :2])), occ)
        depth = occ.depth[r.warp.triangles].mean(1)[order]
        plain = ~(occ.hidden | r.warp._band | (signed_areas(pts, r.warp.triangles) <= 0))[order]
        collapsed = np.abs(np.linalg.det(a[:, :, :2]))[order] > 4.0
        d = depth[plain & ~collapsed]
        assert (np.diff(d) <= 1e-9).all()
        # the folded far side is covered: fold-free where visible
        shown, cells = _visible_flipped(r)
        assert shown <= 5e-4 * cells, (shown, cells)
        # where triangles overlap (the nose over the far cheek, a cheek over its own fold), the
        # nearer one owns the pixel: drawn near to far instead, the farther one would
        tri_depth = occ.depth[r.warp.triangles].mean(1)
        is_plain = np.zeros(len(order), bool)
        is_plain[order[plain & ~collapsed]] = True
        seg = np.nonzero(plain & ~collapsed)[0]
        reverse = order.copy()
        reverse[seg] = order[seg][::-1]
        near_first = r.warp.triangle_ids(pts, reverse)[0]
        ids = r.warp.last_ids
        both = (ids >= 0) & (near_first >= 0)
        both[both] = is_plain[ids[both]] & is_plain[near_first[both]] & (ids[both] != near_first[both])
        assert both.sum() > 50  # there is overlap to resolve
        assert (tri_depth[ids[both]] <= tri_depth[near_first[both]] + 1e-9).all()


@pytest.mark.parametrize("name", FACES)
def test_turned_face_keeps_the_background_out_of_the_cheek(photos, name: str) -> None:
    """A face turned to 35 deg over a flat colour, turned further and back by 0.3 rad: the face
    triangles take (almost) no background pixels as texture beyond those they hold at rest."""
    img = photos[name]
    lm = cached_landmarks(img)
    for side in (-1.0, 1.0):
        r = AnalyticRenderer(prepare_portrait(turned_face(img, lm, 35.0 * side, background=BACKGROUND), 256))
        rest = background_in_face(r, vec())
        for m in turned_poses():
            assert background_in_face(r, m) <= rest + 40, (side, m[-3:])


@pytest.mark.parametrize("name", FACES)
def test_far_side_is_not_stretched(renderers, name: str) -> None:
    r = renderers[name]
    for m in turned_poses():
        kp = r.keypoints(m[None])[0]
        mx, my, _ = r._warp_crop(kp, m)
        inside = oval_mask(r.size, kp)
        assert np.percentile(magnification(mx, my)[inside], 99) < 3.2


def test_depth_aware_frames_are_deterministic_and_keep_the_outside(renderers, astronaut_256) -> None:
    r = renderers["astronaut"]
    m = np.concatenate([turned_poses(), [vec(yaw=0.35, jawOpen=0.5), vec(yaw=-0.2, pitch=0.2)]])
    a, b = r.render(m), r.render(m)
    np.testing.assert_array_equal(a, b)
    outside = r.warp.ring_mask(feather=1.0) <= 0.01
    assert (a[:, outside] == astronaut_256.crop[outside]).all()
