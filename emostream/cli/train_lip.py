"""``emostream train lip``: train the lip refiner on a corpus built by ``emostream data build``."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import typer

from emostream.config import DEFAULT_FPS, DEFAULT_SEED


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
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    ) -> None:
        """Train the lip refiner; re-running the same command resumes from OUT's checkpoint."""
        import torch

        from emostream.errors import DeviceError
        from emostream.training.train_lip import TRAIN_SPLITS, VAL_SPLIT, TrainLipConfig, load_items, train

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise DeviceError("--device cuda requested but torch sees no CUDA GPU")
        torch.set_num_threads(threads)
        cfg = TrainLipConfig(
            steps=steps, batch=batch, lr=lr, augment_copies=augment_copies, seed=seed, threads=threads,
            device=device, ckpt_every=ckpt_every, eval_every=ckpt_every, gate_weight=gate_weight,
            bilabial_weight=bilabial_weight, real_share=real_share,
            model={"lookahead_frames": lookahead, "hidden": hidden, "lstm_layers": layers, "fps": fps},
        )  # fmt: skip
        t_prep = time.perf_counter()
        train_items = load_items(data, TRAIN_SPLITS, fps, augment_copies, seed, limit, synthetic_stride)
        val_items = load_items(data, (VAL_SPLIT,), fps, 0, seed, limit)
        if not val_items:
            val_items = train_items[: cfg.max_val]
        meta = {
            "command": "emostream train lip " + shlex.join(_args_after("lip")),
            "data": str(data),
            "train_utterances": len(train_items),
            "val_utterances": len(val_items),
            "prep_seconds": round(time.perf_counter() - t_prep, 1),
        }
        result = train(cfg, train_items, val_items, out, meta=meta, progress=progress)
        typer.echo(json.dumps({"path": result["path"], **result["final"]}))
