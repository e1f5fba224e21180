"""Denoiser backends, chosen once at load: torch (CPU / CUDA) or ONNX Runtime (CPU / CUDA EP).

Each exposes ``denoise(x_t, t, audio, style, prefix, mask, keep) -> v`` on numpy float32 arrays
(shapes in ``emostream.models.emodiff``); the sampler (``engine.sampler``) is written once on top.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from emostream.errors import ConfigError, DependencyError, DeviceError
from emostream.models.emodiff import EmoDiff

INPUT_NAMES = ("x_t", "t", "audio", "style", "prefix", "mask", "keep")


class TorchBackend:
    def __init__(self, model: EmoDiff, device: str = "cpu") -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise DeviceError("--device cuda requested but torch sees no CUDA GPU")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.window = model.cfg.window
        self.feature_dim = model.cfg.feature_dim
        self.style_dim = model.cfg.style.d_style

    @torch.inference_mode()
    def denoise(
        self,
        x_t: np.ndarray,
        t: np.ndarray,
        audio: np.ndarray,
        style: np.ndarray,
        prefix: np.ndarray,
        mask: np.ndarray,
        keep: np.ndarray,
    ) -> np.ndarray:
        dev = self.device
        args = [
            torch.from_numpy(np.require(a, np.float32, ["C", "W"])).to(dev)
            for a in (x_t, t, audio, style, prefix, mask, keep)
        ]
        return self.model(*args).float().cpu().numpy()


def export_onnx(model: EmoDiff, path: str | Path | None = None, batch: int = 1) -> bytes:
    """Export the denoiser (dynamic batch) to ONNX; returns the model bytes (and writes ``path``)."""
    cfg = model.cfg
    W, Fd, S, D = cfg.window, cfg.feature_dim, cfg.style.d_style, 55
    ex = (
        torch.zeros(batch, W, D),
        torch.full((batch,), 0.5),
        torch.zeros(batch, W, Fd),
        torch.zeros(batch, W, S),
        torch.zeros(batch, W, D),
        torch.zeros(batch, W, 1),
        torch.ones(batch, 2),
    )
    buf = io.BytesIO()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        torch.onnx.export(
            model.cpu(),
            ex,
            buf,  # type: ignore[arg-type]
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=["v"],
            dynamic_axes={n: {0: "batch"} for n in (*INPUT_NAMES, "v")},
            opset_version=17,
        )
    model.train(was_training)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


class OnnxBackend:
    def __init__(self, model: EmoDiff, device: str = "cpu", threads: int = 1) -> None:
        # deferred: onnxruntime (heavy), loaded only when the ONNX backend is chosen
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - onnxruntime is a dependency
            raise DependencyError("onnxruntime is not installed: pip install onnxruntime") from e
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise DeviceError("--device cuda with the onnx backend needs onnxruntime-gpu")
            providers.insert(0, "CUDAExecutionProvider")
        elif device != "cpu":
            raise ConfigError(f"unknown device {device!r}; use cpu or cuda")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(export_onnx(model), opts, providers=providers)
        self.window = model.cfg.window
        self.feature_dim = model.cfg.feature_dim
        self.style_dim = model.cfg.style.d_style

    def denoise(
        self,
        x_t: np.ndarray,
        t: np.ndarray,
        audio: np.ndarray,
        style: np.ndarray,
        prefix: np.ndarray,
        mask: np.ndarray,
        keep: np.ndarray,
    ) -> np.ndarray:
        feeds = {
            n: np.ascontiguousarray(a, dtype=np.float32)
            for n, a in zip(INPUT_NAMES, (x_t, t, audio, style, prefix, mask, keep), strict=True)
        }
        return self.session.run(["v"], feeds)[0]


def make_backend(model: EmoDiff, backend: str = "torch", device: str = "cpu") -> TorchBackend | OnnxBackend:
    if backend == "torch":
        return TorchBackend(model, device)
    if backend == "onnx":
        return OnnxBackend(model, device)
    raise ConfigError(f"unknown backend {backend!r}; use torch or onnx")
