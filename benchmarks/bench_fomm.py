"""FOMM speed: a straightforward reference-style pipeline vs emostream's cached/fused one (JSON).

Per frame, as demo.py does it: the keypoint detector on the driving frame, then the full
generator forward on (source, normalised keypoints) -- all outputs, source re-encoded every frame.
Ours: the keypoint detector on the driving frame, then FastFomm.animate on the cached source
(folded BN, sub-pixel up blocks, strided anti-alias, prediction only). Both run in this process,
interleaved frame by frame so they see the same machine load; medians are reported.
Weights are random (timing does not depend on them); configs: vox-256 (official) and slim-256.

    .venv/bin/python benchmarks/bench_fomm.py [--configs vox-256 slim-256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from emostream.models.fomm.backends import create_backend
from emostream.models.fomm.checkpoint import build_model
from emostream.models.fomm.config import load_config
from emostream.models.fomm.keypoints import normalize_kp


def _ms(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000.0


def bench_config(name: str, repeats: int, batches: list[int], ort: bool, device: str) -> dict[str, object]:
    torch.manual_seed(0)
    model = build_model(load_config(name))
    side = model.config.image_size
    source = torch.rand(1, 3, side, side)
    driving = torch.rand(max(batches), 3, side, side)
    norm = model.config.normalization
    res: dict[str, object] = {"config": name, "size": side}
    kd_ref, gen = model.kp_detector, model.generator
    with torch.inference_mode():
        ks = kd_ref(source)
        k0 = kd_ref(driving[:1])

        def reference() -> None:  # one frame, reference style
            kd = kd_ref(driving[:1])
            gen(source, normalize_kp(ks, kd, k0, norm), ks)

        backends = {
            "torch": create_backend(
                model,
                "torch-cuda" if device == "cuda" else "torch-cpu",
                dtype="fp16" if device == "cuda" else "fp32",
            )
        }
        if ort:
            t = time.perf_counter()
            backends["onnxruntime"] = create_backend(model, "ort-cuda" if device == "cuda" else "ort-cpu")
            res["onnx_export_s"] = round(time.perf_counter() - t, 2)
        caches = {k: b.prepare_source(source) for k, b in backends.items()}
        k0_b = {k: b.detect(driving[:1]) for k, b in backends.items()}

        def ours(k: str, n: int) -> Callable[[], None]:
            b, c = backends[k], caches[k]

            def run() -> None:
                kd = b.detect(driving[:n])
                b.animate(c, normalize_kp(c.kp, kd, k0_b[k], norm))

            return run

        with FlopCounterMode(display=False) as fc:
            reference()
        ref_flops = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc:
            ours("torch", 1)()
        res["gflop_per_frame"] = {
            "reference": round(ref_flops / 1e9, 2),
            "ours": round(fc.get_total_flops() / 1e9, 2),
        }
        t = time.perf_counter()
        cache_ms = _ms(lambda: backends["torch"].prepare_source(source))
        res["source_cache_ms"] = round(cache_ms, 1)
        for fn in [reference, *[ours(k, 1) for k in backends]]:
            fn()  # warm-up
        times: dict[str, list[float]] = {"reference": [], **{k: [] for k in backends}}
        for _ in range(repeats):  # interleaved: same load for all
            times["reference"].append(_ms(reference))
            for k in backends:
                times[k].append(_ms(ours(k, 1)))
        med = {k: statistics.median(v) for k, v in times.items()}
        res["per_frame_ms_batch1"] = {k: round(v, 1) for k, v in med.items()}
        res["speedup_torch_vs_reference"] = round(med["reference"] / med["torch"], 3)
        if "onnxruntime" in med:
            res["speedup_onnxruntime_vs_reference"] = round(med["reference"] / med["onnxruntime"], 3)
        res["fps_torch_batch1"] = round(1000.0 / med["torch"], 2)
        scaling = {}
        for n in batches:
            run = ours("torch", n)
            run()
            scaling[str(n)] = round(statistics.median(_ms(run) for _ in range(max(2, repeats // 2))) / n, 1)
        res["torch_per_frame_ms_by_batch"] = scaling
        res["wall_s"] = round(time.perf_counter() - t, 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--configs", nargs="+", default=["vox-256", "slim-256"], help="Config names or YAML paths."
    )
    ap.add_argument("--repeats", type=int, default=5, help="Timed frames per pipeline (median reported).")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4], help="Batch sizes for scaling.")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads.")
    ap.add_argument("--no-ort", action="store_true", help="Skip onnxruntime.")
    ap.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="cuda: torch fp16 + ort CUDA EP."
    )
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = {
        "benchmark": "fomm",
        "device": a.device,
        "torch": torch.__version__,
        "threads": a.threads,
        "cpu": platform.processor() or platform.machine(),
        "results": [bench_config(c, a.repeats, a.batches, not a.no_ort, a.device) for c in a.configs],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
