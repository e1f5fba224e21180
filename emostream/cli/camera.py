"""``emostream camera``: the avatar as a virtual webcam for video calls."""

from __future__ import annotations

from pathlib import Path

import typer

from emostream.cli.options import crop_option, max_side_option
from emostream.cli.stream import StreamOptions, run_stream
from emostream.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("camera")
    def camera(
        mic_device: str | None = typer.Argument(None, metavar="[DEVICE]", help="Microphone for --mic."),
        image: Path | None = typer.Option(None, "--image", help="Portrait photo (default: the astronaut)."),
        mic: bool = typer.Option(False, "--mic", help="Drive it from a microphone: --mic [DEVICE]."),
        audio: str | None = typer.Option(
            None, "--audio", help="Audio file, or - for raw s16le PCM on stdin."
        ),
        rate: int = typer.Option(16000, "--rate", help="Sample rate of PCM on stdin."),
        emotion: str = typer.Option("neutral", "--emotion", help="NAME[:INTENSITY], e.g. happy:0.7."),
        device: str | None = typer.Option(None, "--device", help="Virtual camera device, e.g. /dev/video2."),
        play: bool = typer.Option(False, "--play", help="Play the avatar's voice (in sync) on the speakers."),
        wav: Path | None = typer.Option(None, "--wav", help="Write the avatar's voice (in sync) to a WAV."),
        renderer: str = typer.Option("analytic", "--renderer", help="analytic or fomm."),
        size: int = typer.Option(256, "--size", help="Face working resolution: 256 or 512."),
        crop: str = crop_option(),
        max_side: int = max_side_option(live=True),
        compute: str = typer.Option("cpu", "--compute", help="Inference device: cpu or cuda."),
        control_port: int | None = typer.Option(
            None, "--control-port", help="Serve HTTP emotion control here."
        ),
        seed: int = typer.Option(0, "--seed", help="Sampler seed."),
        motion: Path | None = typer.Option(
            None, "--motion", help="EmoDiff checkpoint (default: shipped weights)."
        ),
        steps: int | None = typer.Option(None, "--steps", help="Sampler steps (default: the checkpoint's)."),
    ) -> None:
        """Send the live avatar to a virtual camera (v4l2loopback / OBS Virtual Camera).
        Keys while running: 1-8 emotion, +/- intensity, c clear, q quit."""
        if mic_device is not None and not mic:
            raise ConfigError(f"unexpected argument {mic_device!r} (a microphone device needs --mic)")
        run_stream(
            StreamOptions(
                image=image, audio=audio, mic=mic, mic_device=mic_device, rate=rate, camera=True,
                camera_device=device, play=play, wav=wav, emotion=emotion, seed=seed, renderer=renderer,
                size=size, crop=crop, max_side=max_side, device=compute, control_port=control_port,
                keys=True, motion=motion, steps=steps,
            )
        )  # fmt: skip
