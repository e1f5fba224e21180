"""``emostream bench``: per-stage and end-to-end latency, RTF and sessions per machine (JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emostream.cli.options import crop_option, framing_from, max_side_option


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        renderer: str = typer.Option("analytic", "--renderer", help="analytic or fomm."),
        size: int = typer.Option(256, "--size", help="Face working resolution: 256 or 512."),
        image: Path | None = typer.Option(None, "--image", help="Portrait (default: the astronaut)."),
        crop: str = crop_option(),
        max_side: int = max_side_option(live=True),
        json_out: Path | None = typer.Option(None, "--json", help="Also write the JSON result here."),
        plot_out: Path | None = typer.Option(None, "--plot", help="Write the plots (PNG) here."),
        quick: bool = typer.Option(False, "--quick", help="Seconds instead of minutes (schema check, CI)."),
        live_seconds: float = typer.Option(60.0, "--live-seconds", help="Paced live run for latency/drops."),
        sessions_seconds: float = typer.Option(
            30.0, "--sessions-seconds", help="How long N sessions must hold 25 fps."
        ),
        max_sessions: int = typer.Option(8, "--max-sessions", help="Most concurrent sessions to try."),
        motion: Path | None = typer.Option(
            None, "--motion", help="EmoDiff checkpoint (default: shipped weights)."
        ),
        steps: int | None = typer.Option(None, "--steps", help="Sampler steps (default: the checkpoint's)."),
        checkpoint: Path | None = typer.Option(
            None, "--checkpoint", help="FOMM checkpoint for --renderer fomm."
        ),
        threads: int = typer.Option(
            1, "--threads", help="torch intra-op threads (0: torch's default, one per core)."
        ),
        refiner: bool = typer.Option(
            True, "--refiner/--no-refiner", help="Load the lip refiner (runs beside EmoDiff)."
        ),
        compute_margin: float | None = typer.Option(
            None, "--compute-margin", help="Session compute margin in seconds (default: SessionConfig's)."
        ),
        jitter_margin: float | None = typer.Option(
            None, "--jitter-margin", help="Session input-jitter margin in seconds (default: SessionConfig's)."
        ),
        compare: bool = typer.Option(
            False,
            "--compare",
            help="Also measure side-by-side ratios (teacher/distilled, torch/ONNX, analytic/FOMM, "
            "256/512, batch scaling) into the JSON's 'ratios' and 'compare'.",
        ),
        teacher: Path | None = typer.Option(
            None,
            "--teacher",
            help="EmoDiff teacher checkpoint for --compare (default: shipped, else out/emodiff/teacher).",
        ),
        readme: Path | None = typer.Option(
            None, "--readme", help="Write the results table between the bench markers of this README."
        ),
    ) -> None:
        """Measure the runtime on this machine and print the JSON result."""
        # deferred: the benchmark (torch, onnxruntime; heavy), after the arguments are checked
        from emostream.bench.compare import CompareConfig, default_teacher
        from emostream.bench.pipeline import BenchConfig, plot, run_bench
        from emostream.bench.readme import update_readme

        cfg = BenchConfig(
            device=device, renderer=renderer, size=size, quick=quick, live_seconds=live_seconds,
            sessions_seconds=sessions_seconds, max_sessions=max_sessions, steps=steps,
            motion_path=None if motion is None else str(motion),
            renderer_checkpoint=None if checkpoint is None else str(checkpoint), refiner=refiner,
            threads=threads or None, compute_margin_s=compute_margin, jitter_margin_s=jitter_margin,
            image=None if image is None else str(image), crop=framing_from(crop, max_side).crop,
            max_side=max_side,
        )  # fmt: skip
        cmp = None
        if compare:
            t = str(teacher) if teacher is not None else default_teacher()
            cmp = CompareConfig(motion_path=cfg.motion_path, teacher_path=t)
        result, raw = run_bench(cfg, compare=cmp)
        text = json.dumps(result, indent=2)
        typer.echo(text)
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(text + "\n")
        if plot_out is not None:
            plot_out.parent.mkdir(parents=True, exist_ok=True)
            plot(result, raw, str(plot_out))
        if readme is not None:
            update_readme(readme, [result])
