"""`emostream train fomm`: a few steps on a tiny synthetic video set; the loss falls; resumable."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from fomm_fixtures import one_thread  # noqa: F401
from typer.testing import CliRunner

from emostream.errors import InputError
from emostream.models.fomm.checkpoint import load_fomm, read_checkpoint
from emostream.models.fomm.config import load_config
from emostream.training.train_fomm import FommTrainConfig, load_videos, train_fomm

TINY = {
    "dataset_params": {"frame_shape": [64, 64, 3]},
    "model_params": {
        "common_params": {"num_kp": 4, "num_channels": 3, "estimate_jacobian": True},
        "kp_detector_params": {
            "temperature": 0.1,
            "block_expansion": 8,
            "max_features": 32,
            "scale_factor": 0.5,
            "num_blocks": 3,
        },
        "generator_params": {
            "block_expansion": 8,
            "max_features": 32,
            "num_down_blocks": 2,
            "num_bottleneck_blocks": 1,
            "estimate_occlusion_map": True,
            "dense_motion_params": {
                "block_expansion": 8,
                "max_features": 32,
                "num_blocks": 3,
                "scale_factor": 0.5,
            },
        },
    },
}


def _write_video(path: Path, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"crf": "10", "preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fomm_train")
    vids = root / "videos"
    vids.mkdir()
    yy, xx = np.mgrid[:64, :64] / 64.0
    for v in range(2):
        frames = []
        for t in range(8):
            cx, cy = 0.35 + 0.04 * t, 0.5 + (0.1 if v else -0.1) * np.sin(t / 2)
            disc = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.01)
            img = np.stack([disc, 0.3 + 0.4 * xx, 0.6 * yy + 0.2 * disc * v], -1)
            frames.append((img.clip(0, 1) * 255).astype(np.uint8))
        _write_video(vids / f"clip{v}.mp4", np.stack(frames))
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    return vids, cfg


def test_loss_falls_and_checkpoint_loads(data: tuple[Path, Path], tmp_path: Path) -> None:
    vids, cfg_path = data
    cfg = load_config(cfg_path)
    clips = load_videos(vids, cfg.image_size)
    assert len(clips) == 2 and clips[0].shape == (8, 64, 64, 3)
    out = tmp_path / "fomm.pth.tar"
    tc = FommTrainConfig(steps=30, batch_size=4, lr=1e-3, save_every=15, sample_every=15, seed=0)
    hist = train_fomm(clips, cfg, out, tc, progress=False)
    assert len(hist) == 30
    first = np.mean([h["reconstruction"] for h in hist[:5]])
    last = np.mean([h["reconstruction"] for h in hist[-5:]])
    assert last < 0.8 * first, f"reconstruction loss did not fall: {first:.4f} -> {last:.4f}"
    assert sorted(p.name for p in (tmp_path / "fomm_samples").iterdir()) == [
        "step_0000015.png",
        "step_0000030.png",
    ]
    obj = read_checkpoint(out)
    assert obj["step"] == 30 and "optimizer_generator" in obj
    m = load_fomm(out)  # the config is embedded
    assert (m.config.kp_detector, m.config.generator) == (cfg.kp_detector, cfg.generator)


def test_resume_equals_unbroken_run(data: tuple[Path, Path], tmp_path: Path) -> None:
    vids, cfg_path = data
    cfg = load_config(cfg_path)
    clips = load_videos(vids, cfg.image_size)
    tc = FommTrainConfig(steps=4, batch_size=2, save_every=100, sample_every=100, seed=3)
    straight = tmp_path / "a.pth.tar"
    train_fomm(clips, cfg, straight, tc, progress=False)
    split = tmp_path / "b.pth.tar"
    train_fomm(clips, cfg, split, FommTrainConfig(**{**tc.__dict__, "steps": 2}), progress=False)
    hist = train_fomm(clips, cfg, split, tc, progress=False)
    assert len(hist) == 2
    a, b = read_checkpoint(straight), read_checkpoint(split)
    for k, v in a["generator"].items():
        assert torch.allclose(v.float(), b["generator"][k].float(), atol=1e-6), k


def test_cli_and_bad_inputs(data: tuple[Path, Path], tmp_path: Path) -> None:
    from emostream.cli import app

    vids, cfg_path = data
    out = tmp_path / "cli.pth.tar"
    args = ["train", "fomm", "--videos", str(vids), "--config", str(cfg_path), "--out", str(out)]
    args += ["--steps", "2", "--batch-size", "2", "--threads", "1"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert '"steps_run": 2' in res.output and out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=f"{empty}: no videos"):
        load_videos(empty, 64)
    (empty / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match=r"bad\.mp4: cannot decode video"):
        load_videos(empty, 64)
