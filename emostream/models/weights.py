"""Checkpoints: tensors in ``NAME.safetensors`` + config/metadata in ``NAME.json``.

Loading checks every tensor's name, shape and dtype against the model built from the config,
and raises ``CheckpointError`` with one precise line on any mismatch, truncation or missing file.
No pickles anywhere. The lip refiner and the emotion classifier reuse these functions.

JSON layout::

    {"kind": "emodiff", "format": 1, "config": {...}, "meta": {...}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from emostream.errors import CheckpointError

FORMAT_VERSION = 1


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``foo``, ``foo.json`` or ``foo.safetensors`` -> (foo.safetensors, foo.json)."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_checkpoint(
    path: str | Path,
    kind: str,
    config: dict[str, Any],
    state: dict[str, torch.Tensor],
    meta: dict[str, Any] | None = None,
    *,
    half: bool = False,
) -> Path:
    """Write tensors + JSON next to each other (atomically: temp files, then rename).

    ``half=True`` stores float32 tensors as float16 (shipped default weights: half the size);
    ``load_state`` casts them back to the dtype the model expects."""
    st_path, js_path = checkpoint_paths(path)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    if half:
        tensors = {k: v.half() if v.dtype == torch.float32 else v for k, v in tensors.items()}
    tmp_st, tmp_js = st_path.with_suffix(".safetensors.tmp"), js_path.with_suffix(".json.tmp")
    save_file(tensors, str(tmp_st))
    doc = {"kind": kind, "format": FORMAT_VERSION, "config": config, "meta": meta or {}}
    tmp_js.write_text(json.dumps(doc, indent=2, sort_keys=True))
    tmp_st.chmod(0o644)  # safetensors writes 0600; checkpoints are shared, read-only data
    tmp_st.replace(st_path)
    tmp_js.replace(js_path)
    return st_path


def read_checkpoint_json(path: str | Path, kind: str | tuple[str, ...]) -> dict[str, Any]:
    """The JSON document of a checkpoint; checks that it is the expected ``kind`` (or one of them)."""
    _, js_path = checkpoint_paths(path)
    if not js_path.is_file():
        raise CheckpointError("checkpoint config not found (expected NAME.json)", js_path)
    try:
        doc = json.loads(js_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"unreadable checkpoint config: {e}", js_path) from e
    if not isinstance(doc, dict) or "config" not in doc or "kind" not in doc:
        raise CheckpointError("checkpoint config lacks 'kind'/'config' keys", js_path)
    kinds = (kind,) if isinstance(kind, str) else kind
    if doc["kind"] not in kinds:
        want = " or ".join(repr(k) for k in kinds)
        raise CheckpointError(f"checkpoint is a {doc['kind']!r} model, expected {want}", js_path)
    if doc.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {doc.get('format')!r} unsupported (expected {FORMAT_VERSION})", js_path
        )
    return doc


def load_state(path: str | Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Load the tensors and check them against ``expected`` (e.g. ``model.state_dict()``)."""
    st_path, _ = checkpoint_paths(path)
    if not st_path.is_file():
        raise CheckpointError("checkpoint weights not found (expected NAME.safetensors)", st_path)
    try:
        state = load_file(str(st_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"truncated or corrupt weights file: {e}", st_path) from e
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(
            f"missing tensor(s) {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}", st_path
        )
    if extra:
        raise CheckpointError(
            f"unexpected tensor(s) {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}", st_path
        )
    for name, ref in expected.items():
        got = state[name]
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"tensor {name!r} has shape {tuple(got.shape)}, the config expects {tuple(ref.shape)}",
                st_path,
            )
        if got.dtype == torch.float16 and ref.dtype == torch.float32:
            state[name] = got.float()  # stored in half precision (see save_checkpoint)
        elif got.dtype != ref.dtype:
            raise CheckpointError(f"tensor {name!r} has dtype {got.dtype}, expected {ref.dtype}", st_path)
    return state


def load_into(path: str | Path, module: torch.nn.Module) -> None:
    """Check and load a checkpoint's tensors into ``module`` (built from its JSON config)."""
    state = load_state(path, module.state_dict())
    module.load_state_dict(state, strict=True)
