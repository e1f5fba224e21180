"""The backend factory: torch-cpu and ort-cpu agree with the fixtures; CUDA paths skip cleanly."""

from __future__ import annotations

import pytest
import torch
from fomm_fixtures import assert_close, load_io, one_thread, paths  # noqa: F401

from emostream.errors import ConfigError, DeviceError
from emostream.models.fomm.backends import create_backend
from emostream.models.fomm.checkpoint import FommModel, load_fomm
from emostream.models.fomm.fast import FastFomm
from emostream.models.fomm.keypoints import Keypoints

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def small() -> FommModel:
    ckpt, cfg, _ = paths("fomm_small")
    return load_fomm(ckpt, cfg)


@pytest.mark.parametrize("backend", ["torch-cpu", "ort-cpu"])
def test_cpu_backends_match_fixture(small: FommModel, backend: str) -> None:
    d = load_io("fomm_small")
    be = create_backend(small, backend)
    src = be.prepare_source(torch.from_numpy(d["source"]))
    assert_close("fomm_small", "kp_source_value", src.kp.value, d["kp_source_value"])
    kd = be.detect(torch.from_numpy(d["driving"]))
    assert_close("fomm_small", "kp_driving_jacobian", kd.jacobian, d["kp_driving_jacobian"])
    kn = Keypoints(torch.from_numpy(d["kp_norm_value"]), torch.from_numpy(d["kp_norm_jacobian"]))
    # the source cache holds the keypoints detected from the source; fixture kp_norm was built on them
    assert_close("fomm_small", "prediction", be.animate(src, kn), d["prediction"])


def test_factory_errors(small: FommModel) -> None:
    with pytest.raises(ConfigError, match="unknown FOMM backend 'tpu'"):
        create_backend(small, "tpu")
    with pytest.raises(ConfigError, match="needs --device cuda"):
        create_backend(small, "torch-cpu", dtype="fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_cuda_without_gpu_is_a_device_error(small: FommModel) -> None:
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        create_backend(small, "cuda")


@cuda
@pytest.mark.parametrize("dtype,tol", [("fp32", 1e-4), ("fp16", 2e-2), ("bf16", 6e-2)])
def test_torch_cuda_matches_fixture(small: FommModel, dtype: str, tol: float) -> None:
    d = load_io("fomm_small")
    be = create_backend(small, "cuda", dtype=dtype)
    src = be.prepare_source(torch.from_numpy(d["source"]))
    kn = Keypoints(torch.from_numpy(d["kp_norm_value"]), torch.from_numpy(d["kp_norm_jacobian"]))
    err = (be.animate(src, kn) - torch.from_numpy(d["prediction"])).abs().max().item()
    assert err < tol


@cuda
def test_cupy_fused_motion_matches_torch(small: FommModel) -> None:
    cupy_kernels = pytest.importorskip("emostream.models.fomm.cupy_kernels")
    pytest.importorskip("cupy")
    d = load_io("fomm_small")
    fast = FastFomm(small).cuda()
    st = fast.encode_source(torch.from_numpy(d["source"]).cuda())
    n = 4
    kd = torch.from_numpy(d["kp_norm_value"]).cuda()
    jac = torch.linalg.inv(torch.from_numpy(d["kp_norm_jacobian"]).cuda())
    args = (st.motion_source, st.kp.value.expand(n, -1, -1), jac, kd, st.heat.expand(n, -1, -1, -1), 0.01)
    x_ref, m_ref = FastFomm.motion_input(*args)
    x, m = cupy_kernels.fused_motion_input(*args)
    assert (m - m_ref).abs().max().item() < 1e-5
    assert (x - x_ref).abs().max().item() < 1e-4
