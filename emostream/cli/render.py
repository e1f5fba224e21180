"""``emostream render``: a portrait driven by a Live Link Face CSV, or by audio, to an mp4."""

from __future__ import annotations

from pathlib import Path

import typer

from emostream.arkit import EmotionStyle
from emostream.cli.options import crop_option, framing_from, max_side_option
from emostream.config import check_fps
from emostream.errors import ConfigError
from emostream.livelink import read_livelink_csv, write_livelink_csv


def register(app: typer.Typer) -> None:
    @app.command("render")
    def render(
        image: str = typer.Option(
            None, "--image", help="Portrait image (default: scikit-image's public-domain astronaut)."
        ),
        motion: Path = typer.Option(
            None, "--motion", help="Live Link Face CSV driving the face (no audio model)."
        ),
        audio: Path = typer.Option(
            None, "--audio", help="Speech to animate with the full pipeline (muxed in)."
        ),
        output: Path = typer.Option(
            ..., "-o", "--output", help="Output mp4 (H.264 yuv420p, + AAC with --audio)."
        ),
        size: int = typer.Option(256, "--size", help="Face working resolution (crop side): 256 or 512."),
        renderer: str = typer.Option("analytic", "--renderer", help="analytic (CPU warp) or fomm (neural)."),
        checkpoint: Path = typer.Option(None, "--checkpoint", help="FOMM checkpoint (--renderer fomm)."),
        config: Path = typer.Option(None, "--config", help="FOMM YAML config (--renderer fomm)."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda (neural stages)."),
        crop: str = crop_option(),
        max_side: int = max_side_option(live=False),
        emotion: str = typer.Option(
            None, "--emotion", help="With --audio: NAME[:INTENSITY], e.g. happy:0.8."
        ),
        style: Path = typer.Option(
            None, "--style", help="With --audio: a Live Link CSV whose style to imitate."
        ),
        seed: int = typer.Option(0, "--seed", help="With --audio: sampler seed (fixed seed, same video)."),
        arkit_csv: Path = typer.Option(
            None, "--arkit-csv", help="With --audio: also write the motion as a Live Link CSV."
        ),
        fps: int = typer.Option(25, "--fps", help="Video frame rate (25 or 30)."),
    ) -> None:
        """Render a talking portrait to mp4 (from ARKit motion, or from speech)."""
        # deferred: the renderer and PyAV (heavy), after the arguments are checked
        from emostream.apps.render_video import motion_from_audio, render_to_mp4
        from emostream.render.factory import create_renderer

        check_fps(fps)
        framing = framing_from(crop, max_side)
        if (motion is None) == (audio is None):
            raise ConfigError("give exactly one of --motion (a Live Link Face CSV) or --audio (speech)")
        if motion is not None and (emotion or style or arkit_csv):
            raise ConfigError("--emotion, --style and --arkit-csv only apply with --audio")
        if emotion and style:
            raise ConfigError("give --emotion or --style, not both")
        # the portrait first: a photo without a usable face fails before any audio model loads
        r = create_renderer(
            renderer, image, size=size, device=device, framing=framing,
            checkpoint=checkpoint, config=config,
        )  # fmt: skip
        pcm = None
        if motion is not None:
            seq = read_livelink_csv(motion, fps=fps).motion
        else:
            # deferred: PyAV (heavy), only with --audio
            from emostream.media.audio import load_audio

            pcm = load_audio(audio)
            ref = read_livelink_csv(style, fps=fps).motion if style is not None else None
            seq = motion_from_audio(
                pcm, fps=fps, emotion=EmotionStyle.parse(emotion) if emotion else None, style=ref,
                seed=seed, device=device,
            )  # fmt: skip
            if arkit_csv is not None:
                write_livelink_csv(arkit_csv, seq, fps=fps)
        n = render_to_mp4(r, seq, output, fps=fps, audio=pcm)
        typer.echo(f"wrote {output} ({n} frames, {r.width}x{r.height} at {fps} fps)")
