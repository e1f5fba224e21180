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
#: A sheet's layout (``eval.contact_sheet``): a title band, then rows of this many square tiles.
TILES_PER_ROW = 4
#: The poses of a sheet, in order (``eval.SHEET_POSES``), and those a compact strip shows.
SHEET_POSE_NAMES = ("neutral", "jaw open", "oo", "smile", "blink", "sad brows", "head left", "head right")
STRIP_POSES = ("jaw open", "oo", "smile", "blink", "head left")


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


def sheet_tiles(sheet: np.ndarray) -> dict[str, np.ndarray]:
    """The tiles of a titled contact sheet, by pose name."""
    tile = sheet.shape[1] // TILES_PER_ROW
    body = sheet[BAND_PX:]
    if body.shape[0] % tile or body.shape[0] // tile * TILES_PER_ROW != len(SHEET_POSE_NAMES):
        raise ValueError(f"not a contact sheet of {len(SHEET_POSE_NAMES)} tiles: shape {sheet.shape}")
    out = {}
    for k, name in enumerate(SHEET_POSE_NAMES):
        r, c = divmod(k, TILES_PER_ROW)
        out[name] = body[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
    return out


def strip(
    rows: list[tuple[str, np.ndarray]], *, tile: int = 160, poses: tuple[str, ...] = STRIP_POSES
) -> np.ndarray:
    """A compact comparison: for each (label, sheet), one row of ``poses`` at ``tile`` px, under a
    label band (e.g. "hopper_sepia before", "hopper_sepia after")."""
    out = []
    for label, sheet in rows:
        t = sheet_tiles(sheet)
        row = np.concatenate([cv2.resize(t[p], (tile, tile), interpolation=cv2.INTER_AREA) for p in poses], 1)
        out.append(labelled(row, label))
    return np.concatenate(out, 0)
