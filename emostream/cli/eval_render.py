"""``emostream eval render``: rendering metrics (re-detected landmarks) as JSON + contact sheets."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("render")
    def eval_render(
        image: list[str] = typer.Option(
            None,
            "--image",
            help="Portrait image(s); the test-face names astronaut, grace_hopper, derived, luispedro "
            "also work (default: all four test faces).",
        ),
        sheets: Path = typer.Option(
            Path("out/render-sheets"), "--sheets", help="Folder for one contact-sheet PNG per face."
        ),
        as_json: bool = typer.Option(True, "--json/--no-json", help="Print the metrics as JSON."),
    ) -> None:
        """Lip gap / blink (with its detector control) / smile / head-yaw tracking, background
        stability, flicker, speed."""
        # deferred: the renderer and its evaluation (OpenCV, scipy; heavy), after the arguments are checked
        from emostream.render.eval import evaluate_render
        from emostream.render.portrait import load_image, sample_faces

        named = dict(sample_faces())
        targets = image or list(named)
        results: dict[str, dict[str, float]] = {}
        for item in targets:
            img = named[item] if item in named else load_image(item)
            name = item if item in named else Path(item).stem
            m = evaluate_render(img, sheet_path=sheets / f"{name}.png", name=name)
            results[name] = m.to_dict()
        out: object = results[next(iter(results))] if len(results) == 1 else results
        if as_json:
            typer.echo(json.dumps(out, indent=1))
        else:
            for face, metrics in results.items():
                typer.echo(f"{face}: " + ", ".join(f"{k}={v}" for k, v in metrics.items()))
