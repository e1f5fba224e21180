"""Side-by-side cost ratios in one run (JSON on stdout); ``emostream bench --compare`` runs the same.

    python benchmarks/compare.py [--motion out/emodiff/distill4] [--teacher out/emodiff/teacher]
        [--fomm slim-256 vox-256] [--batches 1 2 4 8] [--reps 5] [--quick]

Teacher vs distilled sampler, torch vs ONNX Runtime (EmoDiff), analytic vs FOMM (slim-256 and
vox-256, random-init weights), 256² vs 512², batch scaling: CPU-time medians per frame over warm
runs (see emostream.bench.compare).
"""

from __future__ import annotations

import argparse
import json

import torch

from emostream.bench.compare import CompareConfig, default_teacher, run_compare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--motion", default=None, help="Distilled EmoDiff checkpoint (default: shipped).")
    ap.add_argument("--teacher", default=None, help="Teacher checkpoint (default: shipped / out/emodiff).")
    ap.add_argument("--steps", type=int, default=4, help="Distilled sampler steps.")
    ap.add_argument("--fomm", nargs="*", default=["slim-256", "vox-256"], help="FOMM configs.")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8], help="Batch sizes.")
    ap.add_argument("--reps", type=int, default=5, help="Timed repetitions (median reported).")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads.")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cuda: FOMM on torch-cuda.")
    ap.add_argument("--quick", action="store_true", help="One repetition, few frames (smoke test).")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = CompareConfig(
        device=a.device, motion_path=a.motion, teacher_path=a.teacher or default_teacher(),
        distilled_steps=a.steps, fomm_configs=tuple(a.fomm), batches=tuple(a.batches),
        reps=a.reps, quick=a.quick,
    )  # fmt: skip
    print(json.dumps(run_compare(cfg), indent=2))


if __name__ == "__main__":
    main()
