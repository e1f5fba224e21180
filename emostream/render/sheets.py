"""Contact-sheet assembly: an overview of every face's sheet, before/after comparisons.

A face's sheet (``eval.contact_sheet``: neutral, jaw open, "oo", smile, blink, sad brows, head
left/right at 512²) is one PNG; ``overview`` stacks all faces' sheets, scaled to one width;
``before_after`` puts an earlier sheet of the same face (another revision's output) above the
new one, each under a label band. RGB uint8 arrays; ``read_sheet`` / ``write_sheet`` do the PNG I/O.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emostream.errors import ImageError

BAND_PX = 28


def read_sheet(path: Path) -> np.ndarray:
    """RGB uint8 of a sheet PNG (an ImageError if it cannot be read)."""
    img = cv2.imread(str(path))
    if img is None:
        raise ImageError("cannot read this contact sheet", path)
    return np.ascontiguousarray(img[:, :, ::-1])


def write_sheet(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(img[:, :, ::-1])):
        raise OSError(f"{path}: could not write the PNG")


def labelled(img: np.ndarray, text: str) -> np.ndarray:
    """``img`` under a white band with ``text``."""
    band = np.full((BAND_PX, img.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, img], 0)


def to_width(img: np.ndarray, width: int) -> np.ndarray:
    if img.shape[1] == width:
        return img
    h = round(img.shape[0] * width / img.shape[1])
    interp = cv2.INTER_AREA if width < img.shape[1] else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(img, (width, h), interpolation=interp))


def overview(sheets: list[tuple[str, np.ndarray]], width: int = 1536) -> np.ndarray:
    """All faces' sheets, one under the other, each ``width`` px wide."""
    if not sheets:
        raise ValueError("no sheets to put in an overview")
    return np.concatenate([to_width(s, width) for _, s in sheets], 0)


def before_after(before: np.ndarray, after: np.ndarray, *, width: int | None = None,
                 labels: tuple[str, str] = ("before", "after")) -> np.ndarray:  # fmt: skip
    """``before`` above ``after`` (both scaled to ``width``, default the new sheet's width)."""
    w = width or after.shape[1]
    return np.concatenate(
        [labelled(to_width(before, w), labels[0]), labelled(to_width(after, w), labels[1])], 0
    )
