"""Build a lip refiner ensemble from trained members and calibrate its closure gate.

The members must have been trained with the same held-out real-speech validation set
(``real_val_utterances`` in their metadata, from ``--real-val-every``): a member that trained on
another member's validation utterances would make the calibration read its own training data.
The calibration (``train_lip.calibrate_gate``) runs on that real-speech set and on the first
``VAL_ITEMS`` utterances of the synthetic ``val`` split, exactly the sets a single refiner's
``--calibrate-out`` uses; ``test_real`` is never read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from emostream.errors import ConfigError, InputError
from emostream.models.lip_ensemble import LipEnsemble
from emostream.models.lip_refiner import LipRefiner, load_lip_checkpoint
from emostream.training.corpus import corpus_fingerprint
from emostream.training.train_lip import (
    VAL_SPLIT,
    _Item,
    add_priors,
    calibrate_gate,
    emodiff_prior_generator,
    items_for,
    load_items_cache,
    load_utterances,
    save_items_cache,
)

log = logging.getLogger(__name__)

#: Synthetic validation utterances the gate is calibrated on (as ``train lip --calibrate-out``).
VAL_ITEMS = 256


def load_members(paths: Sequence[str | Path]) -> tuple[list[LipRefiner], list[dict[str, Any]]]:
    """The member checkpoints and their metadata; they must share one held-out real set."""
    if len(paths) < 2:
        raise ConfigError(f"an ensemble needs at least 2 members, got {len(paths)}")
    loaded = [load_lip_checkpoint(p) for p in paths]
    models, metas = [m for m, _ in loaded], [meta for _, meta in loaded]
    held = [tuple(meta.get("real_val_utterances") or ()) for meta in metas]
    if not held[0]:
        raise InputError("member has no held-out real-speech set (train it with --real-val-every)", paths[0])
    for p, h in zip(paths[1:], held[1:], strict=True):
        if h != held[0]:
            raise InputError(f"member holds out other real utterances than {paths[0]}", p)
    return models, metas


def validation_sets(
    data: str | Path,
    real_val_ids: Sequence[str],
    prior: dict[str, Any] | None,
    fps: int,
    seed: int,
    cache: str | Path | None = None,
    progress: bool = False,
) -> dict[str, list[_Item]]:
    """{"val": synthetic val items, "val_real": the held-out real items} with EmoDiff priors when
    the members take them (``prior``: their ``{"motion", "steps"}`` metadata)."""
    key: dict[str, Any] = {}
    cached = None
    if cache is not None:  # the corpus hash reads every shard: only when a cache is used
        key = {"data": str(Path(data).resolve()), "corpus": corpus_fingerprint(data), "fps": fps,
               "seed": seed, "real": list(real_val_ids), "prior": prior, "val_items": VAL_ITEMS}  # fmt: skip
        cached = load_items_cache(cache, key)
    if cached is not None:
        val, real = cached
        return {"val": val, "val_real": real}
    by_uid = {u.uid: u for u in load_utterances(data, ("train_real",), fps)}
    missing = [uid for uid in real_val_ids if uid not in by_uid]
    if missing:
        raise InputError(f"held-out real utterances not in the corpus: {', '.join(missing[:4])}", data)
    real = items_for([by_uid[uid] for uid in real_val_ids], 0, seed)
    val = items_for(load_utterances(data, (VAL_SPLIT,), fps)[:VAL_ITEMS], 0, seed)
    if prior is not None:
        motion = None if prior.get("motion") in (None, "default") else prior["motion"]
        gen = emodiff_prior_generator(motion, prior.get("steps"), fps)
        # Same seeds as the members' own calibration: val first, then the real set, each from item 0.
        add_priors(val, gen, seed, progress)
        add_priors(real, gen, seed, progress)
    if cache is not None:
        save_items_cache(cache, key, (val, real))
    return {"val": val, "val_real": real}


def build_ensemble(
    members: Sequence[LipRefiner],
    sets: dict[str, list[_Item]],
    mae_tolerance: float,
) -> tuple[LipEnsemble, dict[str, Any]]:
    """The calibrated ensemble of ``members`` and its calibration record (choice, base, grid)."""
    ens = LipEnsemble.of(list(members))
    cal = calibrate_gate(ens, sets, mae_tolerance=mae_tolerance)
    ens.cfg = replace(ens.cfg, gate_scale=cal["scale"], gate_bias=cal["bias"])
    log.info("ensemble gate: scale %s bias %s", cal["scale"], cal["bias"])
    record = {
        "sets": {k: len(v) for k, v in sets.items()},
        "mae_tolerance": mae_tolerance,
        "chosen": cal["chosen"],
        "base": cal["base"],
        "grid": cal["grid"],
    }
    return ens, record
