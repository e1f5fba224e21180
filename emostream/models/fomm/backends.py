"""One factory for FOMM inference backends, chosen once per renderer, never branched on per frame.

Backends (``BACKENDS``):
- ``torch-cpu``: :class:`FastFomm` in float32 (cached source, folded BN, sub-pixel up blocks).
- ``torch-cuda``: the same on a GPU, autocast fp16 or bf16 (softmax, exp, grid_sample stay fp32),
  channels_last, optionally ``torch.compile(mode="reduce-overhead")`` (CUDA graphs), and the fused
  CuPy heatmap + sparse-motion + warp kernel when cupy is installed.
- ``ort-cpu`` / ``ort-cuda`` / ``ort-tensorrt``: the exported ONNX graphs (onnx_export.py) run by
  onnxruntime with the CPU, CUDA or TensorRT execution provider.

Every backend takes and returns CPU float32 tensors: images (N, C, H, W) in [0, 1], Keypoints.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from emostream.errors import ConfigError, DependencyError, DeviceError
from emostream.models.fomm.checkpoint import FommModel
from emostream.models.fomm.config import FommConfig
from emostream.models.fomm.fast import FastFomm, SourceState
from emostream.models.fomm.keypoints import Keypoints

BACKENDS = ("torch-cpu", "torch-cuda", "ort-cpu", "ort-cuda", "ort-tensorrt")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class FommBackend(Protocol):
    name: str
    config: FommConfig

    def detect(self, images: torch.Tensor) -> Keypoints:
        """(N, C, H, W) float32 in [0, 1] -> keypoints on the CPU."""
        ...

    def prepare_source(self, source: torch.Tensor) -> Any:
        """(1, C, H, W) -> an opaque per-portrait cache with a ``kp`` attribute (CPU Keypoints)."""
        ...

    def animate(self, cache: Any, kp_driving: Keypoints) -> torch.Tensor:
        """Normalised driving keypoints (N, ...) -> predictions (N, C, H, W) float32 on the CPU."""
        ...

    def animate_many(self, caches: list[Any], kp_driving: list[Keypoints]) -> list[torch.Tensor]:
        """Several sessions (one cache each, the same frame count each) in one batch."""
        ...


def _cpu_kp(kp: Keypoints) -> Keypoints:
    return Keypoints(kp.value.float().cpu(), None if kp.jacobian is None else kp.jacobian.float().cpu())


@dataclass
class TorchSource:
    state: SourceState  # on the backend's device
    kp: Keypoints  # the source keypoints, on the CPU


class TorchBackend:
    """FastFomm on a torch device; autocast for fp16/bf16 on CUDA."""

    def __init__(
        self,
        model: FommModel,
        device: str = "cpu",
        dtype: str = "fp32",
        compile: bool = False,
        fused_motion: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for but torch sees no CUDA GPU")
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
        if dtype != "fp32" and self.device.type != "cuda":
            raise ConfigError(f"dtype {dtype} needs --device cuda (the CPU path runs fp32)")
        self.name = f"torch-{self.device.type}"
        self.config = model.config
        self.fast = FastFomm(model).to(self.device)
        self.dtype = DTYPES[dtype]
        if self.device.type == "cuda":
            self.fast = self.fast.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            torch.backends.cudnn.benchmark = True
            if fused_motion is None:
                # deferred: cupy (optional, the cuda extra)
                from emostream.models.fomm import cupy_kernels

                fused_motion = cupy_kernels.available() and not compile  # compile would graph-break
            if fused_motion:
                # deferred: cupy (optional, the cuda extra)
                from emostream.models.fomm.cupy_kernels import fused_motion_input

                self.fast.motion_input = fused_motion_input  # type: ignore[method-assign]
        self._detect = self.fast.detect
        self._animate = self.fast.animate
        if compile:
            self._detect = torch.compile(self.fast.detect, mode="reduce-overhead", dynamic=False)
            self._animate = torch.compile(self.fast.animate, mode="reduce-overhead", dynamic=False)

    def _ctx(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else x

    @torch.inference_mode()
    def detect(self, images: torch.Tensor) -> Keypoints:
        with self._ctx():
            return _cpu_kp(self._detect(self._in(images)))

    @torch.inference_mode()
    def prepare_source(self, source: torch.Tensor) -> TorchSource:
        with self._ctx():
            st = self.fast.encode_source(self._in(source))
        st.kp = Keypoints(st.kp.value.float(), None if st.kp.jacobian is None else st.kp.jacobian.float())
        return TorchSource(st, _cpu_kp(st.kp))

    @torch.inference_mode()
    def animate(self, cache: TorchSource, kp_driving: Keypoints) -> torch.Tensor:
        kd = Keypoints(
            kp_driving.value.to(self.device),
            None if kp_driving.jacobian is None else kp_driving.jacobian.to(self.device),
        )
        with self._ctx():
            out = self._animate(cache.state, kd)
        return out.float().cpu()

    @torch.inference_mode()
    def animate_many(self, caches: list[TorchSource], kp_driving: list[Keypoints]) -> list[torch.Tensor]:
        """One forward for all sessions: sources stacked (S), frames grouped by source (N = S * n)."""
        counts = {len(k.value) for k in kp_driving}
        if len(caches) == 1 or len(counts) != 1:
            return [self.animate(c, k) for c, k in zip(caches, kp_driving, strict=True)]
        st = [c.state for c in caches]
        jac = None if st[0].kp.jacobian is None else torch.cat([s.kp.jacobian for s in st])  # type: ignore[misc]
        stacked = SourceState(
            torch.cat([s.source for s in st]), torch.cat([s.features for s in st]),
            torch.cat([s.motion_source for s in st]), Keypoints(torch.cat([s.kp.value for s in st]), jac),
            torch.cat([s.heat for s in st]),
        )  # fmt: skip
        kd = Keypoints.cat(kp_driving)
        kd = Keypoints(kd.value.to(self.device), None if kd.jacobian is None else kd.jacobian.to(self.device))
        with self._ctx():
            out = self.fast.animate(stacked, kd).float().cpu()
        return list(out.split(counts.pop()))


_PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


@dataclass
class OrtSource:
    kp: Keypoints
    feeds: dict[str, np.ndarray]


class OrtBackend:
    """The exported graphs run by onnxruntime (CPU, CUDA or TensorRT execution provider)."""

    def __init__(self, model: FommModel, name: str, onnx_dir: str | Path | None = None, threads: int = 0):
        # deferred: onnxruntime (heavy), loaded only when the ONNX backend is chosen
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise DependencyError("onnxruntime is not installed: pip install onnxruntime") from e
        # deferred: onnx (heavy), only when an ONNX file must be exported first
        from emostream.models.fomm.onnx_export import export_onnx

        wanted = _PROVIDERS[name][0]
        if wanted not in ort.get_available_providers():
            raise DependencyError(
                f"onnxruntime has no {wanted} here (available: {ort.get_available_providers()}); "
                "install the GPU build: pip install 'emostream[cuda]'"
            )
        self.name = name
        self.config = model.config
        self._tmp = None if onnx_dir is not None else tempfile.TemporaryDirectory(prefix="emostream-fomm-")
        out = Path(onnx_dir) if onnx_dir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        graphs = export_onnx(model, out)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        providers: list[Any] = list(_PROVIDERS[name])
        if name == "ort-tensorrt":
            providers[0] = (
                "TensorrtExecutionProvider",
                {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(out)},
            )
        self._kp = ort.InferenceSession(str(graphs.keypoints), opts, providers=providers)
        self._src = ort.InferenceSession(str(graphs.source), opts, providers=providers)
        self._anim = ort.InferenceSession(str(graphs.animate), opts, providers=providers)

    def detect(self, images: torch.Tensor) -> Keypoints:
        v, j = self._kp.run(None, {"images": images.float().numpy()})
        return Keypoints(torch.from_numpy(v), torch.from_numpy(j))

    def prepare_source(self, source: torch.Tensor) -> OrtSource:
        feats, ms, kv, kj, heat = self._src.run(None, {"source": source.float().numpy()})
        feeds = {"features": feats, "motion_source": ms, "kp_value": kv, "kp_jacobian": kj, "heat": heat}
        return OrtSource(Keypoints(torch.from_numpy(kv), torch.from_numpy(kj)), feeds)

    def animate(self, cache: OrtSource, kp_driving: Keypoints) -> torch.Tensor:
        jac = kp_driving.jacobian
        if jac is None:
            jac = torch.eye(2).expand(*kp_driving.value.shape[:2], 2, 2)
        feeds = dict(
            cache.feeds,
            driving_value=kp_driving.value.float().numpy(),
            driving_jacobian=jac.float().contiguous().numpy(),
        )
        (pred,) = self._anim.run(None, feeds)
        return torch.from_numpy(pred)

    def animate_many(self, caches: list[OrtSource], kp_driving: list[Keypoints]) -> list[torch.Tensor]:
        """The exported animate graph takes one source: sessions run one after another."""
        return [self.animate(c, k) for c, k in zip(caches, kp_driving, strict=True)]


def create_backend(
    model: FommModel,
    backend: str = "torch-cpu",
    *,
    dtype: str = "fp32",
    compile: bool = False,
    onnx_dir: str | Path | None = None,
    threads: int = 0,
) -> FommBackend:
    """The one place a FOMM backend is chosen. ``backend`` in BACKENDS (``cpu``/``cuda`` accepted
    as short names for torch-cpu / torch-cuda)."""
    name = {"cpu": "torch-cpu", "cuda": "torch-cuda"}.get(backend, backend)
    if name not in BACKENDS:
        raise ConfigError(f"unknown FOMM backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if name.startswith("torch-"):
        return TorchBackend(model, device=name[6:], dtype=dtype, compile=compile)
    if dtype != "fp32" and name != "ort-tensorrt":
        raise ConfigError(f"dtype {dtype} is not supported by {name} (graphs are exported in fp32)")
    if name != "ort-cpu" and not torch.cuda.is_available():
        with contextlib.suppress(ImportError):
            # deferred: onnxruntime (heavy), loaded only when the ONNX backend is chosen
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise DeviceError(f"{name} needs a CUDA GPU and onnxruntime-gpu; neither is present")
    return OrtBackend(model, name, onnx_dir=onnx_dir, threads=threads)
