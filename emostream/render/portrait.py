"""Source preparation: load a portrait, find its landmarks (cached by image hash), crop and align.

The landmark pass (~50 ms) is cached under ``$EMOSTREAM_CACHE`` (default
``~/.cache/emostream``)/``portraits/<sha256 of the pixels>.npz``; the crop is recomputed from it
(cheap), for any output size.

Crop geometry: an axis-aligned square (no roll correction, so paste-back is a pure scale and
shift) centred on the landmark box, raised by 12 % of its height to keep the hairline, side
``CROP_SCALE`` × the box's longer side, slid inside the photo where it fits (the face kept off the
crop's edges); where it still reaches past the photo, the photo is extended by its edge drawn
outwards into a smooth fill (render/framing.py), never reflected.

Test faces (all from installed packages, nothing copied into the repository):
``astronaut`` (scikit-image, ``skimage.data.astronaut()``, NASA, public domain), ``grace_hopper``
(matplotlib's ``mpl-data/sample_data/grace_hopper.jpg``, US Navy photo, public domain) and
``derived``: Grace Hopper mirrored, rotated 9° and shrunk onto a 640×480 canvas with a procedural
background (a documented procedure, ``derived_test_face``) to test roll, scale, an off-centre
face and a landscape frame (not a new identity), and ``luispedro``: the third identity, a
three-quarter view (yaw about 35°) of Luis Pedro Coelho, the photo he ships as
``mahotas/demos/data/luispedro.jpg`` in his MIT-licensed ``mahotas`` package; it is bundled
byte-identical (22,735 bytes) in ``emostream/assets/faces/`` (see ``emostream/assets/LICENSES.md``).

``test_faces()`` (what ``eval render`` and the contact sheets use) adds two more identities,
photos of PETSc developers from the PETSc team page (BSD-2-Clause documentation, Debian
``petsc3.18-doc``): ``kaushik`` (darker skin, moustache, smile with teeth; byte-identical) and
``may`` (full beard, the head filling the frame; resized), and three copies derived by a fixed
formula: ``hopper_sepia`` (a sepia print), ``astronaut_gray`` (greyscale, with teeth) and
``hopper_lowres`` (180 px on the long side); ``TEST_FACE_KINDS`` says what each face covers.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from emostream.errors import ConfigError
from emostream.media.image import load_image_rgb
from emostream.render.face import detect_landmarks
from emostream.render.framing import crop_extended

CROP_SCALE = 1.9
CROP_RAISE = 0.12
#: Least distance of the face's landmark box from the crop's edges, × the crop's side.
CROP_FACE_MARGIN = 0.08
CACHE_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("EMOSTREAM_CACHE", Path.home() / ".cache" / "emostream")) / "portraits"


def default_portrait() -> np.ndarray:
    """scikit-image's astronaut (public domain), loaded from the installed package."""
    # deferred: scikit-image (heavy), only for the default portrait
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


def _grace_hopper() -> np.ndarray:
    # deferred: matplotlib (heavy), only for its bundled sample photo
    import matplotlib

    p = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(p) as im:
        return np.asarray(im.convert("RGB"))


FACES_DIR = Path(__file__).resolve().parents[1] / "assets" / "faces"


def _bundled_face(name: str) -> np.ndarray:
    with Image.open(FACES_DIR / name) as im:
        return np.asarray(im.convert("RGB"))


def derived_test_face() -> np.ndarray:
    """Grace Hopper, mirrored, rotated 9°, scaled 0.6 onto a 640×480 canvas at (380, 230) over a
    smooth procedural background (fixed formula, no randomness)."""
    src = _grace_hopper()[:, ::-1]
    h, w = src.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 9.0, 0.6)
    m[:, 2] += np.array([380 - w / 2, 230 - h / 2])
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    bg = np.stack(
        [120 + 60 * np.sin(xx / 37), 140 + 50 * np.cos(yy / 29), 110 + 40 * np.sin((xx + yy) / 53)], -1
    ).astype(np.uint8)
    warped = cv2.warpAffine(src, m, (640, 480), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    mask = cv2.warpAffine(np.ones((h, w), np.float32), m, (640, 480))[..., None]
    return np.asarray(warped * mask + bg * (1 - mask)).astype(np.uint8)


def sample_faces() -> list[tuple[str, np.ndarray]]:
    """The faces the render tests and ``eval render`` use by default (three identities)."""
    return [
        ("astronaut", default_portrait()),
        ("grace_hopper", _grace_hopper()),
        ("derived", derived_test_face()),
        ("luispedro", _bundled_face("luispedro.jpg")),
    ]


#: Sepia toning (the classic matrix applied to the luminance): a warm monochrome print.
SEPIA = np.array([1.07, 0.74, 0.43])
#: Long side of the low-resolution copy (its face is ~70 px wide, eyes ~30 px apart).
LOWRES_SIDE = 180


def sepia_test_face() -> np.ndarray:
    """Grace Hopper as a sepia print: luminance (Rec. 601) × ``SEPIA``, clipped."""
    y = _grace_hopper().astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.asarray(np.clip(y[..., None] * SEPIA + 0.5, 0, 255)).astype(np.uint8)


def gray_test_face() -> np.ndarray:
    """The astronaut (an open smile with teeth) in greyscale: luminance (Rec. 601) in all channels."""
    y = default_portrait().astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.clip(y + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def lowres_test_face() -> np.ndarray:
    """Grace Hopper shrunk (area average) to ``LOWRES_SIDE`` px on the long side."""
    img = _grace_hopper()
    h, w = img.shape[:2]
    k = LOWRES_SIDE / max(h, w)
    return np.asarray(cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA))


#: What each test face covers (``eval render`` and the contact sheets use all of them).
TEST_FACE_KINDS = {
    "astronaut": "colour, open smile with visible teeth",
    "grace_hopper": "colour, closed-mouth neutral, glasses",
    "derived": "Grace Hopper mirrored, rotated 9 deg, small in a landscape frame",
    "luispedro": "colour, three-quarter view (yaw ~35 deg), stubble",
    "hopper_sepia": "sepia print (derived), closed mouth, glasses",
    "astronaut_gray": "greyscale (derived), open smile with teeth",
    "hopper_lowres": "low resolution (derived): face ~70 px wide",
    "kaushik": "colour, darker (brown) skin, moustache, smile with teeth",
    "may": "colour, full beard and moustache, closed mouth, head filling the frame",
}


def test_faces() -> list[tuple[str, np.ndarray]]:
    """``sample_faces()`` plus two bundled photos (darker skin, full beard) and derived copies that
    cover greyscale, sepia and low resolution (see ``TEST_FACE_KINDS``); the fast render tests use
    ``sample_faces()`` only."""
    return [
        *sample_faces(),
        ("kaushik", _bundled_face("kaushik.jpg")),
        ("may", _bundled_face("may.jpg")),
        ("hopper_sepia", sepia_test_face()),
        ("astronaut_gray", gray_test_face()),
        ("hopper_lowres", lowres_test_face()),
    ]


def load_image(path: str | Path | None) -> np.ndarray:
    """RGB uint8; ``None`` (or ``"astronaut"``) gives the default portrait."""
    if path is None or str(path) == "astronaut":
        return default_portrait()
    return np.asarray(load_image_rgb(path))


def image_hash(img: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{img.shape}|v{CACHE_VERSION}".encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()[:32]


def cached_landmarks(
    img: np.ndarray, *, path: str | Path | None = None, use_cache: bool = True
) -> np.ndarray:
    """float32[468, 3] landmarks of the largest face in ``img`` (full-image pixels)."""
    key = image_hash(img)
    f = cache_dir() / f"{key}.npz"
    if use_cache and f.is_file():
        try:
            with np.load(f) as z:
                lm = z["landmarks"]
            if lm.shape == (468, 3):
                return lm.astype(np.float32)
        except (OSError, ValueError, KeyError):
            pass  # a corrupt cache entry is recomputed
    lm = detect_landmarks(img, path=path)
    if use_cache:
        try:
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_suffix(".tmp.npz")
            np.savez(tmp, landmarks=lm)
            tmp.replace(f)
        except OSError:
            pass  # a read-only cache only costs speed
    return lm


@dataclass(frozen=True)
class Portrait:
    """A prepared portrait: the full photo, its crop at ``size`` and the landmarks in both."""

    image: np.ndarray  # uint8[H, W, 3] the full photo
    landmarks_full: np.ndarray  # float32[468, 3]
    crop_affine: np.ndarray  # float64[2, 3] full-image px -> crop px
    crop: np.ndarray  # uint8[size, size, 3]
    landmarks: np.ndarray  # float32[468, 3] in crop px (z scaled alike)
    size: int
    key: str

    @property
    def scale(self) -> float:
        return float(self.crop_affine[0, 0])


def crop_affine_for(lm: np.ndarray, size: int, image_hw: tuple[int, int] | None = None) -> np.ndarray:
    """float64[2, 3]: photo px → crop px. With the photo's (height, width), the square is slid
    to lie inside the photo wherever it fits, keeping the face at least ``CROP_FACE_MARGIN`` × its
    side from the crop's edges (a crop larger than the photo is centred on it, as far as the face
    allows)."""
    lo, hi = lm[:, :2].min(0), lm[:, :2].max(0)
    box = hi - lo
    center = (lo + hi) / 2 - np.array([0.0, CROP_RAISE * box[1]])
    side = CROP_SCALE * float(box.max())
    if image_hw is not None:
        half, margin = side / 2, CROP_FACE_MARGIN * side
        for axis, extent in enumerate((image_hw[1], image_hw[0])):
            c = center[axis]
            c = min(max(c, half), extent - half) if side <= extent else extent / 2
            center[axis] = min(max(c, hi[axis] + margin - half), lo[axis] - margin + half)
    k = size / side
    return np.array([[k, 0.0, size / 2 - k * center[0]], [0.0, k, size / 2 - k * center[1]]])


def prepare_portrait(
    img: np.ndarray, size: int = 256, *, path: str | Path | None = None, use_cache: bool = True
) -> Portrait:
    if size not in (256, 512):  # an option, not a fault of the image file
        raise ConfigError(f"--size must be 256 or 512, got {size}")
    lm = cached_landmarks(img, path=path, use_cache=use_cache)
    m = crop_affine_for(lm, size, img.shape[:2])
    crop = crop_extended(img, m, (size, size))
    lm_c = lm.copy()
    lm_c[:, :2] = lm[:, :2] @ m[:, :2].T + m[:, 2]
    lm_c[:, 2] = lm[:, 2] * m[0, 0]
    return Portrait(img, lm, m, crop, lm_c.astype(np.float32), size, image_hash(img))
