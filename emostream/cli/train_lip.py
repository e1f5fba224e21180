"""``emostream train lip``: train the lip refiner on a corpus built by ``emostream data build``."""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import typer

from emostream.config import DEFAULT_FPS, DEFAULT_SEED
from emostream.errors import DeviceError


def _args_after(word: str) -> list[str]:
    argv = sys.argv
    return argv[argv.index(word) + 1 :] if word in argv else argv[1:]


def register(app: typer.Typer) -> None:
    @app.command("lip")
    def train_lip(
        data: Path = typer.Option(..., "--data", help="Corpus directory (emostream data build --out DIR)."),
        out: Path = typer.Option(
            ..., "--out", help="Checkpoint path NAME (writes NAME.safetensors + NAME.json)."
        ),
        steps: int = typer.Option(3000, "--steps", help="Optimizer steps."),
        batch: int = typer.Option(16, "--batch", help="Utterance crops per step."),
        lr: float = typer.Option(2e-3, "--lr", help="Peak learning rate (cosine decay)."),
        augment_copies: int = typer.Option(
            2, "--augment-copies", help="Augmented feature versions per utterance (0: clean only)."
        ),
        lookahead: int = typer.Option(2, "--lookahead", help="Output delay in frames (lookahead)."),
        hidden: int = typer.Option(128, "--hidden", help="LSTM width."),
        layers: int = typer.Option(2, "--layers", help="LSTM layers."),
        limit: int | None = typer.Option(None, "--limit", help="Use at most N utterances per split."),
        synthetic_stride: int = typer.Option(
            1, "--synthetic-stride", help="Use every K-th utterance of the synthetic train split (1: all)."
        ),
        fps: int = typer.Option(DEFAULT_FPS, "--fps", help="Frame rate of the corpus."),
        seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Random seed (fixed seed: same run)."),
        threads: int = typer.Option(1, "--threads", help="torch CPU threads."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        ckpt_every: int = typer.Option(
            250, "--ckpt-every", help="Checkpoint (and curves PNG) every N steps."
        ),
        gate_weight: float = typer.Option(0.05, "--gate-weight", help="Weight of the lip-closure gate loss."),
        bilabial_weight: float = typer.Option(
            4.0, "--bilabial-weight", help="Extra weight of bilabial-closure frames in the gate loss."
        ),
        real_share: float = typer.Option(
            0.3, "--real-share", help="Share of each batch drawn from real speech (train_real), 0..1."
        ),
        rest_weight: float = typer.Option(
            0.0, "--rest-weight", help="Weight of the rest hinge (jaw / lip gap shut where the target rests)."
        ),
        l1_weight: float = typer.Option(
            0.0, "--l1-weight", help="Weight of an L1 mouth term beside the MSE (0: MSE only)."
        ),
        feat_aug_prob: float = typer.Option(
            0.0, "--feat-aug-prob", help="Chance of a speaker/channel feature perturbation per sample, 0..1."
        ),
        real_augment_copies: int | None = typer.Option(
            None,
            "--real-augment-copies",
            help="Augmented versions per real utterance (default: as --augment-copies).",
        ),
        real_val_every: int = typer.Option(
            0,
            "--real-val-every",
            help="Hold out every K-th train_real utterance as real validation (0: none; never test_real).",
        ),
        calibrate_out: Path | None = typer.Option(
            None,
            "--calibrate-out",
            help="After training, pick the closure-gate calibration on the validation sets and write "
            "the calibrated copy to this checkpoint path.",
        ),
        prior_input: bool = typer.Option(
            False,
            "--prior-input/--no-prior-input",
            help="Also feed EmoDiff's mouth of each frame to the refiner (it predicts a residual).",
        ),
        prior_motion: Path | None = typer.Option(
            None, "--prior-motion", help="EmoDiff checkpoint generating the priors (default: shipped)."
        ),
        prior_steps: int | None = typer.Option(
            None, "--prior-steps", help="Sampler steps of the prior EmoDiff (default: its own)."
        ),
        items_cache: Path | None = typer.Option(
            None,
            "--items-cache",
            help="Pickle of the prepared features (and priors): reused when the data options match.",
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    ) -> None:
        """Train the lip refiner; re-running the same command resumes from OUT's checkpoint."""
        # deferred: torch and the trainer (heavy), after the arguments are checked
        import torch

        from emostream.models.lip_refiner import load_lip_checkpoint, save_lip_checkpoint
        from emostream.training.corpus import corpus_fingerprint
        from emostream.training.train_lip import (
            TRAIN_SPLITS,
            VAL_SPLIT,
            TrainLipConfig,
            add_priors,
            calibrate_gate,
            emodiff_prior_generator,
            hold_out_real,
            items_for,
            load_items_cache,
            load_utterances,
            save_items_cache,
            train,
        )

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise DeviceError("--device cuda requested but torch sees no CUDA GPU")
        torch.set_num_threads(threads)
        cfg = TrainLipConfig(
            steps=steps, batch=batch, lr=lr, augment_copies=augment_copies, seed=seed, threads=threads,
            device=device, ckpt_every=ckpt_every, eval_every=ckpt_every, gate_weight=gate_weight,
            bilabial_weight=bilabial_weight, real_share=real_share, rest_weight=rest_weight,
            feat_aug_prob=feat_aug_prob, l1_weight=l1_weight,
            model={"lookahead_frames": lookahead, "hidden": hidden, "lstm_layers": layers, "fps": fps,
                   "prior_input": prior_input},
        )  # fmt: skip
        t_prep = time.perf_counter()
        train_utts, real_val_utts = hold_out_real(
            load_utterances(data, TRAIN_SPLITS, fps, limit, synthetic_stride), real_val_every
        )
        key: dict[str, object] = {}
        cached = None
        if items_cache is not None:  # the corpus hash reads every shard: only when a cache is used
            key = {
                "data": str(Path(data).resolve()), "corpus": corpus_fingerprint(data), "fps": fps,
                "limit": limit, "stride": synthetic_stride, "copies": augment_copies,
                "real_copies": real_augment_copies, "real_val_every": real_val_every, "seed": seed,
                "prior": [str(prior_motion), prior_steps] if prior_input else None,
            }  # fmt: skip
            cached = load_items_cache(items_cache, key)
        if cached is not None:
            train_items, real_val_items, val_items = cached
        else:
            train_items = items_for(train_utts, augment_copies, seed, real_augment_copies)
            real_val_items = items_for(real_val_utts, 0, seed)
            val_items = items_for(load_utterances(data, (VAL_SPLIT,), fps, limit), 0, seed)
            if prior_input:
                gen = emodiff_prior_generator(prior_motion, prior_steps, fps)
                for its in (train_items, real_val_items, val_items):
                    add_priors(its, gen, seed, progress)
            if items_cache is not None:
                save_items_cache(items_cache, key, (train_items, real_val_items, val_items))
        if not val_items:
            val_items = train_items[: cfg.max_val]
        meta = {
            "command": "emostream train lip " + shlex.join(_args_after("lip")),
            "data": str(data),
            "train_utterances": len(train_items),
            "val_utterances": len(val_items),
            "real_val_utterances": [u.uid for u in real_val_utts],
            "prep_seconds": round(time.perf_counter() - t_prep, 1),
            "prior": {"motion": str(prior_motion or "default"), "steps": prior_steps}
            if prior_input
            else None,
        }
        result = train(
            cfg, train_items, val_items, out, meta=meta, progress=progress, real_val_items=real_val_items
        )
        doc = {"path": result["path"], **result["final"]}
        if calibrate_out is not None:
            model, old = load_lip_checkpoint(out)
            sets = {"val": val_items[: cfg.max_val * 4], "val_real": real_val_items}
            cal = calibrate_gate(model, sets)
            model.cfg = replace(model.cfg, gate_scale=cal["scale"], gate_bias=cal["bias"])
            old.pop("history", None)
            old["gate_calibration"] = {
                "sets": {k: len(v) for k, v in sets.items()},
                "chosen": cal["chosen"],
                "base": cal["base"],
                "grid": cal["grid"],
                "from": str(out),
            }
            doc["calibrated"] = str(save_lip_checkpoint(model, calibrate_out, old))
            doc["gate_calibration"] = cal["chosen"]
        typer.echo(json.dumps(doc))
