"""Paste-back cost per 720p frame on one CPU core (JSON on stdout).

Two 1280×720 portraits are built from the test faces (scaled onto a 1280×720 canvas over a smooth
procedural background, centred): ``portrait`` (Grace Hopper ×1.2: head and shoulders, the face
about a third of the frame's height) and ``closeup`` (Luis Pedro Coelho ×1.9: the face fills the
frame's height). Each is rendered with ``Framing(crop="photo", max_side=1280)`` at ``--size``
over the scripted evaluation motion (190 frames: jaw, visemes, blinks, smile, brows, head
turns). Per frame, ``paste_ms`` is the CPU time (``process_time``, every library held to one
thread) of :meth:`PasteBack.warp` alone (the crop's map and drawn layer into the full frame);
``frame_ms`` the whole frame (crop render + paste-back). Medians and 90th percentiles.

    python benchmarks/bench_pasteback.py [--size 256] [--repeat 2]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

W, H = 1280, 720


def canvas_720p(img: np.ndarray, scale: float) -> np.ndarray:
    """``img`` scaled by ``scale``, centred on a 1280×720 canvas (cut where it is larger)."""
    small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    canvas = np.stack(
        [110 + 40 * np.sin(xx / 97), 120 + 30 * np.cos(yy / 71), 130 + 20 * np.sin((xx + yy) / 131)], -1
    ).astype(np.uint8)
    h, w = small.shape[:2]
    sy, sx = max((h - H) // 2, 0), max((w - W) // 2, 0)
    part = small[sy : sy + H, sx : sx + W]
    oy, ox = (H - part.shape[0]) // 2, (W - part.shape[1]) // 2
    canvas[oy : oy + part.shape[0], ox : ox + part.shape[1]] = part
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256, help="face working resolution (256 or 512)")
    ap.add_argument("--repeat", type=int, default=2, help="timed passes over the motion")
    args = ap.parse_args()
    cv2.setNumThreads(1)

    from emostream.render.analytic import AnalyticRenderer
    from emostream.render.eval import scripted_motion
    from emostream.render.framing import Framing
    from emostream.render.pasteback import Layer
    from emostream.render.portrait import prepare_portrait, sample_faces

    motion = scripted_motion().motion
    faces = dict(sample_faces())
    cases = {
        "portrait": canvas_720p(faces["grace_hopper"], 1.2),
        "closeup": canvas_720p(faces["luispedro"], 1.9),
    }
    out: dict[str, object] = {"frame": [W, H], "size": args.size, "frames": len(motion), "threads": 1}
    per: dict[str, dict[str, object]] = {}
    for name, img in cases.items():
        r = AnalyticRenderer(prepare_portrait(img, args.size), framing=Framing("photo", 1280))
        assert r.paste is not None and (r.width, r.height) == (W, H)
        kps = r.keypoints(motion)
        paste_ms: list[float] = []
        frame_ms: list[float] = []
        for _ in range(args.repeat):
            for i in range(len(motion)):
                c0 = time.process_time()
                mx, my, crop = r._warp_crop(kps[i])
                before = crop.copy()
                used = r._draw(crop, motion[i], glasses=False)
                moved = r.glasses.affine(used) if r.glasses is not None else None
                c1 = time.process_time()
                r.paste.warp(mx, my, Layer(before, crop), moved)
                c2 = time.process_time()
                paste_ms.append(1000 * (c2 - c1))
                frame_ms.append(1000 * (c2 - c0))
        x0, y0, x1, y1 = r.paste.box
        per[name] = {
            "face_box_wh": [x1 - x0, y1 - y0],
            "paste_ms_median": round(float(np.median(paste_ms)), 3),
            "paste_ms_p90": round(float(np.percentile(paste_ms, 90)), 3),
            "frame_ms_median": round(float(np.median(frame_ms)), 3),
            "frame_ms_p90": round(float(np.percentile(frame_ms, 90)), 3),
        }
    out["cases"] = per
    out["max_paste_ms_median"] = max(float(v["paste_ms_median"]) for v in per.values())  # type: ignore[arg-type]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
