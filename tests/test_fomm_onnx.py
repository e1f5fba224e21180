"""ONNX export (closed-form inverse, opset >= 16, eval wrappers) + onnxruntime CPU parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fomm_fixtures import FIXTURE_NAMES, assert_close, load_io, one_thread, paths  # noqa: F401

from emostream.errors import ConfigError
from emostream.models.fomm.checkpoint import load_fomm
from emostream.models.fomm.onnx_export import export_onnx, export_reference_generator


def _session(p: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_onnxruntime_cpu_parity(name: str, tmp_path: Path) -> None:
    ckpt, cfg, _ = paths(name)
    d = load_io(name)
    m = load_fomm(ckpt, cfg)
    g = export_onnx(m, tmp_path)
    for p in (g.keypoints, g.source, g.animate):
        proto = onnx.load(str(p))
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 16
        ops = {n.op_type for n in proto.graph.node}
        assert "Inverse" not in ops and "BatchNormalization" not in ops  # folded, eval mode
    v, j = _session(g.keypoints).run(None, {"images": d["driving"]})
    assert_close(name, "kp_driving_value", v, d["kp_driving_value"])
    assert_close(name, "kp_driving_jacobian", j, d["kp_driving_jacobian"])
    feats, ms, kv, kj, heat = _session(g.source).run(None, {"source": d["source"]})
    assert_close(name, "kp_source_value", kv, d["kp_source_value"])
    assert_close(name, "kp_source_jacobian", kj, d["kp_source_jacobian"])
    (pred,) = _session(g.animate).run(None, {
        "features": feats, "motion_source": ms, "kp_value": d["kp_source_value"],
        "kp_jacobian": d["kp_source_jacobian"], "heat": heat, "driving_value": d["kp_norm_value"],
        "driving_jacobian": d["kp_norm_jacobian"],
    })  # fmt: skip
    assert_close(name, "prediction", pred, d["prediction"])

    ref = _session(export_reference_generator(m, tmp_path / "reference.onnx"))
    keys = ("prediction", "deformed", "mask", "occlusion_map", "sparse_deformed")
    outs: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i in range(4):
        res = ref.run(None, {
            "source": d["source"], "kd_value": d["kp_norm_value"][i : i + 1],
            "kd_jacobian": d["kp_norm_jacobian"][i : i + 1], "ks_value": d["kp_source_value"],
            "ks_jacobian": d["kp_source_jacobian"],
        })  # fmt: skip
        for k, r in zip(keys, res, strict=True):
            outs[k].append(r)
    for k in keys:
        assert_close(name, k, np.concatenate(outs[k]), d[k])


def test_opset_below_16_is_refused(tmp_path: Path) -> None:
    ckpt, cfg, _ = paths("fomm_small_alt")
    with pytest.raises(ConfigError, match="opset 15 < 16"):
        export_onnx(load_fomm(ckpt, cfg), tmp_path, opset=15)
