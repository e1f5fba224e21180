"""Loader for official FOMM checkpoints (``*.pth.tar``) + YAML configs, and for our own.

Reads only ``kp_detector`` and ``generator`` (training keys such as ``discriminator``,
``optimizer_*``, ``epoch`` are ignored), checks every key and shape, loads ``strict=True``."""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emostream.errors import CheckpointError, ConfigError
from emostream.models.fomm.config import FommConfig, config_from_dict, config_to_dict, load_config
from emostream.models.fomm.generator import OcclusionAwareGenerator
from emostream.models.fomm.keypoint_detector import KPDetector

MODULE_KEYS = ("kp_detector", "generator")


@dataclass
class FommModel:
    """The two official modules, in eval mode, and the config they were built from."""

    config: FommConfig
    kp_detector: KPDetector
    generator: OcclusionAwareGenerator

    def to(self, device: torch.device | str) -> FommModel:
        self.kp_detector.to(device)
        self.generator.to(device)
        return self


def build_model(cfg: FommConfig) -> FommModel:
    return FommModel(cfg, KPDetector(cfg).eval(), OcclusionAwareGenerator(cfg).eval())


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load(weights_only=True) with domain errors for missing / truncated / foreign files."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError("checkpoint file not found", p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
        KeyError,
        AssertionError,
        TypeError,
    ) as e:  # what torch.load raises on non-checkpoint bytes
        raise CheckpointError(_load_failure(e), p) from e
    if not isinstance(obj, dict) or not all(isinstance(obj.get(k), dict) for k in MODULE_KEYS):
        keys = sorted(map(str, obj))[:8] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"not a FOMM checkpoint: expected top-level dicts 'kp_detector' and 'generator', found {keys}", p
        )
    return obj


def _load_failure(e: BaseException) -> str:
    """One line for a failed safe load. PyTorch's own message advises retrying with
    ``weights_only=False``, i.e. running the file's pickled code: never passed on."""
    text = str(e)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"the checkpoint holds Python objects besides tensors (it references {found.group(1)}); "
            "only plain tensor checkpoints are loaded"
        )
    if "Weights only load failed" in text:  # keep only the unpickler's own complaint
        detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n|$)", text)
        text = detail.group(1) if detail else "not a tensor file"
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return f"truncated or not a torch checkpoint ({first})"


def _load_module(module: nn.Module, state: dict[str, Any], name: str, path: Path, cfg: FommConfig) -> None:
    expected = module.state_dict()
    state = dict(state)
    for k, v in expected.items():  # tolerate a missing num_batches_tracked
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v.clone()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{name} does not match config {cfg.source}: {len(missing)} missing keys "
            f"{missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}",
            path,
        )
    for k, v in expected.items():
        got = state[k]
        if not isinstance(got, torch.Tensor):
            raise CheckpointError(f"{name}.{k} is a {type(got).__name__}, not a tensor", path)
        if tuple(got.shape) != tuple(v.shape):
            raise CheckpointError(
                f"{name}.{k} has shape {tuple(got.shape)} in the checkpoint but config {cfg.source} "
                f"needs {tuple(v.shape)}",
                path,
            )
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(f"{name}.{k} holds NaN or Inf", path)
    module.load_state_dict(state, strict=True)


def load_fomm(checkpoint: str | Path, config: str | Path | FommConfig | None = None) -> FommModel:
    """Build the modules from ``config`` (a YAML path, a shipped config name or a FommConfig;
    None = the config embedded by ``emostream train fomm``), load ``checkpoint`` strictly, return
    them in eval mode on the CPU."""
    path = Path(checkpoint)
    obj = read_checkpoint(path)
    try:
        if config is None:
            if not isinstance(obj.get("config"), dict):
                raise CheckpointError("checkpoint embeds no config: pass the YAML (--config)", path)
            cfg = config_from_dict(obj["config"], f"{path}[config]")
        else:
            cfg = config if isinstance(config, FommConfig) else load_config(config)
    except ConfigError as e:
        raise CheckpointError(f"config: {e}") from e
    model = build_model(cfg)
    _load_module(model.kp_detector, obj["kp_detector"], "kp_detector", path, cfg)
    _load_module(model.generator, obj["generator"], "generator", path, cfg)
    model.kp_detector.eval()
    model.generator.eval()
    return model


def save_fomm(model: FommModel, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Save in the official layout (plus the config and optional training keys), atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save(
        {
            "kp_detector": model.kp_detector.state_dict(),
            "generator": model.generator.state_dict(),
            "config": config_to_dict(model.config),  # lets --config be omitted for our checkpoints
            **(extra or {}),
        },
        tmp,
    )
    tmp.replace(p)
