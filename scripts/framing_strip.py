"""docs/framing.jpg: before/after of the output framing on faces at the photo's edge.

Per row (Luis Pedro Coelho's photo, whose face reaches the photo's edges; Grace Hopper's photo cut
at her face's top-left corner): the square crop as it was made before (centred on the face,
reflected border), the square crop now (``--crop face``: slid inside the photo where it fits,
else its edge drawn outwards into a smooth fill) with the head turned,
and the default whole-photo frame (``--crop photo``) with the head turned.

    python scripts/framing_strip.py [docs/framing.jpg]
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from emostream.arkit import motion_vector
from emostream.render.analytic import AnalyticRenderer
from emostream.render.framing import Framing
from emostream.render.portrait import cached_landmarks, crop_affine_for, prepare_portrait, sample_faces

TILE = 256


def _tile(img: np.ndarray, label: str) -> np.ndarray:
    h, w = img.shape[:2]
    t = cv2.resize(img, (round(w * TILE / h), TILE), interpolation=cv2.INTER_AREA)
    t = np.ascontiguousarray(t)
    for colour, width in (((255, 255, 255), 3), ((20, 20, 20), 1)):
        cv2.putText(t, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, width, cv2.LINE_AA)
    return t


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/framing.jpg")
    faces = dict(sample_faces())
    g = faces["grace_hopper"]
    gx, gy = np.floor(cached_landmarks(g)[:, :2].min(0)).astype(int)
    turn = motion_vector(yaw=0.35, jawOpen=0.4)[None]
    rows = []
    for img in (faces["luispedro"], np.ascontiguousarray(g[gy - 5 :, gx - 5 :])):
        p = prepare_portrait(img, TILE)
        old = crop_affine_for(p.landmarks_full, TILE)  # centred on the face, as before
        before = cv2.warpAffine(img, old, (TILE, TILE), borderMode=cv2.BORDER_REFLECT101)
        face = AnalyticRenderer(p, framing=Framing(crop="face")).render(turn)[0]
        photo = AnalyticRenderer(p, framing=Framing()).render(turn)[0]
        tiles = [_tile(before, "before: reflected"), _tile(face, "--crop face"), _tile(photo, "--crop photo")]
        rows.append(np.concatenate(tiles, 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
        str(out), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
