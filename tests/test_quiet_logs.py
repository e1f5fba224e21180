"""Library log lines (TensorFlow Lite, ONNX Runtime) stay off the terminal unless --debug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from emostream.arkit import motion_vector
from emostream.livelink import write_livelink_csv

XNNPACK = "Created TensorFlow Lite XNNPACK delegate"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMOSTREAM_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "emostream", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_a_bad_portrait_prints_exactly_one_line(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (240, 240, 3), dtype=np.uint8)
    img = tmp_path / "noface.png"
    Image.fromarray(noise).save(img)
    csv = write_livelink_csv(tmp_path / "m.csv", np.stack([motion_vector()] * 2), 25)
    args = ("render", "--image", str(img), "--motion", str(csv), "-o", str(tmp_path / "o.mp4"))
    r = _run(tmp_path, *args)
    assert r.returncode == 2
    assert r.stderr == f"emostream: error: {img}: no face found in the image\n"
    assert r.stdout == ""
    # the face models did run (and print) — with --debug their line shows
    debug = _run(tmp_path, "--debug", *args)
    assert XNNPACK in debug.stderr


def test_a_good_render_is_quiet(tmp_path: Path) -> None:
    csv = write_livelink_csv(tmp_path / "m.csv", np.stack([motion_vector(jawOpen=0.5)] * 2), 25)
    r = _run(tmp_path, "render", "--motion", str(csv), "-o", str(tmp_path / "o.mp4"))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.startswith(f"wrote {tmp_path / 'o.mp4'} (2 frames, 512x512")
