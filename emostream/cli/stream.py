"""``emostream stream``: a live session from a microphone, a file or a pipe into mp4 / virtual
camera / speakers / ARKit streams. ``emostream camera`` (cli/camera.py) reuses ``run_stream``."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from emostream.arkit import EMOTIONS, EmotionStyle
from emostream.cli import options
from emostream.cli.options import crop_option, framing_from, max_side_option
from emostream.config import DEFAULT_CROP, LIVE_MAX_SIDE
from emostream.errors import ConfigError
from emostream.streaming.sinks.outfile import check_writable

log = logging.getLogger(__name__)


@dataclass
class StreamOptions:
    image: Path | None = None
    audio: str | None = None  # FILE or "-" (raw s16le on stdin)
    mic: bool = False
    mic_device: str | None = None
    rate: int = 16000
    fast: bool = False
    out: Path | None = None
    camera: bool = False
    camera_device: str | None = None
    camera_backend: str | None = None
    play: bool = False
    play_device: str | None = None
    wav: Path | None = None
    arkit_osc: str | None = None
    arkit_csv: Path | None = None
    arkit_json: bool = False
    emotion: str = "neutral"
    seed: int = 0
    renderer: str = "analytic"
    size: int = 256
    crop: str = DEFAULT_CROP
    max_side: int = LIVE_MAX_SIDE
    device: str = "cpu"
    control_port: int | None = None
    keys: bool = False
    motion: Path | None = None
    steps: int | None = None
    checkpoint: Path | None = None
    extra_sinks: list[Any] = field(default_factory=list)


def _source(o: StreamOptions) -> Any:
    # deferred: the audio sources (PyAV, sounddevice; heavy), after the arguments are checked
    from emostream.streaming.sources import FileSource, MicSource, StdinSource

    if o.mic and o.audio:
        raise ConfigError("use either --mic or --audio, not both")
    if o.mic:
        return MicSource(o.mic_device)
    if o.audio == "-":
        return StdinSource(o.rate)
    if o.audio:
        return FileSource(o.audio, realtime=not o.fast)
    raise ConfigError(
        "give an audio source: --audio FILE, --audio - (raw s16le PCM on stdin) or --mic [DEVICE]"
    )


def _sinks(o: StreamOptions, width: int, height: int, fps: int) -> list[Any]:
    # deferred: the sinks (PyAV, pyvirtualcam; heavy), after the arguments are checked
    from emostream.streaming.runner import Mp4Sink
    from emostream.streaming.sinks import arkit, audio_out
    from emostream.streaming.sinks.camera import CameraSink

    sinks: list[Any] = list(o.extra_sinks)
    if o.out is not None:
        sinks.append(Mp4Sink(str(o.out), width=width, height=height, fps=fps))
    if o.camera:
        cam = CameraSink(width, height, fps, device=o.camera_device, backend=o.camera_backend)
        print(f"emostream: streaming to virtual camera {cam.device}", file=sys.stderr)
        sinks.append(cam)
    if o.play:
        sinks.append(audio_out.SpeakerSink(o.play_device))
    if o.wav is not None:
        sinks.append(audio_out.WavSink(o.wav))
    if o.arkit_osc:
        sinks.append(arkit.VmcOscSink(*arkit.parse_host_port(o.arkit_osc)))
    if o.arkit_csv is not None:
        sinks.append(arkit.LiveLinkCsvSink(o.arkit_csv, fps))
    if o.arkit_json:
        sinks.append(arkit.JsonLinesSink())
    if not sinks:
        raise ConfigError("no output: give --out, --camera, --play, --wav or an --arkit-* option")
    return sinks


def _keyboard(session: Any, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Keys while streaming: 1-8 emotion, +/- intensity, c clear (barge-in), q quit."""
    # deferred: termios and tty (POSIX only), only for keyboard control
    import termios
    import tty

    if not sys.stdin.isatty():
        return
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    print("keys: 1-8 " + " ".join(f"{i + 1}={e}" for i, e in enumerate(EMOTIONS)) + ", +/- intensity, "
          "c clear, q quit", file=sys.stderr)  # fmt: skip

    def run() -> None:
        style = session.emotion
        tty.setcbreak(fd)
        try:
            while not stop.is_set():
                ch = sys.stdin.read(1)
                if ch in "12345678" and ch:
                    style = EmotionStyle(EMOTIONS[int(ch) - 1], style.intensity)
                elif ch in "+-" and ch:
                    delta = 0.1 if ch == "+" else -0.1
                    style = EmotionStyle(style.name, round(min(1.0, max(0.0, style.intensity + delta)), 2))
                elif ch == "c":
                    session.clear()
                    continue
                elif ch in ("q", ""):
                    loop.call_soon_threadsafe(stop.set)
                    return
                else:
                    continue
                session.set_emotion(style.name, style.intensity)
                print(f"emotion {style.name} {style.intensity:.1f}", file=sys.stderr)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)

    threading.Thread(target=run, name="emostream-keys", daemon=True).start()


async def _run(o: StreamOptions) -> Any:
    # deferred: the engine (torch, av; heavy), after the arguments are checked
    from emostream.engine.pipeline import Engine, EngineConfig
    from emostream.engine.session import SessionConfig
    from emostream.streaming.runner import run_live

    source = _source(o)
    framing = framing_from(o.crop, o.max_side)
    engine = Engine.load(
        EngineConfig(
            renderer=o.renderer, size=o.size, device=o.device, steps=o.steps, framing=framing,
            motion_path=None if o.motion is None else str(o.motion),
            renderer_checkpoint=None if o.checkpoint is None else str(o.checkpoint),
        )
    )  # fmt: skip
    session = engine.new_session(
        o.image, emotion=EmotionStyle.parse(o.emotion), seed=o.seed,
        config=SessionConfig(realtime=not o.fast),
    )  # fmt: skip
    sinks = _sinks(o, session.width, session.height, engine.fps)
    control = None
    if o.control_port is not None:
        # deferred: aiohttp (heavy), only with --control-port
        from emostream.streaming.control_http import start_control_server

        control = await start_control_server(session, port=o.control_port)
        print(f"emostream: control at http://127.0.0.1:{o.control_port}/state", file=sys.stderr)
    stop = asyncio.Event()
    if o.keys:
        _keyboard(session, asyncio.get_running_loop(), stop)
    live = asyncio.create_task(run_live(session, source, sinks))
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({live, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not live.done():
            session.stop()
        stats = await live
    finally:
        stopper.cancel()
        if control is not None:
            await control.cleanup()
    return stats


def check_options(o: StreamOptions) -> None:
    """Every option and output path, before a model loads (one line and exit 2 on failure)."""
    options.RendererOptions(
        image=o.image,
        renderer=o.renderer,
        size=o.size,
        device=o.device,
        checkpoint=o.checkpoint,
        crop=o.crop,
        max_side=o.max_side,
    ).check()
    EmotionStyle.parse(o.emotion)
    for path in (o.out, o.wav, o.arkit_csv):
        if path is not None:
            check_writable(path)


def run_stream(o: StreamOptions) -> None:
    check_options(o)
    stats = asyncio.run(_run(o))
    lat = stats.latency_summary()
    fmt = {k: ("n/a" if v is None else f"{v:.0f} ms") for k, v in lat.items()}
    first = "n/a" if stats.first_frame_ms is None else f"{stats.first_frame_ms:.0f} ms"
    print(
        f"emostream: {stats.video_frames} frames, first frame {first}, audio-to-frame p50 {fmt['p50']} "
        f"p95 {fmt['p95']}, dropped {stats.dropped_frames}",
        file=sys.stderr,
    )


def list_devices() -> None:
    # deferred: sounddevice (optional: needs the PortAudio library)
    from emostream.streaming.sources import list_input_devices

    devices = list_input_devices()
    if not devices:
        typer.echo("no audio input devices")
    for d in devices:
        mark = " *" if d.is_default else "  "
        typer.echo(f"{d.index:3d}{mark} {d.name} ({d.channels} ch, {d.default_samplerate:g} Hz)")


def register(app: typer.Typer) -> None:
    @app.command("stream")
    def stream(
        mic_device: str | None = typer.Argument(None, metavar="[DEVICE]", help="Microphone for --mic."),
        image: Path | None = typer.Option(None, "--image", help="Portrait photo (default: the astronaut)."),
        audio: str | None = typer.Option(
            None, "--audio", help="Audio file, or - for raw s16le mono PCM on stdin."
        ),
        mic: bool = typer.Option(False, "--mic", help="Capture from a microphone: --mic [DEVICE]."),
        list_devices_: bool = typer.Option(
            False, "--list-devices", help="List audio input devices and exit."
        ),
        rate: int = typer.Option(16000, "--rate", help="Sample rate of PCM on stdin."),
        fast: bool = typer.Option(False, "--fast", help="Process a file as fast as possible (no pacing)."),
        out: Path | None = typer.Option(None, "--out", help="Write an mp4 (H.264 + AAC)."),
        camera: bool = typer.Option(False, "--camera", help="Send the video to a virtual camera."),
        camera_device: str | None = typer.Option(
            None, "--camera-device", help="Virtual camera, e.g. /dev/video2."
        ),
        play: bool = typer.Option(False, "--play", help="Play the avatar's voice on the speakers."),
        wav: Path | None = typer.Option(None, "--wav", help="Write the avatar's voice (in sync) to a WAV."),
        arkit_osc: str | None = typer.Option(
            None, "--arkit-osc", help="Send ARKit frames as VMC OSC to HOST:PORT."
        ),
        arkit_csv: Path | None = typer.Option(None, "--arkit-csv", help="Write a Live Link Face CSV."),
        arkit_json: bool = typer.Option(
            False, "--arkit-json", help="Print ARKit frames as JSON lines on stdout."
        ),
        emotion: str = typer.Option("neutral", "--emotion", help="NAME[:INTENSITY], e.g. happy:0.7."),
        seed: int = typer.Option(0, "--seed", help="Sampler seed."),
        renderer: str = typer.Option("analytic", "--renderer", help="analytic or fomm."),
        size: int = typer.Option(256, "--size", help="Face working resolution: 256 or 512."),
        crop: str = crop_option(),
        max_side: int = max_side_option(live=True),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        control_port: int | None = typer.Option(
            None, "--control-port", help="Serve HTTP emotion control here."
        ),
        motion: Path | None = typer.Option(
            None, "--motion", help="EmoDiff checkpoint (default: shipped weights)."
        ),
        steps: int | None = typer.Option(None, "--steps", help="Sampler steps (default: the checkpoint's)."),
        checkpoint: Path | None = typer.Option(
            None, "--checkpoint", help="FOMM checkpoint for --renderer fomm."
        ),
    ) -> None:
        """Stream a live avatar from a microphone, file or pipe into mp4 / camera / ARKit outputs."""
        if list_devices_:
            list_devices()
            return
        if mic_device is not None and not mic:
            raise ConfigError(f"unexpected argument {mic_device!r} (a microphone device needs --mic)")
        run_stream(
            StreamOptions(
                image=image, audio=audio, mic=mic, mic_device=mic_device, rate=rate, fast=fast, out=out,
                camera=camera, camera_device=camera_device, play=play, wav=wav, arkit_osc=arkit_osc,
                arkit_csv=arkit_csv, arkit_json=arkit_json, emotion=emotion, seed=seed, renderer=renderer,
                size=size, crop=crop, max_side=max_side, device=device, control_port=control_port,
                motion=motion, steps=steps, checkpoint=checkpoint,
            )
        )  # fmt: skip
