"""The FOMM checkpoint + config loader: official layout, strictness, precise errors on bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from fomm_fixtures import one_thread, paths  # noqa: F401

from emostream.errors import CheckpointError
from emostream.models.fomm.checkpoint import load_fomm, read_checkpoint
from emostream.models.fomm.config import CONFIG_DIR, load_config


def test_loads_both_fixtures_in_eval_mode() -> None:
    for name in ("fomm_small", "fomm_small_alt"):
        ckpt, cfg, _ = paths(name)
        m = load_fomm(ckpt, cfg)
        assert not m.kp_detector.training and not m.generator.training
        assert m.config.num_kp == (10 if name == "fomm_small" else 5)


def test_ignores_training_keys_and_missing_num_batches_tracked(tmp_path: Path) -> None:
    ckpt, cfg, _ = paths("fomm_small")
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    ref = load_fomm(ckpt, cfg)
    obj["discriminator"] = {"x.weight": torch.zeros(3)}
    obj["optimizer_generator"] = {"state": {}, "param_groups": [{"lr": 2e-4}]}
    obj["epoch"] = 12
    obj["generator"] = {k: v for k, v in obj["generator"].items() if not k.endswith("num_batches_tracked")}
    p = tmp_path / "train.pth.tar"
    torch.save(obj, p)
    m = load_fomm(p, cfg)
    for (k, a), b in zip(m.generator.state_dict().items(), ref.generator.state_dict().values(), strict=True):
        assert k.endswith("num_batches_tracked") or torch.equal(a, b)


def test_truncated_file(tmp_path: Path) -> None:
    ckpt, cfg, _ = paths("fomm_small")
    data = ckpt.read_bytes()
    p = tmp_path / "cut.pth.tar"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=re.escape(f"{p}: truncated or not a torch checkpoint")):
        load_fomm(p, cfg)


def test_not_a_torch_file_and_missing_file(tmp_path: Path) -> None:
    _, cfg, _ = paths("fomm_small")
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(CheckpointError, match="truncated or not a torch checkpoint"):
        load_fomm(p, cfg)
    with pytest.raises(
        CheckpointError, match=re.escape(f"{tmp_path / 'nope.pth'}: checkpoint file not found")
    ):
        load_fomm(tmp_path / "nope.pth", cfg)


def test_pickled_objects_are_refused_without_unsafe_advice(tmp_path: Path) -> None:
    """Issue 18, item 11: PyTorch's message advises retrying with weights_only=False (running the
    file's code); the error names what the file holds and never passes that advice on."""
    import argparse

    _, cfg, _ = paths("fomm_small")
    p = tmp_path / "objects.pth"
    torch.save({"kp_detector": {}, "generator": {}, "args": argparse.Namespace(lr=1)}, p)
    with pytest.raises(CheckpointError) as e:
        load_fomm(p, cfg)
    assert str(e.value) == (
        f"{p}: the checkpoint holds Python objects besides tensors (it references argparse.Namespace); "
        "only plain tensor checkpoints are loaded"
    )
    assert "weights_only" not in str(e.value) and "\n" not in str(e.value)


def test_wrong_config_keys() -> None:
    ckpt, _, _ = paths("fomm_small")
    _, alt_cfg, _ = paths("fomm_small_alt")
    with pytest.raises(
        CheckpointError, match=r"kp_detector does not match config .*fomm_small_alt.yaml: \d+ missing"
    ):
        load_fomm(ckpt, alt_cfg)


def test_wrong_config_shapes(tmp_path: Path) -> None:
    ckpt, cfg, _ = paths("fomm_small")
    doc = yaml.safe_load(cfg.read_text())
    doc["model_params"]["common_params"]["num_kp"] = 12
    p = tmp_path / "kp12.yaml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(
        CheckpointError,
        match=r"kp_detector\.kp\.weight has shape \(10, 11, 7, 7\) in the "
        r"checkpoint but config .*kp12\.yaml needs \(12, 11, 7, 7\)",
    ):
        load_fomm(ckpt, p)


def test_another_models_checkpoint(tmp_path: Path) -> None:
    _, cfg, _ = paths("fomm_small")
    p = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(4, 3, 3, 3)}, "epoch": 3}, p)
    with pytest.raises(
        CheckpointError,
        match=re.escape(
            f"{p}: not a FOMM checkpoint: expected top-level dicts 'kp_detector' and 'generator', "
            "found ['epoch', 'state_dict']"
        ),
    ):
        load_fomm(p, cfg)
    bare = tmp_path / "bare.pth"
    torch.save(torch.zeros(3), bare)
    with pytest.raises(CheckpointError, match="not a FOMM checkpoint"):
        read_checkpoint(bare)


def test_bad_config_files(tmp_path: Path) -> None:
    ckpt, _, _ = paths("fomm_small")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_params: [1, 2\n")
    with pytest.raises(CheckpointError, match="malformed YAML"):
        load_fomm(ckpt, bad)
    other = tmp_path / "other.yaml"
    other.write_text("model_params:\n  common_params: {num_kp: 10, num_channels: 3}\n")
    with pytest.raises(
        CheckpointError, match=re.escape("missing or malformed section 'model_params.kp_detector_params'")
    ):
        load_fomm(ckpt, other)


def test_shipped_configs_parse() -> None:
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert "slim-256" in names and "vox-256" in names
    for n in names:
        cfg = load_config(n)
        assert cfg.frame_shape == (256, 256)
