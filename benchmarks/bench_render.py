"""Analytic renderer cost on one CPU core (JSON on stdout).

For each test face and output size (256, 512): source preparation (landmark detection without
cache + renderer set-up) and per-frame rendering of the scripted evaluation motion (190 frames:
jaw sweep, visemes, blinks, smile, brows, head yaw/pitch/roll). Times are CPU time
(``process_time``, robust to other processes on a shared machine) with every library held to
one thread, plus wall-clock time for reference.

    python benchmarks/bench_render.py [--faces astronaut,grace_hopper,derived,luispedro] [--repeat 2]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--faces", default="astronaut,grace_hopper,derived,luispedro", help="comma-separated test faces"
    )
    ap.add_argument("--repeat", type=int, default=2, help="timed passes over the motion (best is kept)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    os.environ["EMOSTREAM_CACHE"] = tempfile.mkdtemp(prefix="bench-render-")  # measure uncached prep

    from emostream.render.analytic import AnalyticRenderer
    from emostream.render.eval import scripted_motion
    from emostream.render.portrait import prepare_portrait, sample_faces

    motion = scripted_motion().motion
    faces = dict(sample_faces())
    out: dict[str, object] = {"frames": len(motion), "threads": 1, "faces": {}}
    per: dict[str, dict[str, float]] = {}
    for name in args.faces.split(","):
        img = faces[name]
        res: dict[str, float] = {}
        for size in (256, 512):
            c0, w0 = time.process_time(), time.perf_counter()
            r = AnalyticRenderer(prepare_portrait(img, size, use_cache=(size == 512)))
            if size == 256:
                res["prep_cpu_s"] = time.process_time() - c0
                res["prep_wall_s"] = time.perf_counter() - w0
            r.render(motion[:5])  # warm-up
            best_cpu, best_wall = np.inf, np.inf
            for _ in range(args.repeat):
                c0, w0 = time.process_time(), time.perf_counter()
                for i in range(len(motion)):
                    r.render(motion[i : i + 1])
                best_cpu = min(best_cpu, (time.process_time() - c0) * 1000 / len(motion))
                best_wall = min(best_wall, (time.perf_counter() - w0) * 1000 / len(motion))
            res[f"ms_per_frame_{size}"] = round(best_cpu, 3)
            res[f"wall_ms_per_frame_{size}"] = round(best_wall, 3)
        per[name] = {k: round(v, 3) for k, v in res.items()}
    out["faces"] = per
    out["max_ms_per_frame_256"] = max(v["ms_per_frame_256"] for v in per.values())
    out["max_ms_per_frame_512"] = max(v["ms_per_frame_512"] for v in per.values())
    out["max_prep_cpu_s"] = max(v["prep_cpu_s"] for v in per.values())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
