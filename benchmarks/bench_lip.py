"""Lip refiner CPU cost per frame, streaming (one frame per step, as the engine runs it).

    .venv/bin/python benchmarks/bench_lip.py [--ckpt CKPT] [--seconds 20] [--threads 1]

Prints JSON: wall and CPU (process) ms per frame for each backend (torch, onnx), the lookahead,
the parameter count and the number of ensemble members. Without shipped weights a randomly
initialised default-size network is timed (cost does not depend on the weight values) and
``"weights"`` says so.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from emostream.arkit import MOTION_DIM
from emostream.engine.features import FEATURE_DIM
from emostream.engine.lip import LipRefiner, default_weights_path
from emostream.errors import CheckpointError
from emostream.models.lip_ensemble import LipEnsemble, LipNet, load_lip_net
from emostream.models.lip_refiner import LipRefiner as Net
from emostream.models.lip_refiner import LipRefinerConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None, help="lip refiner checkpoint (default: shipped weights)")
    ap.add_argument("--seconds", type=float, default=20.0, help="audio length timed per backend")
    ap.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--chunk", type=int, default=5, help="frames per push (engine hop)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        net: LipNet
        net, _ = load_lip_net(args.ckpt or default_weights_path())
        weights = str(args.ckpt or default_weights_path())
    except CheckpointError:
        torch.manual_seed(0)
        net, weights = Net(LipRefinerConfig(feature_dim=FEATURE_DIM)).eval(), "random-init (no weights found)"
    fps = net.cfg.fps
    n = int(args.seconds * fps)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((n, net.cfg.feature_dim)).astype(np.float32)
    motion = rng.random((n, MOTION_DIM)).astype(np.float32)
    result: dict[str, object] = {
        "weights": weights,
        "device": args.device,
        "threads": args.threads,
        "frames": n,
        "chunk_frames": args.chunk,
        "lookahead_frames": net.cfg.lookahead_frames,
        "lookahead_ms": net.cfg.lookahead_ms,
        "prior_input": net.cfg.prior_input,
        "parameters": sum(p.numel() for p in net.parameters()),
        "members": len(net.members) if isinstance(net, LipEnsemble) else 1,  # an ensemble runs each member
    }
    for backend in ("torch", "onnx"):
        r = LipRefiner(net, backend=backend, device=args.device)
        r.refine(feats[:50], motion[:50])  # warm-up
        s = r.new_stream("happy:0.8")
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, n, args.chunk):
            s.push(feats[i : i + args.chunk], motion[i : i + args.chunk])
        s.flush()
        result[f"{backend}_ms_per_frame"] = round(1000 * (time.perf_counter() - t0) / n, 4)  # wall
        result[f"{backend}_cpu_ms_per_frame"] = round(1000 * (time.process_time() - c0) / n, 4)
    result["target_ms_per_frame"] = 1.0
    result["load_average_1min"] = round(os.getloadavg()[0], 2)  # other jobs on the machine skew timings
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
