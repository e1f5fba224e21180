"""``emostream render``: a portrait driven by a Live Link Face CSV, or by audio, to an mp4.

Every input is checked before a model loads (options, output paths, the audio's header, the
motion CSV), then the portrait and its renderer (image, face, checkpoint), and only then the
motion model runs: a bad input fails in about a second, never after minutes of work. Audio is
streamed (emostream.apps.render_audio): long files render with bounded memory, written as they
go, with a progress bar on a terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from tqdm import tqdm

from emostream.arkit import EmotionStyle
from emostream.cli import options
from emostream.config import check_fps
from emostream.errors import ConfigError
from emostream.livelink import read_livelink_csv, write_livelink_csv
from emostream.streaming.sinks.outfile import check_writable


def register(app: typer.Typer) -> None:
    @app.command("render")
    def render(
        image: str = options.IMAGE,
        motion: Path = typer.Option(
            None, "--motion", help="Live Link Face CSV driving the face (no audio model)."
        ),
        audio: Path = typer.Option(
            None, "--audio", help="Speech to animate with the full pipeline (muxed in)."
        ),
        output: Path = typer.Option(
            ..., "-o", "--output", help="Output mp4 (H.264 yuv420p, + AAC with --audio)."
        ),
        size: int = options.SIZE,
        renderer: str = options.RENDERER,
        checkpoint: Path = options.CHECKPOINT,
        config: Path = options.CONFIG,
        device: str = options.DEVICE,
        crop: str = options.crop_option(),
        max_side: int = options.max_side_option(live=False),
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
        check_fps(fps)
        if (motion is None) == (audio is None):
            raise ConfigError("give exactly one of --motion (a Live Link Face CSV) or --audio (speech)")
        if motion is not None and (emotion or style or arkit_csv):
            raise ConfigError("--emotion, --style and --arkit-csv only apply with --audio")
        if emotion and style:
            raise ConfigError("give --emotion or --style, not both")
        opts = options.RendererOptions(
            image=None if image is None else Path(image), renderer=renderer, size=size, device=device,
            checkpoint=checkpoint, config=config, crop=crop, max_side=max_side,
        ).check()  # fmt: skip
        check_writable(output)
        if arkit_csv is not None:
            check_writable(arkit_csv)
        mood = EmotionStyle.parse(emotion) if emotion else None
        ref = read_livelink_csv(style, fps=fps).motion if style is not None else None
        seq = read_livelink_csv(motion, fps=fps).motion if motion is not None else None
        if audio is not None:
            # deferred: PyAV (heavy), only with --audio
            from emostream.media.audio import audio_info

            audio_info(audio)  # the header: a missing, empty or non-audio file fails now
        # deferred: the renderer and PyAV (heavy), after the arguments are checked
        from emostream.apps.render_audio import render_audio
        from emostream.apps.render_video import render_to_mp4
        from emostream.render.factory import create_renderer

        r = create_renderer(
            opts.renderer, image, size=opts.size, device=opts.device, framing=opts.framing(),
            checkpoint=opts.checkpoint, config=opts.config,
        )  # fmt: skip
        if seq is not None:
            n = render_to_mp4(r, seq, output, fps=fps)
        else:
            with _Progress(audio) as bar:
                n, seq = render_audio(
                    r, audio, output, fps=fps, emotion=mood, style=ref, seed=seed, device=device,
                    progress=bar.update, keep_motion=arkit_csv is not None,
                )  # fmt: skip
            if arkit_csv is not None and seq is not None:
                write_livelink_csv(arkit_csv, seq, fps=fps)
        typer.echo(f"wrote {output} ({n} frames, {r.width}x{r.height} at {fps} fps)")


class _Progress:
    """A progress bar over the audio's duration, on stderr, only on a terminal."""

    def __init__(self, audio: Path) -> None:
        # deferred: PyAV (heavy), only with --audio
        from emostream.media.audio import audio_info

        total = audio_info(audio).duration_s
        self.bar = tqdm(
            total=None if total is None else round(total, 1), unit="s", desc="rendering",
            disable=not sys.stderr.isatty(), leave=False, file=sys.stderr,
        )  # fmt: skip
        self.done = 0.0

    def update(self, seconds: float) -> None:
        self.bar.update(round(seconds - self.done, 1))
        self.done = round(seconds, 1)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
