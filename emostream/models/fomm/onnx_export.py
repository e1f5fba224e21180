"""ONNX export of the fast inference graphs (keypoints, per-source cache, per-frame animate) and of
the reference generator (all outputs, for parity checks). Opset >= 16 (grid_sample); 2x2
inverses are closed-form (blocks.inverse2x2); wrappers are exported in eval mode."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from emostream.errors import ConfigError
from emostream.models.fomm.checkpoint import FommModel
from emostream.models.fomm.fast import FastFomm, SourceState
from emostream.models.fomm.generator import OcclusionAwareGenerator
from emostream.models.fomm.keypoints import Keypoints

MIN_OPSET = 16
DEFAULT_OPSET = 17


def _jac(kp: Keypoints) -> torch.Tensor:
    """Jacobian, or identities when the model has none (then J_s J_d^-1 = I: same motion)."""
    if kp.jacobian is not None:
        return kp.jacobian
    b, k = kp.value.shape[:2]
    return torch.eye(2, dtype=kp.value.dtype, device=kp.value.device).expand(b, k, 2, 2)


class KeypointGraph(nn.Module):
    """images (N, C, H, W) -> kp_value (N, K, 2), kp_jacobian (N, K, 2, 2)."""

    def __init__(self, fast: FastFomm) -> None:
        super().__init__()
        self.fast = fast

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kp = self.fast.detect(images)
        return kp.value, _jac(kp)


class SourceGraph(nn.Module):
    """source (1, C, H, W) -> features, motion_source, kp_value, kp_jacobian, heat."""

    def __init__(self, fast: FastFomm) -> None:
        super().__init__()
        self.fast = fast

    def forward(self, source: torch.Tensor) -> tuple[torch.Tensor, ...]:
        st = self.fast.encode_source(source)
        return st.features, st.motion_source, st.kp.value, _jac(st.kp), st.heat


class AnimateGraph(nn.Module):
    """(source cache, normalised driving kp (N, K, 2), (N, K, 2, 2)) -> prediction (N, C, H, W)."""

    def __init__(self, fast: FastFomm) -> None:
        super().__init__()
        self.fast = fast

    def forward(
        self,
        features: torch.Tensor,
        motion_source: torch.Tensor,
        kp_value: torch.Tensor,
        kp_jacobian: torch.Tensor,
        heat: torch.Tensor,
        driving_value: torch.Tensor,
        driving_jacobian: torch.Tensor,
    ) -> torch.Tensor:
        st = SourceState(motion_source, features, motion_source, Keypoints(kp_value, kp_jacobian), heat)
        return self.fast.animate(st, Keypoints(driving_value, driving_jacobian))


class ReferenceGeneratorGraph(nn.Module):
    """The reference generator with every output: prediction, deformed, mask, occlusion_map,
    sparse_deformed (for checking an ONNX runtime against the fixtures)."""

    def __init__(self, generator: OcclusionAwareGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(
        self,
        source: torch.Tensor,
        kd_value: torch.Tensor,
        kd_jac: torch.Tensor,
        ks_value: torch.Tensor,
        ks_jac: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        out = self.generator(source, Keypoints(kd_value, kd_jac), Keypoints(ks_value, ks_jac))
        assert out.deformed is not None and out.mask is not None and out.sparse_deformed is not None
        occ = out.occlusion_map if out.occlusion_map is not None else out.mask[:, :1] * 0 + 1
        return out.prediction, out.deformed, out.mask, occ, out.sparse_deformed


@dataclass(frozen=True)
class OnnxGraphs:
    keypoints: Path
    source: Path
    animate: Path


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
    opset: int,
) -> Path:
    module.eval()  # the legacy exporter can otherwise restore training mode on inner BatchNorms
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    return path


def export_onnx(model: FommModel, out_dir: str | Path, opset: int = DEFAULT_OPSET) -> OnnxGraphs:
    """Write keypoints.onnx, source.onnx and animate.onnx for ``model`` into ``out_dir``."""
    if opset < MIN_OPSET:
        raise ConfigError(f"ONNX opset {opset} < {MIN_OPSET} (grid_sample needs opset 16)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast = FastFomm(model).eval()
    cfg = model.config
    h, w = cfg.frame_shape
    img = torch.rand(1, cfg.num_channels, h, w)
    kp_p = _export(
        KeypointGraph(fast),
        (img,),
        out / "keypoints.onnx",
        ["images"],
        ["kp_value", "kp_jacobian"],
        {"images": {0: "n"}, "kp_value": {0: "n"}, "kp_jacobian": {0: "n"}},
        opset,
    )
    src_p = _export(
        SourceGraph(fast),
        (img,),
        out / "source.onnx",
        ["source"],
        ["features", "motion_source", "kp_value", "kp_jacobian", "heat"],
        {},
        opset,
    )
    with torch.no_grad():
        st = fast.encode_source(img)
    kd_v = st.kp.value.repeat(2, 1, 1) + 0.01
    kd_j = _jac(st.kp).repeat(2, 1, 1, 1)
    names = [
        "features",
        "motion_source",
        "kp_value",
        "kp_jacobian",
        "heat",
        "driving_value",
        "driving_jacobian",
    ]
    anim_p = _export(
        AnimateGraph(fast),
        (st.features, st.motion_source, st.kp.value, _jac(st.kp), st.heat, kd_v, kd_j),
        out / "animate.onnx",
        names,
        ["prediction"],
        {"driving_value": {0: "n"}, "driving_jacobian": {0: "n"}, "prediction": {0: "n"}},
        opset,
    )
    return OnnxGraphs(kp_p, src_p, anim_p)


def export_reference_generator(model: FommModel, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export the reference generator with all outputs (batch 1) for parity checks."""
    cfg = model.config
    h, w = cfg.frame_shape
    k = cfg.num_kp
    src = torch.rand(1, cfg.num_channels, h, w)
    v = torch.rand(1, k, 2) * 0.5
    j = torch.eye(2).expand(1, k, 2, 2).contiguous()
    return _export(
        ReferenceGeneratorGraph(model.generator),
        (src, v, j, v, j),
        Path(path),
        ["source", "kd_value", "kd_jacobian", "ks_value", "ks_jacobian"],
        ["prediction", "deformed", "mask", "occlusion_map", "sparse_deformed"],
        {},
        opset,
    )
