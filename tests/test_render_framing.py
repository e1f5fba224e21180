"""Output framing: the whole photo animated, the face crop, no mirrored content past the photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from render_fixtures import *  # noqa: F403  (pytest fixtures)
from render_fixtures import vec

from emostream.errors import ConfigError
from emostream.render.analytic import AnalyticRenderer
from emostream.render.framing import Framing, crop_extended, output_shape, pull_push_fill, scaled_photo
from emostream.render.mirror_check import MIRROR_THRESHOLD, mirror_score
from emostream.render.portrait import cached_landmarks, default_portrait, prepare_portrait, sample_faces

MOVES = np.stack([vec(), vec(jawOpen=0.7, yaw=0.35), vec(eyeBlinkLeft=1.0, eyeBlinkRight=1.0, pitch=0.25)])


def test_output_shape_caps_the_long_side_and_keeps_sides_even() -> None:
    assert output_shape(512, 512, 1280) == (512, 512)  # never enlarged
    assert output_shape(377, 300, 1280) == (376, 300)  # odd side: one row less
    assert output_shape(3000, 4000, 1280) == (960, 1280)
    assert output_shape(1081, 1920, 720) == (404, 720)
    with pytest.raises(ConfigError, match="unknown crop"):
        Framing(crop="square")
    with pytest.raises(ConfigError, match="--max-side"):
        Framing(max_side=10)


def test_pull_push_fill_keeps_known_pixels_and_fills_smoothly() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (64, 96, 3)).astype(np.float32)
    known = np.zeros((64, 96), np.float32)
    known[:, :40] = 1.0
    out = pull_push_fill(img * known[..., None], known)
    np.testing.assert_allclose(out[:, :40], img[:, :40], atol=1e-3)
    fill = out[:, 48:]
    assert fill.min() >= img.min() - 1e-3 and fill.max() <= img.max() + 1e-3
    # no structure of the noise carries over: the fill is far smoother than the photo
    assert np.abs(np.diff(fill, axis=1)).mean() < 0.1 * np.abs(np.diff(img[:, :40], axis=1)).mean()


def test_crop_extended_is_the_plain_crop_inside_the_photo() -> None:
    img = default_portrait()
    m = np.array([[0.5, 0.0, -10.0], [0.0, 0.5, -20.0]])  # photo px 20..420 -> 0..200
    np.testing.assert_array_equal(
        crop_extended(img, m, (200, 200)),
        cv2.warpAffine(img, m, (200, 200), flags=cv2.INTER_LINEAR),
    )


def test_whole_photo_is_the_photo_at_rest_and_moves_only_the_face(render_cache: None) -> None:
    for name, img in sample_faces():
        r = AnalyticRenderer(prepare_portrait(img, 256), framing=Framing())
        photo = scaled_photo(img, 1280)
        assert (r.height, r.width) == photo.shape[:2] and r.height % 2 == 0 and r.width % 2 == 0
        out = r.render(MOVES).astype(int)
        np.testing.assert_array_equal(out[0], photo, err_msg=name)  # bit-exact at rest
        assert r.paste is not None
        x0, y0, x1, y1 = r.paste.box
        far = np.ones(photo.shape[:2], bool)
        far[y0:y1, x0:x1] = False
        assert np.abs(out[1:] - photo)[:, far].max() == 0, name
        assert np.abs(out[1] - photo)[y0:y1, x0:x1].mean() > 1.0, name  # the face did move


def test_whole_photo_is_capped_and_deterministic(render_cache: None) -> None:
    img = default_portrait()  # 512 x 512
    r = AnalyticRenderer(prepare_portrait(img, 256), framing=Framing(max_side=300))
    assert (r.height, r.width) == (300, 300)
    a, b = r.render(MOVES), r.render(MOVES)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], cv2.resize(img, (300, 300), interpolation=cv2.INTER_AREA))


def test_face_crop_framing_is_the_square_crop(renderer_256, astronaut_256) -> None:
    r = AnalyticRenderer(astronaut_256, framing=Framing(crop="face"))
    assert (r.height, r.width) == (256, 256) and r.paste is None
    np.testing.assert_array_equal(r.render(MOVES), renderer_256.render(MOVES))


def test_seam_the_photo_resumes_smoothly_at_the_ring(render_cache: None) -> None:
    """Where the re-warped face meets the still photo there is no seam: past the ring nothing
    changes, and across the ring's band the frame has no more edges than the photo there (a seam
    or a double edge would add some)."""
    img = dict(sample_faces())["grace_hopper"]  # glasses, hat brim over the forehead
    r = AnalyticRenderer(prepare_portrait(img, 256), framing=Framing())
    assert r.paste is not None
    out = r.render(vec(jawOpen=0.8, yaw=0.4, pitch=0.2)[None])[0]
    x0, y0, x1, y1 = r.paste.box
    m = r.paste.mask
    photo = r.paste.image[y0:y1, x0:x1]
    d = np.abs(out[y0:y1, x0:x1].astype(int) - photo.astype(int)).max(2)
    assert d[m < 0.5].mean() < 0.5

    def edges(rgb: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))

    band = (m > 0.05) & (m < 0.95)
    assert edges(np.ascontiguousarray(out[y0:y1, x0:x1]))[band].mean() < 1.1 * edges(photo)[band].mean()


def border_faces() -> dict[str, np.ndarray]:
    """Faces touching the photo's edge: the astronaut's photo cut through her forehead (top) and
    just inside her left cheek (side), Grace Hopper cut at her face's top-left corner."""
    a = default_portrait()
    lm = cached_landmarks(a)
    x0, y0 = np.floor(lm[:, :2].min(0)).astype(int)
    g = dict(sample_faces())["grace_hopper"]
    gx, gy = np.floor(cached_landmarks(g)[:, :2].min(0)).astype(int)
    return {
        "top": np.ascontiguousarray(a[y0 + 10 :]),
        "side": np.ascontiguousarray(a[:, x0 + 5 :]),
        "corner": np.ascontiguousarray(g[gy - 5 :, gx - 5 :]),
    }


def test_no_mirrored_face_near_the_border(render_cache: None) -> None:
    """A reflected border (what the crop did before) is caught by the detector; the face crop and
    the whole photo, still and with the head turned, show no mirrored copy."""
    for name, img in border_faces().items():
        p = prepare_portrait(img, 256)
        reflected = cv2.warpAffine(img, p.crop_affine, (256, 256), borderMode=cv2.BORDER_REFLECT101)
        assert mirror_score(reflected) > MIRROR_THRESHOLD, name
        crop = AnalyticRenderer(p, framing=Framing(crop="face")).render(MOVES)
        photo = AnalyticRenderer(p, framing=Framing()).render(MOVES)
        for f in [*crop, *photo]:
            assert mirror_score(f) < MIRROR_THRESHOLD, name


def test_mirror_score_ignores_an_edge_drawn_outwards() -> None:
    """Rows repeated past an edge (edge extension) are not a mirror; a true reflection is."""
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (128, 128, 3)).astype(np.uint8), (0, 0), 1.0)
    extended = cv2.copyMakeBorder(img, 40, 0, 0, 0, cv2.BORDER_REPLICATE)
    reflected = cv2.copyMakeBorder(img, 40, 0, 0, 0, cv2.BORDER_REFLECT101)
    assert mirror_score(extended) < 0.3
    assert mirror_score(reflected) > 0.9
