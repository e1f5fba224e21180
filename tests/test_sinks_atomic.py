"""The WAV and Live Link CSV sinks appear whole at close, or not at all (a hidden temporary
beside the target until then)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from emostream.arkit import MOTION_DIM, MotionFrame
from emostream.engine.session import ArkitFrame, AudioFrame
from emostream.livelink import read_livelink_csv
from emostream.streaming.sinks.arkit import LiveLinkCsvSink
from emostream.streaming.sinks.audio_out import WavSink


def _audio(n: int) -> list[AudioFrame]:
    t = np.arange(640 * n) / 16000
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return [AudioFrame(pcm[i * 640 : (i + 1) * 640], i * 640) for i in range(n)]


def test_wav_appears_whole_at_close(tmp_path: Path) -> None:
    out = tmp_path / "voice.wav"
    sink = WavSink(out)
    for f in _audio(25):
        sink.write(f)
    assert not out.exists() and len(list(tmp_path.glob(".voice.wav.*.part"))) == 1
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voice.wav"]
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnframes(), w.getnchannels()) == (16000, 640 * 25, 1)


def test_wav_abort_leaves_nothing(tmp_path: Path) -> None:
    sink = WavSink(tmp_path / "voice.wav")
    for f in _audio(5):
        sink.write(f)
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_livelink_csv_appears_whole_at_close(tmp_path: Path) -> None:
    out = tmp_path / "face.csv"
    sink = LiveLinkCsvSink(out, 25)
    for i in range(30):
        sink.write(ArkitFrame(MotionFrame.from_vector(np.full(MOTION_DIM, 0.1, np.float32), i)))
    assert list(tmp_path.iterdir()) == []  # nothing until the end
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.csv"]
    assert read_livelink_csv(out).motion.shape == (30, MOTION_DIM)
