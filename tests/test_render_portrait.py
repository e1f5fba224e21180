"""Source preparation: test faces, crop geometry, cache, and bad images with precise errors."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from render_fixtures import *  # noqa: F403  (pytest fixtures)

from emostream.errors import ConfigError, ImageError
from emostream.render import face
from emostream.render.portrait import (
    cache_dir,
    default_portrait,
    image_hash,
    load_image,
    prepare_portrait,
    sample_faces,
)


def test_test_faces_prepare(render_cache: None) -> None:
    faces = sample_faces()
    assert [n for n, _ in faces] == ["astronaut", "grace_hopper", "derived", "luispedro"]
    for name, img in faces:
        p = prepare_portrait(img, 256)
        assert p.crop.shape == (256, 256, 3), name
        lm = p.landmarks
        assert (lm[:, :2] > 0).all() and (lm[:, :2] < 256).all(), name
        iod = np.linalg.norm(lm[263, :2] - lm[33, :2])
        assert 50 < iod < 110, (name, iod)  # the face fills the crop at a consistent scale
        yaw = face.estimate_yaw_deg(lm)
        if name == "luispedro":  # the three-quarter view, still inside what sources may be
            assert 25 < abs(yaw) < face.MAX_SOURCE_YAW_DEG, yaw
        else:
            assert abs(yaw) < 15, name


def test_closed_eye_control_removes_the_eye(astronaut_256) -> None:
    """The eval's renderer-free closed eye: the openings are filled with skin (no iris left)."""
    import cv2

    from emostream.render import topology as tp
    from emostream.render.eval import closed_eye_control

    crop, lm = astronaut_256.crop, astronaut_256.landmarks
    ctl = closed_eye_control(crop, lm)
    assert ctl.shape == crop.shape and ctl.dtype == np.uint8
    m = np.zeros((256, 256), np.uint8)
    poly = np.concatenate([lm[list(tp.EYE_RIGHT_UPPER), :2], lm[list(tp.EYE_RIGHT_LOWER), :2][::-1]])
    cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
    lum = lambda im: im.astype(float) @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    assert np.percentile(lum(ctl)[m > 0], 25) > np.percentile(lum(crop)[m > 0], 25) + 30
    far = np.ones((256, 256), bool)
    far[int(lm[:, 1].min()) - 5 : int(lm[:, 1].max()) + 5] = False
    np.testing.assert_array_equal(ctl[far], crop[far])  # nothing else changes


def test_landmarks_are_cached_by_image_hash(render_cache: None) -> None:
    img = default_portrait()
    prepare_portrait(img, 256)
    f = cache_dir() / f"{image_hash(img)}.npz"
    assert f.is_file()
    p512 = prepare_portrait(img, 512)
    assert p512.crop.shape == (512, 512, 3)
    f.write_bytes(b"corrupt")  # a broken entry is recomputed, not fatal
    assert prepare_portrait(img, 256).landmarks.shape == (468, 3)


def test_output_size_must_be_256_or_512(render_cache: None) -> None:
    with pytest.raises(ConfigError, match="256 or 512"):  # an option error, not the image's
        prepare_portrait(default_portrait(), 300)


def test_no_face() -> None:
    gray = np.full((300, 400, 3), 128, np.uint8)
    with pytest.raises(ImageError, match="no face found"):
        face.detect_landmarks(gray, path="gray.png")
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    with pytest.raises(ImageError, match="no face found"):
        face.detect_landmarks(noise)


def test_tiny_face() -> None:
    small = cv2.resize(default_portrait(), (96, 96), interpolation=cv2.INTER_AREA)
    canvas = np.full((1200, 1200, 3), 200, np.uint8)
    canvas[500:596, 500:596] = small
    with pytest.raises(ImageError, match=r"too small|no face found"):
        face.detect_landmarks(canvas)


def test_profile_view_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(face, "estimate_yaw_deg", lambda lm: 70.0)
    with pytest.raises(ImageError, match="profile"):
        face.detect_landmarks(default_portrait(), path="side.jpg")


def test_yaw_estimate_follows_the_rig_convention(astronaut_256) -> None:
    """The rig's yaw > 0 (face towards the image's right) reads > 0, by about YAW_GAIN x the turn."""
    from emostream.arkit import motion_vector
    from emostream.render.rig import Rig

    rig = Rig(astronaut_256.landmarks)
    base = face.estimate_yaw_deg(astronaut_256.landmarks)
    assert abs(base) < 10
    for rad in (-0.4, 0.4):
        lm = rig.evaluate(motion_vector(yaw=rad)[None])[0]
        turn = face.estimate_yaw_deg(lm) - base
        assert turn == pytest.approx(face.YAW_GAIN * np.degrees(rad), abs=3), rad


def test_several_faces_take_the_largest(caplog: pytest.LogCaptureFixture) -> None:
    img = default_portrait()
    canvas = np.full((560, 960, 3), 90, np.uint8)
    canvas[24:536, 440:952] = img
    small = cv2.resize(img, (400, 400), interpolation=cv2.INTER_AREA)
    canvas[120:520, 20:420] = small
    with caplog.at_level(logging.WARNING, logger="emostream.render.face"):
        lm = face.detect_landmarks(canvas)
    assert "faces found" in caplog.text
    assert lm[:, 0].mean() > 440  # the big face on the right


def test_unreadable_image_file(tmp_path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError):
        load_image(bad)
    with pytest.raises(ImageError):
        load_image(tmp_path / "missing.png")


def test_derived_test_faces_cover_their_kinds(render_cache: None) -> None:
    from emostream.render.portrait import TEST_FACE_KINDS, test_faces

    faces = dict(test_faces())
    assert set(faces) == set(TEST_FACE_KINDS)
    gray, sepia, low = faces["astronaut_gray"], faces["hopper_sepia"], faces["hopper_lowres"]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    r, g, b = (sepia[..., i].astype(int) for i in range(3))
    assert (r >= g).all() and (g >= b).all() and (r - b).mean() > 40  # warm monochrome
    lm = face.detect_landmarks(low)
    width = float(lm[:, 0].max() - lm[:, 0].min())
    assert max(low.shape[:2]) <= 200 and 40 < width < 300  # a low-resolution face, still accepted


def _luma_at(img: np.ndarray, lm: np.ndarray, index: int) -> float:
    """Median Rec. 601 luminance of a small square (8 % of the eye distance) at one landmark."""
    r = max(2, round(0.08 * float(np.linalg.norm(lm[33, :2] - lm[263, :2]))))
    x, y = (round(float(v)) for v in lm[index, :2])
    return float(np.median(img[y - r : y + r + 1, x - r : x + r + 1] @ np.array([0.299, 0.587, 0.114])))


def test_bundled_photos_cover_darker_skin_and_facial_hair(render_cache: None) -> None:
    """``kaushik`` has the darkest cheeks of the colour photos; ``kaushik`` and ``may`` have a
    moustache (the philtrum, landmark 164, well below the cheeks' brightness), the others not."""
    from emostream.render.portrait import test_faces

    faces = dict(test_faces())
    cheek, lip = {}, {}
    for name in ("astronaut", "grace_hopper", "luispedro", "kaushik", "may"):
        lm = face.detect_landmarks(faces[name])
        cheek[name] = (_luma_at(faces[name], lm, 50) + _luma_at(faces[name], lm, 280)) / 2
        lip[name] = _luma_at(faces[name], lm, 164) / cheek[name]
    assert cheek["kaushik"] < 0.8 * min(v for n, v in cheek.items() if n != "kaushik")
    assert lip["kaushik"] < 0.6 and lip["may"] < 0.6
    assert min(lip["astronaut"], lip["grace_hopper"], lip["luispedro"]) > 0.7
