"""Parity of the FOMM re-implementation against the official reference outputs (both configs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fomm_fixtures import FIXTURE_NAMES, assert_close, load_io, one_thread, paths  # noqa: F401

from emostream.models.fomm.checkpoint import FommModel, load_fomm
from emostream.models.fomm.dense_motion import heatmap_representation, sparse_motions
from emostream.models.fomm.fast import FastFomm
from emostream.models.fomm.keypoints import Keypoints, hull_area, movement_scale, normalize_kp


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def case(request: pytest.FixtureRequest) -> tuple[str, FommModel, dict[str, np.ndarray]]:
    ckpt, cfg, _ = paths(request.param)
    return request.param, load_fomm(ckpt, cfg), load_io(request.param)


def _t(d: dict[str, np.ndarray], k: str) -> torch.Tensor:
    return torch.from_numpy(d[k])


def _kp(d: dict[str, np.ndarray], prefix: str) -> Keypoints:
    return Keypoints(_t(d, f"{prefix}_value"), _t(d, f"{prefix}_jacobian"))


@torch.no_grad()
def test_keypoint_detector(case) -> None:
    name, m, d = case
    ks = m.kp_detector(_t(d, "source"))
    assert_close(name, "kp_source_value", ks.value, d["kp_source_value"])
    assert_close(name, "kp_source_jacobian", ks.jacobian, d["kp_source_jacobian"])
    kd = Keypoints.cat([m.kp_detector(_t(d, "driving")[i : i + 1]) for i in range(4)])
    assert_close(name, "kp_driving_value", kd.value, d["kp_driving_value"])
    assert_close(name, "kp_driving_jacobian", kd.jacobian, d["kp_driving_jacobian"])


@torch.no_grad()
def test_normalize_kp(case) -> None:
    name, m, d = case
    ks, kd, k0 = _kp(d, "kp_source"), _kp(d, "kp_driving"), _kp(d, "kp_driving_initial")
    norm = m.config.normalization
    assert movement_scale(ks, k0, norm.adapt_movement_scale) == pytest.approx(
        float(d["adapt_movement_scale"])
    )
    assert hull_area(d["kp_source_value"][0]) == pytest.approx(float(d["source_hull_area"]))
    kn = normalize_kp(ks, kd, k0, norm)
    assert_close(name, "kp_norm_value", kn.value, d["kp_norm_value"])
    assert_close(name, "kp_norm_jacobian", kn.jacobian, d["kp_norm_jacobian"])


@torch.no_grad()
def test_dense_motion(case) -> None:
    name, m, d = case
    dm = m.generator.dense_motion_network
    assert dm is not None and dm.down is not None
    src, ks, kn = _t(d, "source"), _kp(d, "kp_source"), _kp(d, "kp_norm")
    s = dm.down(src)
    outs = [dm(src, kn[i], ks) for i in range(4)]
    assert_close(name, "deformation", torch.cat([o.deformation for o in outs]), d["deformation"])
    sm = torch.cat([sparse_motions(s, kn[i], ks) for i in range(4)])
    assert_close(name, "sparse_motion", sm, d["sparse_motion"])
    hr = torch.cat([heatmap_representation(s, kn[i], ks, dm.kp_variance) for i in range(4)])
    assert_close(name, "heatmap_representation", hr, d["heatmap_representation"])


@torch.no_grad()
def test_generator(case) -> None:
    name, m, d = case
    src, ks, kn = _t(d, "source"), _kp(d, "kp_source"), _kp(d, "kp_norm")
    outs = [m.generator(src, kn[i], ks) for i in range(4)]
    for key in ("prediction", "deformed", "mask", "occlusion_map", "sparse_deformed", "bottleneck_input"):
        assert_close(name, key, torch.cat([getattr(o, key) for o in outs]), d[key])


@torch.no_grad()
def test_fast_path_matches_fixtures(case) -> None:
    """Cached source + fused blocks, all 4 frames as one batch and as a 2-source batch."""
    name, m, d = case
    fast = FastFomm(m)
    ks = fast.detect(_t(d, "source"))
    assert_close(name, "kp_source_value", ks.value, d["kp_source_value"])
    assert_close(name, "kp_source_jacobian", ks.jacobian, d["kp_source_jacobian"])
    kd = fast.detect(_t(d, "driving"))
    assert_close(name, "kp_driving_value", kd.value, d["kp_driving_value"])
    src, kn = _t(d, "source"), _kp(d, "kp_norm")
    state = fast.encode_source(src, _kp(d, "kp_source"))
    assert_close(name, "prediction", fast.animate(state, kn), d["prediction"])
    two = fast.encode_source(torch.cat([src, src]), Keypoints.cat([_kp(d, "kp_source")] * 2))
    assert_close(name, "prediction", fast.animate(two, kn), d["prediction"])
