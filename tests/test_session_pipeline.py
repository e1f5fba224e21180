"""The shared core: chunk-size invariance end to end, audio pass-through, segment ends."""

from __future__ import annotations

import numpy as np
import pytest
from session_doubles import double_engine, tone

from emostream.arkit import MOTION_DIM
from emostream.config import SAMPLE_RATE, frames_covering
from emostream.engine.pipeline import Engine, offline_render
from emostream.engine.session import (
    ArkitFrame,
    AudioFrame,
    SegmentEnd,
    SessionConfig,
    VideoFrame,
    to_float_mono,
)
from emostream.errors import AudioError, CheckpointError, InputError


def speech_like() -> np.ndarray:
    rng = np.random.default_rng(1)
    parts = [
        tone(0.7, 180),
        np.zeros(3000, np.float32),
        tone(0.45, 260, 0.2),
        0.05 * rng.standard_normal(2500),
    ]
    return np.concatenate(parts).astype(np.float32)


async def run_offline_session(engine: Engine, audio: np.ndarray, chunks: list[int]) -> dict[str, list]:
    s = engine.new_session(config=SessionConfig(realtime=False), seed=3)
    pos = 0
    for n in chunks:
        s.push_audio(audio[pos : pos + n])
        pos += n
    assert pos >= audio.size
    s.end_segment()
    s.close()
    out: dict[str, list] = {"video": [], "audio": [], "arkit": [], "end": []}
    async for item in s:
        key = {VideoFrame: "video", AudioFrame: "audio", ArkitFrame: "arkit", SegmentEnd: "end"}[type(item)]
        out[key].append(item)
    return out


def chunkings(n: int) -> list[list[int]]:
    rng = np.random.default_rng(0)
    rand = list(rng.integers(1, 2000, size=n))  # ragged, tiny to large
    return [[320] * (n // 320 + 1), [n], [int(x) for x in rand]]


@pytest.mark.parametrize("which", ["20ms", "whole", "ragged"])
async def test_chunk_size_never_changes_output(which: str) -> None:
    engine = double_engine(real_features=True)  # real features + Silero VAD, double motion/render
    audio = speech_like()
    motion, frames = offline_render(engine, audio, seed=3)
    chunks = dict(zip(["20ms", "whole", "ragged"], chunkings(audio.size), strict=True))[which]
    out = await run_offline_session(engine, audio, chunks)
    assert len(out["arkit"]) == frames_covering(audio.size, engine.fps) == len(motion)
    np.testing.assert_array_equal(np.stack([a.motion.vector() for a in out["arkit"]]), motion)
    np.testing.assert_array_equal(np.stack([v.rgb for v in out["video"]]), frames)
    assert [v.pts for v in out["video"]] == list(range(len(motion)))
    # The audio handed out is exactly the input (padded to whole frames), timed by sample count.
    pcm = np.concatenate([a.pcm for a in out["audio"]])
    np.testing.assert_array_equal(pcm[: audio.size], audio)
    assert not pcm[audio.size :].any()
    assert [a.pts for a in out["audio"]] == list(np.cumsum([0] + [a.pcm.size for a in out["audio"]])[:-1])
    assert [e.pts for e in out["end"]] == [len(motion) - 1]


async def test_real_stages_chunk_invariance() -> None:
    """With the shipped motion weights and analytic renderer, when they are installed."""
    try:
        engine = Engine.load()
    except (CheckpointError, ImportError) as e:
        pytest.skip(f"real stages not available: {e}")
    audio = speech_like()[:SAMPLE_RATE]
    motion, frames = offline_render(engine, audio, seed=3)
    out = await run_offline_session(engine, audio, [320] * (audio.size // 320 + 1))
    np.testing.assert_array_equal(np.stack([a.motion.vector() for a in out["arkit"]]), motion)
    np.testing.assert_array_equal(np.stack([v.rgb for v in out["video"]]), frames)


def test_to_float_mono() -> None:
    s16 = np.array([[32767, -32768], [0, 0]], np.int16)
    np.testing.assert_allclose(to_float_mono(s16), [(32767 - 32768) / 2 / 32768, 0.0])
    assert to_float_mono(np.zeros(5, np.float64)).dtype == np.float32
    with pytest.raises(AudioError, match="NaN"):
        to_float_mono(np.array([0.0, np.nan]))
    with pytest.raises(AudioError, match="int16 or float"):
        to_float_mono(np.zeros(3, np.int32))


async def test_style_reference_is_checked() -> None:
    s = double_engine().new_session(config=SessionConfig(realtime=False))
    with pytest.raises(InputError, match=r"float32\[T, 55\]"):
        s.set_style(np.zeros((4, MOTION_DIM - 1), np.float32))
    s.stop()


class _ListStage:
    """A featurizer/VAD double: push(audio) returns the next frames of a fixed script."""

    def __init__(self, rows: np.ndarray, per_push: list[int]) -> None:
        self.rows, self.per_push, self.i, self.k = rows, per_push, 0, 0

    def push(self, audio: np.ndarray) -> np.ndarray:
        n = self.per_push[self.k % len(self.per_push)]
        self.k += 1
        out, self.i = self.rows[self.i : self.i + n], self.i + n
        return out

    def flush(self) -> np.ndarray:
        out, self.i = self.rows[self.i :], len(self.rows)
        return out


class _RecordingStream:
    """Records the (feature, vad) pairs it receives; emits one frame per pair, no look-ahead."""

    def __init__(self) -> None:
        self.pairs: list[tuple[float, float]] = []

    def push(self, features: np.ndarray, vad: np.ndarray) -> np.ndarray:
        self.pairs.extend(zip(features[:, 0].tolist(), vad.tolist(), strict=True))
        return np.zeros((len(vad), MOTION_DIM), np.float32)

    def flush(self) -> np.ndarray:
        return np.zeros((0, MOTION_DIM), np.float32)

    def clear(self) -> int:
        return 0


def test_pipeline_clear_drops_unpaired_frames_and_stays_aligned() -> None:
    """Frames whose features (or VAD) are out but not yet paired are dropped by clear() and
    counted; the stages stay frame-aligned afterwards (feature j is paired with VAD j)."""
    from emostream.engine.pipeline import MotionPipeline

    n = 40
    frame_id = np.arange(n, dtype=np.float32)
    feats = _ListStage(frame_id[:, None], [3, 2])  # the features run ahead of the VAD
    vad = _ListStage(frame_id, [1, 2])
    stream = _RecordingStream()
    pipe = MotionPipeline(feats, vad, stream)  # type: ignore[arg-type]
    out = sum(len(pipe.push(np.zeros(10, np.float32))) for _ in range(4))  # feats 10, vad 6
    assert out == 6
    assert pipe.clear() == 4  # frames 6..9: features out, VAD not yet
    out += sum(len(pipe.push(np.zeros(10, np.float32))) for _ in range(6))
    assert all(f == v for f, v in stream.pairs)  # still aligned: frame j's feature with its VAD
    assert [f for f, _ in stream.pairs][6] == 10.0  # the dropped frames never reached the stream
    out += len(pipe.flush())  # the VAD is padded with silence up to the features' end
    assert out == len(stream.pairs) == n - 4


def test_renderer_cache_is_bounded_and_keeps_recent_portraits(tmp_path) -> None:
    """One renderer per portrait, re-used; the least recently used is dropped past the bound."""
    from emostream.engine.pipeline import MAX_CACHED_PORTRAITS

    engine = double_engine()
    loads: list[str] = []
    engine.portrait_loader = lambda key: loads.append(str(key)) or key
    paths = [tmp_path / f"p{i}.png" for i in range(MAX_CACHED_PORTRAITS + 2)]
    first = engine.renderer_for(paths[0])
    for p in paths[1:MAX_CACHED_PORTRAITS]:
        engine.renderer_for(p)
    assert engine.renderer_for(paths[0]) is first  # cached, and now the most recently used
    engine.renderer_for(paths[MAX_CACHED_PORTRAITS])  # over the bound: paths[1] is dropped
    assert len(loads) == MAX_CACHED_PORTRAITS + 1
    assert engine.renderer_for(paths[0]) is first
    engine.renderer_for(paths[1])
    assert len(loads) == MAX_CACHED_PORTRAITS + 2  # paths[1] had to be loaded again
