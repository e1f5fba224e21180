"""The mouth interior belongs to the photo: its own teeth when it shows them, else teeth in its
tones, sharpness and grain; fixed to skull and jaw; facial hair in front; lids in the photo's tones."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from render_fixtures import *  # noqa: F403  (pytest fixtures)
from render_fixtures import vec

from emostream.render import topology as tp
from emostream.render.photo_look import LUMA, blur_sigma, grain_sigma

JAW = vec(jawOpen=0.8)
BLINK = vec(eyeBlinkLeft=1.0, eyeBlinkRight=1.0)


def grey(img: np.ndarray) -> np.ndarray:
    g = np.round(img.astype(np.float64) @ LUMA).astype(np.uint8)
    return np.repeat(g[..., None], 3, -1)


def sepia(img: np.ndarray) -> np.ndarray:
    g = img.astype(np.float64) @ LUMA
    return np.clip(g[..., None] * np.array([1.07, 0.74, 0.43]) + [20, 10, 0], 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(render_cache: None) -> dict[str, np.ndarray]:
    from emostream.render.portrait import sample_faces

    faces = dict(sample_faces())
    return {
        "astronaut": faces["astronaut"],  # an open smile with teeth
        "grace_hopper": faces["grace_hopper"],  # closed mouth
        "grace_grey": grey(faces["grace_hopper"]),
        "astronaut_grey": grey(faces["astronaut"]),
        "grace_sepia": sepia(faces["grace_hopper"]),
    }


@pytest.fixture(scope="module")
def renderers(photos):
    from emostream.render.analytic import AnalyticRenderer
    from emostream.render.portrait import prepare_portrait

    return {name: AnalyticRenderer(prepare_portrait(img, 256)) for name, img in photos.items()}


def _opening(r, motion: np.ndarray, erode: int = 2) -> np.ndarray:
    """bool[S, S]: inside the driven inner-lip polygon (eroded by ``erode`` px)."""
    r.render(motion[None])
    kp = r.warp.last_points[: r.warp.n_face]
    poly = np.concatenate([kp[list(tp.LIP_UPPER_INNER)], kp[list(tp.LIP_LOWER_INNER)][::-1]])
    m = np.zeros((r.size, r.size), np.uint8)
    cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
    if erode:
        m = cv2.erode(m, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return m > 0


def _hue(rgb: np.ndarray) -> float:
    """Hue angle (deg) of a mean colour in Lab's a*b* plane."""
    lab = cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.uint8).reshape(1, 1, 3), cv2.COLOR_RGB2LAB)[0, 0]
    return float(np.degrees(np.arctan2(float(lab[2]) - 128, float(lab[1]) - 128)))


def test_open_mouth_photos_are_told_from_closed_ones(renderers) -> None:
    assert renderers["astronaut"].mouth.from_photo and renderers["astronaut_grey"].mouth.from_photo
    assert not renderers["grace_hopper"].mouth.from_photo and not renderers["grace_sepia"].mouth.from_photo


def test_a_greyscale_photo_gets_a_grey_interior(renderers) -> None:
    """R = G = B exactly, on both paths (procedural teeth and the photo's own)."""
    for name in ("grace_grey", "astronaut_grey"):
        r = renderers[name]
        for m in (JAW, vec(mouthFunnel=1.0, jawOpen=0.25), vec(jawOpen=0.5, tongueOut=0.6)):
            f = r.render(m[None])[0].astype(np.int16)
            inside = _opening(r, m)
            assert inside.sum() > 50, name
            assert np.array_equal(f[..., 0], f[..., 1]) and np.array_equal(f[..., 1], f[..., 2]), name


def test_a_sepia_photo_gets_a_sepia_interior(renderers, photos) -> None:
    """The interior's hue is the photo's (within 25° of the skin's in a*b*), where a neutral
    white denture on sepia skin would be far off, and its chroma is that of a sepia tone."""
    r = renderers["grace_sepia"]
    f = r.render(JAW[None])[0].astype(np.float64)
    inside = _opening(r, JAW)
    teeth = inside & (f @ LUMA > np.percentile((f @ LUMA)[inside], 70))  # the teeth, not the cavity
    skin_hue = _hue(r.mouth.look.skin)
    for region in (inside, teeth):
        d = abs((_hue(f[region].mean(0)) - skin_hue + 180) % 360 - 180)
        assert d < 25, (d, skin_hue)
    assert abs((_hue(np.array([235.0, 235, 230])) - skin_hue + 180) % 360 - 180) > 25  # the check can fail


def test_the_photo_keeps_its_own_teeth(renderers) -> None:
    """On a photo with an open smile the upper teeth at jaw open are the photo's own pixels
    (carried by the skull, which stays put), not drawn ones."""
    r = renderers["astronaut"]
    p = r.portrait
    f = r.render(JAW[None])[0].astype(np.int16)
    src_open = np.zeros((256, 256), np.uint8)
    lm = p.landmarks[:, :2]
    poly = np.concatenate([lm[list(tp.LIP_UPPER_INNER)], lm[list(tp.LIP_LOWER_INNER)][::-1]])
    cv2.fillPoly(src_open, [np.round(poly).astype(np.int32)], 1)
    bright = (p.crop.astype(np.float64) @ LUMA) > 150  # the photo's teeth
    both = (cv2.erode(src_open, np.ones((3, 3), np.uint8)) > 0) & bright & _opening(r, JAW, erode=3)
    assert both.sum() > 30
    assert np.abs(f[both] - p.crop[both].astype(np.int16)).mean() < 3.0


def test_interior_is_fixed_to_skull_and_jaw(renderers) -> None:
    """The unlit interior (every layer, grain included) depends only on head and jaw: lips that
    move over it never change it, so nothing swims; the same pose gives the same pixels."""
    for name in ("grace_hopper", "astronaut"):
        mouth = renderers[name].mouth
        off = mouth.box.origin
        a = mouth.interior(JAW, off, mouth.box.w, mouth.box.h)
        lips = vec(
            jawOpen=0.8, mouthUpperUpLeft=1.0, mouthUpperUpRight=1.0, mouthFunnel=0.6, mouthSmileLeft=0.5
        )
        np.testing.assert_array_equal(a, mouth.interior(lips, off, mouth.box.w, mouth.box.h))
        c = mouth.interior(vec(jawOpen=0.3), off, mouth.box.w, mouth.box.h)
        assert np.abs(a - c).max() > 20  # the jaw does move the lower part
    r = renderers["grace_hopper"]
    np.testing.assert_array_equal(r.render(np.stack([JAW, JAW]))[0], r.render(JAW[None])[0])


def test_interior_fades_in_as_the_lips_part(renderers) -> None:
    r = renderers["grace_hopper"]
    crop = r.portrait.crop.astype(np.float64)
    changes = []
    for w in (0.0, 0.02, 0.05, 0.1, 0.3):
        f = r.render(vec(jawOpen=w)[None])[0].astype(np.float64)
        changes.append(np.abs(f - crop).sum())
    assert changes[0] == 0.0 and all(b >= a for a, b in itertools.pairwise(changes))


def test_procedural_teeth_take_the_photo_sharpness_and_grain(renderers) -> None:
    """The teeth layers' edges are as soft as the photo's and their grain as strong."""
    mouth = renderers["grace_hopper"].mouth
    look = mouth.look
    upper = mouth.layers[-1].rgba
    a = upper[..., 3]
    region = a > 0.99
    lum = (upper[..., :3] @ LUMA.astype(np.float32)) / np.maximum(a, 1e-3)
    assert grain_sigma(
        lum, cv2.erode(region.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    ) == pytest.approx(look.grain, rel=0.35)
    alpha_blur = blur_sigma(a * 255.0, np.ones_like(region))
    assert abs(alpha_blur - look.blur) < 0.6, (alpha_blur, look.blur)


def test_blur_estimate_on_known_edges() -> None:
    yy, xx = np.mgrid[0:128, 0:128]
    img = np.where((xx + 0.3 * yy) % 40 < 20, 50.0, 200.0).astype(np.float32)
    img = cv2.resize(
        cv2.resize(img, (512, 512), interpolation=cv2.INTER_NEAREST), (128, 128), interpolation=cv2.INTER_AREA
    )
    for s in (0.6, 1.0, 1.5, 2.0):
        est = blur_sigma(cv2.GaussianBlur(img, (0, 0), s), np.ones_like(img, bool))
        assert est == pytest.approx(s, abs=0.2), (s, est)


def test_closed_lids_are_no_darker_than_the_photo_lashes(renderers) -> None:
    """The closed lids use the photo's own tones: no pixel of them darker than the darkest pixel of
    the photo's lash band, and on a sepia photo the lash line is sepia, not black."""
    for name in ("grace_hopper", "grace_sepia", "astronaut"):
        r = renderers[name]
        lids = r.eyelids
        f = r.render(BLINK[None])[0].astype(np.float64)
        kp = r.warp.last_points[: r.warp.n_face]
        lm = r.portrait.landmarks[:, :2]
        for (u, lw, lash_c, _, _), up in zip(lids.eyes, (tp.EYE_RIGHT_UPPER, tp.EYE_LEFT_UPPER), strict=True):
            band = np.concatenate(
                [lm[list(up)] - [0, 0.2 * lids.lash], (lm[list(up)] - [0, lids.lash])[::-1]]
            )
            m = np.zeros((256, 256), np.uint8)
            cv2.fillPoly(m, [np.round(band).astype(np.int32)], 1)
            darkest = float((r.source[m > 0].astype(np.float64) @ LUMA).min())
            closed = np.zeros((256, 256), np.uint8)
            meet = (kp[list(u)] + kp[list(lw)]) / 2
            cv2.polylines(closed, [np.round(meet).astype(np.int32)], False, 1, 3)
            assert (f[closed > 0] @ LUMA).min() >= darkest - 2.0, name
            if name == "grace_sepia":
                d = abs((_hue(lash_c) - _hue(r.eyelids.look.skin) + 180) % 360 - 180)
                assert d < 25 and np.ptp(lash_c) > 10, (lash_c, d)


def _with_moustache(img: np.ndarray, r) -> np.ndarray:
    """``img`` with a synthetic moustache: dark, fine vertical strands over the band between the
    upper lip and the nose (fixed pattern), mapped back from the crop to the photo."""
    p = r.portrait
    lm = p.landmarks[:, :2]
    up = lm[list(tp.LIP_UPPER_OUTER)]
    nose = lm[tp.NOSE_BASE]
    towards_nose = np.stack([up[:, 0], np.full(len(up), nose[1])], 1)
    band = np.concatenate([up + np.array([0.0, 1.5]), (0.3 * up + 0.7 * towards_nose)[::-1]])
    mask = np.zeros((256, 256), np.float32)
    cv2.fillPoly(mask, [np.round(band).astype(np.int32)], 1.0)
    rng = np.random.default_rng(3)
    strands = cv2.blur(rng.uniform(0, 1, (256, 256)).astype(np.float32), (1, 7))
    hair = np.clip(40 + 120 * (strands - 0.5) * 6, 10, 160)
    crop = p.crop.astype(np.float32)
    crop = crop * (1 - mask[..., None]) + hair[..., None] * mask[..., None]
    inv = cv2.invertAffineTransform(p.crop_affine)
    h, w = img.shape[:2]
    full_mask = cv2.warpAffine(mask, inv, (w, h))[..., None]
    full = cv2.warpAffine(crop, inv, (w, h))
    return np.clip(img * (1 - full_mask) + full * full_mask, 0, 255).astype(np.uint8)


def test_a_moustache_stays_in_front_of_the_interior(renderers, photos) -> None:
    from emostream.render.analytic import AnalyticRenderer
    from emostream.render.portrait import prepare_portrait

    plain = renderers["grace_hopper"]
    for r in renderers.values():  # no hair found on the faces without it
        assert not r.mouth.hair.present
    hairy = AnalyticRenderer(prepare_portrait(_with_moustache(photos["grace_hopper"], plain), 256))
    assert hairy.mouth.hair.present and hairy.mouth.hair.upper.max() > 0.8
    assert hairy.mouth.hair.lower.max() == 0.0
    f_hair = hairy.render(JAW[None])[0].astype(np.float64)
    # the top rows of the opening keep the warped hair's texture (high-pass energy) in front
    inside = _opening(hairy, JAW, erode=0)
    kp = hairy.warp.last_points[: hairy.warp.n_face]
    ys, xs = np.nonzero(inside)
    top = np.interp(xs, *kp[list(tp.LIP_UPPER_INNER)][np.argsort(kp[list(tp.LIP_UPPER_INNER), 0])].T)
    fringe = np.zeros_like(inside)
    near = (ys - top < 0.03 * hairy.mouth.look.iod) & (
        np.abs(xs - kp[tp.LIP_UPPER_MID, 0]) < 0.2 * hairy.mouth.look.iod
    )
    fringe[ys[near], xs[near]] = True
    assert fringe.sum() > 10
    cover = hairy.mouth.hair.cover(kp[list(tp.LIP_UPPER_INNER)], kp[list(tp.LIP_LOWER_INNER)], 256, 256)
    assert cover is not None and cover[fringe].mean() > 0.3
    # without the hair the interior is drawn there
    no_hair = AnalyticRenderer(prepare_portrait(_with_moustache(photos["grace_hopper"], plain), 256))
    no_hair.mouth.hair = plain.mouth.hair
    f_cut = no_hair.render(JAW[None])[0].astype(np.float64)
    assert np.abs(f_hair - f_cut)[fringe].mean() > 5
