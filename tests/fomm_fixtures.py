"""Shared helpers for the FOMM tests: the parity fixtures in ../shared/fixtures/fomm/.

The fixtures are required: a missing directory FAILS the tests (it never skips them)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURE_NAMES = ("fomm_small", "fomm_small_alt")

#: Max abs diff tolerances from the fixtures' README.
TOL = {
    "kp_source_value": 1e-5,
    "kp_source_jacobian": 1e-5,
    "kp_driving_value": 1e-5,
    "kp_driving_jacobian": 1e-5,
    "kp_norm_value": 1e-5,
    "kp_norm_jacobian": 1e-5,
    "mask": 1e-5,
    "occlusion_map": 1e-5,
    "deformation": 1e-5,
    "sparse_motion": 1e-5,
    "heatmap_representation": 1e-5,
    "prediction": 1e-5,
    "sparse_deformed": 5e-5,
    "bottleneck_input": 5e-5,
    "deformed": 1e-4,
}


def fixture_dir() -> Path:
    env = os.environ.get("EMOSTREAM_FOMM_FIXTURES")
    d = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "fomm"
    if not (d / "fomm_small.pth.tar").is_file():
        raise AssertionError(f"FOMM parity fixtures missing at {d} (set EMOSTREAM_FOMM_FIXTURES)")
    return d


def paths(name: str) -> tuple[Path, Path, Path]:
    d = fixture_dir()
    return d / f"{name}.pth.tar", d / f"{name}.yaml", d / f"{name}_io.npz"


def load_io(name: str) -> dict[str, np.ndarray]:
    with np.load(paths(name)[2]) as z:
        return {k: z[k] for k in z.files}


def assert_close(name: str, key: str, got: object, want: np.ndarray) -> None:
    arr = got.detach().cpu().numpy() if hasattr(got, "detach") else np.asarray(got)  # type: ignore[union-attr]
    assert arr.shape == want.shape, f"{name}/{key}: shape {arr.shape} != {want.shape}"
    err = float(np.abs(arr.astype(np.float64) - want.astype(np.float64)).max())
    assert err <= TOL[key], f"{name}/{key}: max abs diff {err:.3g} > {TOL[key]:.0e}"


@pytest.fixture(autouse=True)
def one_thread():
    """2 cores shared by many jobs: one torch thread is faster than two spinning under load.
    Import this fixture into a test module to apply it there."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
