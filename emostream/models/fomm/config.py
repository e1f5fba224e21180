"""Typed FOMM configuration, read from the official YAML layout (``model_params`` of vox-256.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emostream.errors import ConfigError

#: Directory of the configs shipped with emostream (``slim-256.yaml`` for CPUs).
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass(frozen=True)
class KPDetectorConfig:
    block_expansion: int
    max_features: int
    num_blocks: int
    temperature: float
    scale_factor: float = 1.0
    pad: int = 0
    single_jacobian_map: bool = False


@dataclass(frozen=True)
class DenseMotionConfig:
    block_expansion: int
    max_features: int
    num_blocks: int
    scale_factor: float = 1.0
    kp_variance: float = 0.01


@dataclass(frozen=True)
class GeneratorConfig:
    block_expansion: int
    max_features: int
    num_down_blocks: int
    num_bottleneck_blocks: int
    estimate_occlusion_map: bool = False
    dense_motion: DenseMotionConfig | None = None


@dataclass(frozen=True)
class NormalizationConfig:
    """``animate_params.normalization_params`` (the relative-motion flags of normalize_kp)."""

    adapt_movement_scale: bool = True
    use_relative_movement: bool = True
    use_relative_jacobian: bool = True


@dataclass(frozen=True)
class FommConfig:
    num_kp: int
    num_channels: int
    estimate_jacobian: bool
    kp_detector: KPDetectorConfig
    generator: GeneratorConfig
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    frame_shape: tuple[int, int] = (256, 256)
    source: str = "<dict>"

    @property
    def image_size(self) -> int:
        return self.frame_shape[0]


def _section(d: dict[str, Any], key: str, where: str, path: str) -> dict[str, Any]:
    v = d.get(key)
    if not isinstance(v, dict):
        raise ConfigError(f"missing or malformed section '{where}{key}'", path)
    return v


def _build(cls: Any, params: dict[str, Any], where: str, path: str) -> Any:
    try:
        return cls(**params)
    except TypeError as e:
        raise ConfigError(f"bad keys in '{where}': {e}", path) from e


def config_from_dict(doc: dict[str, Any], source: str = "<dict>") -> FommConfig:
    """Build a :class:`FommConfig` from a parsed official-layout YAML document."""
    if not isinstance(doc, dict):
        raise ConfigError("not a FOMM config (top level is not a mapping)", source)
    mp = _section(doc, "model_params", "", source)
    common = dict(_section(mp, "common_params", "model_params.", source))
    kp = dict(_section(mp, "kp_detector_params", "model_params.", source))
    gen = dict(_section(mp, "generator_params", "model_params.", source))
    dm_params = gen.pop("dense_motion_params", None)
    dm = (
        None
        if dm_params is None
        else _build(DenseMotionConfig, dict(dm_params), "dense_motion_params", source)
    )
    try:
        num_kp = int(common["num_kp"])
        num_channels = int(common["num_channels"])
        estimate_jacobian = bool(common.get("estimate_jacobian", False))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"bad 'model_params.common_params': {e}", source) from e
    gen.pop("estimate_jacobian", None)  # dead argument of the official generator
    norm = doc.get("animate_params", {}).get("normalization_params", {}) or {}
    frame = doc.get("dataset_params", {}).get("frame_shape", [256, 256, 3])
    cfg = FommConfig(
        num_kp=num_kp,
        num_channels=num_channels,
        estimate_jacobian=estimate_jacobian,
        kp_detector=_build(KPDetectorConfig, kp, "kp_detector_params", source),
        generator=_build(GeneratorConfig, {**gen, "dense_motion": dm}, "generator_params", source),
        normalization=_build(NormalizationConfig, dict(norm), "normalization_params", source),
        frame_shape=(int(frame[0]), int(frame[1])),
        source=source,
    )
    for name, s in (
        ("kp_detector", cfg.kp_detector.scale_factor),
        ("dense_motion", dm.scale_factor if dm else 1),
    ):
        if not 0 < s <= 1:
            raise ConfigError(f"{name} scale_factor must be in (0, 1], got {s}", source)
    return cfg


def config_to_dict(cfg: FommConfig) -> dict[str, Any]:
    """The official YAML layout of ``cfg`` (inverse of :func:`config_from_dict`)."""
    gen = {k: v for k, v in asdict(cfg.generator).items() if k != "dense_motion"}
    if cfg.generator.dense_motion is not None:
        gen["dense_motion_params"] = asdict(cfg.generator.dense_motion)
    return {
        "dataset_params": {"frame_shape": [*cfg.frame_shape, cfg.num_channels]},
        "model_params": {
            "common_params": {
                "num_kp": cfg.num_kp,
                "num_channels": cfg.num_channels,
                "estimate_jacobian": cfg.estimate_jacobian,
            },
            "kp_detector_params": asdict(cfg.kp_detector),
            "generator_params": gen,
        },
        "animate_params": {"normalization_params": asdict(cfg.normalization)},
    }


def load_config(path: str | Path) -> FommConfig:
    """Read an official-layout FOMM YAML (e.g. vox-256.yaml). A bare name like ``slim-256``
    refers to a config shipped in :data:`CONFIG_DIR`."""
    p = Path(path)
    if not p.exists() and not p.suffix and (CONFIG_DIR / f"{p.name}.yaml").exists():
        p = CONFIG_DIR / f"{p.name}.yaml"
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read config: {e.strerror or e}", p) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"malformed YAML: {e}", p) from e
    return config_from_dict(doc, str(p))
