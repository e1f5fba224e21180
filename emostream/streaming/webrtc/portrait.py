"""Portrait uploads from the page: checked for size, type and a face before a session uses them.

Accepted: PNG, JPEG or WebP (by their magic bytes, not the declared content type), at most
``MAX_UPLOAD_BYTES``, at least ``MIN_SIDE`` pixels on the short side, at most
``MAX_UPLOAD_PIXELS``, with a frontal face (``emostream.render.face.detect_landmarks``). The
dimensions are read from the header (Pillow opens lazily) before a single pixel is decoded: a
100 KB PNG can claim 30000×30000 pixels, 2.7 GB once decoded. A valid upload is stored as PNG
under the server's upload folder, named by its content hash, and referred to by that id in
later offers.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from emostream.config import MAX_IMAGE_PIXELS
from emostream.errors import ImageError
from emostream.render.face import detect_landmarks

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Largest upload in pixels (48 MB decoded as RGB), well under the files' MAX_IMAGE_PIXELS: an
#: upload is decoded in the server's memory, several at once.
MAX_UPLOAD_PIXELS = min(16_000_000, MAX_IMAGE_PIXELS)
MIN_SIDE = 128
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"WEBP", 8, "webp"),
)
_ID = re.compile(r"^[0-9a-f]{16}$")


def sniff_type(data: bytes) -> str | None:
    for magic, offset, name in _MAGIC:
        if data[offset : offset + len(magic)] == magic and (name != "webp" or data[:4] == b"RIFF"):
            return name
    return None


def decode_portrait(data: bytes, name: str = "upload") -> np.ndarray:
    """Checked image bytes → RGB uint8[H, W, 3], or an ImageError naming the problem."""
    if not data:
        raise ImageError("empty upload", name)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"file too large ({len(data)} bytes, limit {MAX_UPLOAD_BYTES})", name)
    kind = sniff_type(data)
    if kind is None:
        raise ImageError("not a PNG, JPEG or WebP image", name)
    w, h = header_size(data, kind, name)
    if h * w > MAX_UPLOAD_PIXELS:
        raise ImageError(f"image too large ({w}x{h} pixels, limit {MAX_UPLOAD_PIXELS})", name)
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"image too small ({w}x{h}; need at least {MIN_SIDE} px per side)", name)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (h, w):
        raise ImageError(f"cannot decode the {kind.upper()} data (truncated or corrupt)", name)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def header_size(data: bytes, kind: str, name: str = "upload") -> tuple[int, int]:
    """(width, height) from the image header, without decoding any pixel."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # lazy: reads the header only
                return int(im.width), int(im.height)
    except Image.DecompressionBombError as e:  # Pillow's own cap (2x its MAX_IMAGE_PIXELS)
        n = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{n.group(1)} pixels" if n else "over Pillow's limit"
        raise ImageError(f"image too large ({size}, limit {MAX_UPLOAD_PIXELS})", name) from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"cannot decode the {kind.upper()} data (truncated or corrupt)", name) from e


def check_face(rgb: np.ndarray, name: str = "upload") -> None:
    """Raise ImageError unless the image holds one usable frontal face."""
    detect_landmarks(rgb, path=name)


class PortraitStore:
    """Validated uploads on disk, addressed by a 16-hex-digit content id."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, data: bytes, name: str = "upload") -> str:
        rgb = decode_portrait(data, name)
        check_face(rgb, name)
        pid = hashlib.sha256(data).hexdigest()[:16]
        path = self.path(pid, must_exist=False)
        if not path.exists():
            ok = cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
            if not ok:
                raise ImageError("could not store the portrait", path)
        return pid

    def path(self, pid: str, *, must_exist: bool = True) -> Path:
        if not _ID.match(pid):
            raise ImageError(f"bad portrait id {pid!r}")
        p = self.folder / f"{pid}.png"
        if must_exist and not p.is_file():
            raise ImageError(f"unknown portrait id {pid!r} (upload it first)")
        return p
