"""``emostream eval render``: rendering metrics (re-detected landmarks) as JSON + contact sheets."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emostream.errors import ImageError


def register(app: typer.Typer) -> None:
    @app.command("render")
    def eval_render(
        image: list[str] = typer.Option(
            None,
            "--image",
            help="Portrait image(s) or test-face names (astronaut, grace_hopper, derived, luispedro, "
            "kaushik, may, hopper_sepia, astronaut_gray, hopper_lowres; default: all of them).",
        ),
        sheets: Path = typer.Option(
            Path("out/render-sheets"),
            "--sheets",
            help="Folder for one contact-sheet PNG per face (512² tiles) and overview.png.",
        ),
        before: Path = typer.Option(
            None,
            "--before",
            help="Folder of earlier sheets (e.g. another revision's --sheets output): writes "
            "<face>-before-after.png and overview-before-after.png beside the new sheets.",
        ),
        strip_path: Path = typer.Option(
            None,
            "--strip",
            help="With --before: also write a compact before/after strip (jaw open, oo, smile, blink, "
            "head turned; 160 px tiles) for every face to this file (PNG or JPEG).",
        ),
        sheets_only: bool = typer.Option(False, "--sheets-only", help="Only draw the sheets (no metrics)."),
        as_json: bool = typer.Option(True, "--json/--no-json", help="Print the metrics as JSON."),
    ) -> None:
        """Lip gap / blink (with its detector control) / smile / head-yaw tracking, background
        stability, flicker, speed, mouth-interior colour / detail / stability; contact sheets."""
        # deferred: the renderer and its evaluation (OpenCV, scipy; heavy), after the arguments are checked
        from emostream.render.analytic import AnalyticRenderer
        from emostream.render.eval import contact_sheet, evaluate_render
        from emostream.render.portrait import load_image, prepare_portrait, test_faces
        from emostream.render.sheets import before_after, overview, read_sheet, strip, write_sheet

        if before is not None and not before.is_dir():
            raise ImageError("--before must be a folder of contact sheets", before)
        if strip_path is not None and before is None:
            raise ImageError("--strip needs --before (the earlier sheets to compare with)", strip_path)
        named = dict(test_faces())
        targets = image or list(named)
        images = [
            (item, named[item]) if item in named else (Path(item).stem, load_image(item)) for item in targets
        ]
        results: dict[str, dict[str, float]] = {}
        drawn = []
        for name, img in images:
            path = sheets / f"{name}.png"
            if sheets_only:
                write_sheet(path, contact_sheet(AnalyticRenderer(prepare_portrait(img, 512)), name))
            else:
                results[name] = evaluate_render(img, sheet_path=path, name=name).to_dict()
            drawn.append((name, read_sheet(path)))
        write_sheet(sheets / "overview.png", overview(drawn))
        if before is not None:
            pairs, rows = [], []
            for name, new in drawn:
                old_path = before / f"{name}.png"
                if not old_path.is_file():
                    continue
                old = read_sheet(old_path)
                rows += [(f"{name} before", old), (f"{name} after", new)]
                pair = before_after(old, new)
                write_sheet(sheets / f"{name}-before-after.png", pair)
                pairs.append((name, pair))
            if pairs:
                write_sheet(sheets / "overview-before-after.png", overview(pairs))
            if strip_path is not None and rows:
                write_sheet(strip_path, strip(rows))
        if sheets_only:
            return
        out: object = results[next(iter(results))] if len(results) == 1 else results
        if as_json:
            typer.echo(json.dumps(out, indent=1))
        else:
            for face, metrics in results.items():
                typer.echo(f"{face}: " + ", ".join(f"{k}={v}" for k, v in metrics.items()))
