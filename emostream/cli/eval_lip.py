"""``emostream eval lip``: mouth and closure metrics with the lip refiner on and off (JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import typer

from emostream.errors import InputError
from emostream.training.schema import Utterance


def register(app: typer.Typer) -> None:
    @app.command("lip")
    def eval_lip(
        data: Path = typer.Option(..., "--data", help="Corpus directory (emostream data build --out DIR)."),
        real: bool = typer.Option(False, "--real", help="Evaluate held-out real speech (split test_real)."),
        ckpt: Path | None = typer.Option(None, "--ckpt", help="Lip refiner checkpoint (default: shipped)."),
        motion: str = typer.Option(
            "default",
            "--motion",
            help="EmoDiff checkpoint for the refiner-off baseline: a path, 'default' (shipped), or 'none'.",
        ),
        steps: int | None = typer.Option(None, "--sampler-steps", help="EmoDiff sampler steps."),
        backend: str = typer.Option("torch", "--backend", help="torch or onnx."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        limit: int | None = typer.Option(None, "--limit", help="Evaluate at most N utterances."),
        every: int = typer.Option(
            1, "--every", help="Evaluate every K-th utterance of the split (shards are grouped by engine)."
        ),
        seed: int = typer.Option(0, "--seed", help="EmoDiff sampling seed."),
        pad_silence: float = typer.Option(
            0.0, "--pad-silence", help="Add this many seconds of silence before and after each utterance."
        ),
        classifier: Path | None = typer.Option(
            None,
            "--classifier",
            help="Emotion classifier checkpoint: adds emotion_acc on/off (needs --motion).",
        ),
        plot: Path | None = typer.Option(
            None, "--plot", help="Write a jawOpen-vs-phones PNG of one utterance."
        ),
        plot_index: int = typer.Option(0, "--plot-index", help="Which utterance --plot shows."),
        gate_scale: float | None = typer.Option(
            None, "--gate-scale", help="Override the checkpoint's closure-gate scale (calibration)."
        ),
        gate_bias: float | None = typer.Option(
            None, "--gate-bias", help="Override the checkpoint's closure-gate bias (calibration)."
        ),
        as_json: bool = typer.Option(True, "--json/--no-json", help="Print JSON (the only output format)."),
    ) -> None:
        """Mouth MAE, jawOpen correlation, bilabial closure and rest in silence, refiner on/off."""
        # deferred: torch and the lip evaluation (heavy), after the arguments are checked
        import torch

        from emostream.engine.features import features_for
        from emostream.engine.lip import LipRefiner, default_weights_path
        from emostream.engine.motion import MotionEngine
        from emostream.engine.vad import speech_probs
        from emostream.models.emotion_classifier import load_classifier
        from emostream.models.lip_ensemble import load_lip_net
        from emostream.training.corpus import load_corpus
        from emostream.training.eval_lip import evaluate, pad_utterance, plot_jaw, refine_sequence

        torch.set_num_threads(1)
        split = "test_real" if real else "val"
        if every < 1:
            raise InputError(f"--every must be >= 1, got {every}")
        utts = list(load_corpus(data, split=split))[::every][: limit if limit is not None else None]
        if not utts:
            raise InputError(f"no utterances in split {split!r}", data)
        if pad_silence > 0:
            utts = [pad_utterance(u, pad_silence) for u in utts]
        refiner = LipRefiner.load(ckpt, device=device, backend=backend)
        if gate_scale is not None or gate_bias is not None:
            net, _ = load_lip_net(default_weights_path() if ckpt is None else ckpt)
            net.cfg = replace(
                net.cfg,
                gate_scale=net.cfg.gate_scale if gate_scale is None else gate_scale,
                gate_bias=net.cfg.gate_bias if gate_bias is None else gate_bias,
            )
            refiner = LipRefiner(net, backend=backend, device=device)
        base_fn: Callable[[Utterance, np.ndarray], np.ndarray] | None = None
        if motion != "none":
            engine = MotionEngine.load(
                None if motion == "default" else Path(motion), device=device, backend=backend,
                steps=steps, fps=utts[0].fps, refiner=False,
            )  # fmt: skip

            def generate(u: Utterance, feats: np.ndarray) -> np.ndarray:
                return engine.generate(feats, u.emotion, seed=seed)

            base_fn = generate

        classify: Callable[[np.ndarray], int] | None = None
        if classifier is not None:
            clf, _ = load_classifier(classifier)

            def classify_fn(m: np.ndarray) -> int:
                with torch.no_grad():
                    return int(clf(torch.from_numpy(m[None].astype(np.float32))).argmax(1)[0])

            classify = classify_fn
        res = evaluate(utts, refiner, features_for, base_fn, classify, vad=speech_probs)
        doc = {
            "split": split,
            "utterances": len(utts),
            "every": every,
            "pad_silence_s": pad_silence,
            "lookahead_ms": refiner.cfg.lookahead_ms,
            "gate": {"scale": refiner.cfg.gate_scale, "bias": refiner.cfg.gate_bias},
            "refiner_on": {**res["on"], "refiner": True},
            **({"refiner_off": {**res["off"], "refiner": False}} if "off" in res else {}),
            "targets": res["targets"],
        }
        if plot is not None:
            u = utts[min(plot_index, len(utts) - 1)]
            feats = features_for(u.audio, u.fps)
            base = base_fn(u, feats) if base_fn is not None else None
            curves = {"target": u.targets}
            if base is not None:
                curves["EmoDiff (refiner off)"] = base
            zeros = base if base is not None else u.targets * 0
            curves["refiner on"] = refine_sequence(refiner, feats, zeros, u.emotion)
            plot.parent.mkdir(parents=True, exist_ok=True)
            plot_jaw(u, curves, plot)
            doc["plot"] = str(plot)
        if as_json:
            typer.echo(json.dumps(doc, indent=2))
