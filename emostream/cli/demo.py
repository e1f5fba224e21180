"""``emostream demo``: the default portrait speaks the bundled sample through the live pipeline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import typer

from emostream.arkit import EmotionStyle
from emostream.assets import sample_path
from emostream.cli.options import crop_option, framing_from, max_side_option


def save_strip(frames: list[np.ndarray], path: Path) -> None:
    """A horizontal PNG strip of RGB frames."""
    # deferred: OpenCV (heavy), only to show the video
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    strip = np.concatenate(frames, axis=1)
    if not cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("out/demo.mp4"), "--out", help="mp4 to write."),
        strip: Path = typer.Option(Path("out/demo_strip.png"), "--strip", help="PNG strip of a few frames."),
        renderer: str = typer.Option("analytic", "--renderer", help="analytic (CPU) or fomm."),
        size: int = typer.Option(256, "--size", help="Face working resolution: 256 or 512."),
        crop: str = crop_option(),
        max_side: int = max_side_option(live=False),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        emotion: str = typer.Option("happy:0.6", "--emotion", help="NAME[:INTENSITY], e.g. happy:0.6."),
        seed: int = typer.Option(0, "--seed", help="Sampler seed."),
        motion: Path | None = typer.Option(
            None, "--motion", help="EmoDiff checkpoint (default: shipped weights)."
        ),
        steps: int | None = typer.Option(None, "--steps", help="Sampler steps (default: the checkpoint's)."),
    ) -> None:
        """The default portrait speaks the bundled sample live (paced in real time) into an mp4,
        then prints the latency summary."""
        # deferred: the engine (torch, av; heavy), after the arguments are checked
        from emostream.engine.pipeline import Engine, EngineConfig
        from emostream.engine.session import VideoFrame
        from emostream.streaming.runner import Mp4Sink, run_live
        from emostream.streaming.sources import FileSource

        t = time.perf_counter()
        engine = Engine.load(
            EngineConfig(
                renderer=renderer, size=size, device=device, steps=steps,
                framing=framing_from(crop, max_side),
                motion_path=None if motion is None else str(motion),
            )
        )  # fmt: skip
        session = engine.new_session(None, emotion=EmotionStyle.parse(emotion), seed=seed)
        load_s = time.perf_counter() - t
        source = FileSource(sample_path(), realtime=True)
        total = int(source.duration_s * engine.fps) + 1
        picked: dict[int, np.ndarray] = {}  # one frame per eighth of the clip

        def keep(item: object) -> None:
            if isinstance(item, VideoFrame):
                picked.setdefault(min(item.pts * 8 // total, 7), item.rgb)

        sink = Mp4Sink(str(out), width=session.width, height=session.height, fps=engine.fps)
        t = time.perf_counter()
        stats = asyncio.run(run_live(session, source, [sink], on_item=keep))
        run_s = time.perf_counter() - t
        if picked:
            save_strip([picked[k] for k in sorted(picked)], strip)
        lat = stats.latency_summary()

        def ms(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.0f} ms"

        typer.echo(f"wrote {out} ({stats.video_frames} frames, {session.width}x{session.height}, "
                   f"{source.duration_s:.1f} s of speech) and {strip}")  # fmt: skip
        typer.echo(
            f"load {load_s:.1f} s, live run {run_s:.1f} s, "
            f"pipeline latency {float(session.latency) * 1000:.0f} ms"
        )
        typer.echo(
            f"first frame {ms(stats.first_frame_ms)}, audio-to-frame p50 {ms(lat['p50'])} "
            f"p95 {ms(lat['p95'])}, dropped frames {stats.dropped_frames}"
        )
