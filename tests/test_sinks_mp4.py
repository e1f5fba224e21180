"""mp4 sink: audio and video in sync (flash/beep), through the writer and the live session."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from session_doubles import double_engine

from emostream.config import SAMPLE_RATE
from emostream.engine.session import SessionConfig
from emostream.streaming.runner import Mp4Sink, run_live
from emostream.streaming.sinks.mp4 import Mp4Writer
from emostream.streaming.sources import FileSource


def flash_and_beep(path: Path) -> tuple[float, float]:
    """(time of the first frame with a bright red channel, time of the first loud sample) in s."""
    with av.open(str(path)) as c:
        flash = next(
            float(f.pts * f.time_base)
            for f in c.decode(video=0)
            if f.to_ndarray(format="rgb24")[..., 0].mean() > 100
        )
    with av.open(str(path)) as c:
        for f in c.decode(audio=0):
            pcm = f.to_ndarray().reshape(-1)
            loud = np.flatnonzero(np.abs(pcm) > 0.1)
            if loud.size:
                return flash, float(f.pts * f.time_base) + loud[0] / f.sample_rate
    raise AssertionError("no beep in the file")


def test_writer_av_offset_within_half_a_frame(tmp_path: Path) -> None:
    out = tmp_path / "x.mp4"
    with Mp4Writer(out, width=64, height=48, fps=25) as w:
        for k in range(60):
            w.write_video(np.full((48, 64, 3), 255 if k == 37 else 0, np.uint8), k)
            pcm = np.zeros(640, np.float32)
            if k == 37:
                pcm[:] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(640) / SAMPLE_RATE)
            w.write_audio(pcm, k * 640)
    flash, beep = flash_and_beep(out)
    assert abs(flash - 37 / 25) < 1e-6
    assert abs(beep - flash) <= 0.5 / 25


def test_writer_repeats_frames_over_gaps(tmp_path: Path) -> None:
    out = tmp_path / "gap.mp4"
    with Mp4Writer(out, width=32, height=32, fps=25, audio=False) as w:
        w.write_video(np.zeros((32, 32, 3), np.uint8), 0)
        w.write_video(np.zeros((32, 32, 3), np.uint8), 4)
    assert w.frames_repeated == 3
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5


async def test_session_to_mp4_keeps_lips_and_sound_together(tmp_path: Path) -> None:
    # The double renderer's red channel is jawOpen, which follows the audio energy: the mouth
    # "flashes" open on the frame where the beep starts. Measured in the written file.
    beep_frame = 30
    audio = np.zeros(60 * 640, np.float32)
    audio[beep_frame * 640 : (beep_frame + 10) * 640] = 0.4 * np.sin(
        2 * np.pi * 700 * np.arange(6400) / SAMPLE_RATE
    )
    engine = double_engine()
    s = engine.new_session(config=SessionConfig(realtime=False))
    out = tmp_path / "s.mp4"
    src = FileSource("beep", realtime=False, audio=audio)
    stats = await run_live(s, src, [Mp4Sink(str(out), width=s.width, height=s.height, fps=engine.fps)])
    assert stats.video_frames == 60
    flash, beep = flash_and_beep(out)
    assert abs(flash - beep_frame / 25) < 1e-6
    assert abs(beep - flash) <= 0.5 / 25
