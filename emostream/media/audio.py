"""Audio decoding and resampling: any file PyAV can read → 16 kHz mono float32 in [-1, 1].

* ``load_audio`` decodes a whole file; ``iter_audio`` streams it in fixed-size chunks without
  holding it in memory (hours of audio are fine); both go through the same decoder and the
  same streaming soxr resampler (quality ``HQ``), so their outputs are identical.
* Channels are averaged to mono. Integer PCM of any width (8/16/24/32-bit) and float/double
  samples are converted by FFmpeg's sample-format converter to float32 before averaging.
* Every failure is an :class:`~emostream.errors.AudioError` whose message names the file and
  the problem (see the ``MSG_*`` templates below; tests assert them exactly).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soxr

from emostream.config import MAX_AUDIO_SECONDS, SAMPLE_RATE
from emostream.errors import AudioError

log = logging.getLogger(__name__)

#: soxr quality used everywhere ("HQ": 20-bit precision, steep anti-alias filter).
RESAMPLE_QUALITY = "HQ"

MSG_MISSING = "file not found"
MSG_DIRECTORY = "is a directory, not an audio file"
MSG_EMPTY = "file is empty (0 bytes)"
MSG_NOT_AUDIO = "not an audio file (FFmpeg cannot read it)"
MSG_NO_STREAM = "contains no audio stream"
MSG_NO_SAMPLES = "contains no audio samples"
MSG_TRUNCATED_WAV = (
    "truncated WAV: the header declares {declared:.3f} s of audio but the file holds {held:.3f} s"
)
MSG_TRUNCATED = "truncated: the header declares {declared:.3f} s of audio but only {held:.3f} s decode"
MSG_CORRUPT = "corrupt audio: decoding failed at {at:.3f} s"
#: Containers whose header states the exact duration (others, e.g. MP3 without a Xing header,
#: only estimate it from the bit rate, so a shortfall there proves nothing).
_EXACT_DURATION_CONTAINERS = ("matroska,webm", "flac", "mov,mp4,m4a,3gp,3g2,mj2")
MSG_NONFINITE = "audio contains NaN or infinite samples (first at {at:.3f} s)"
MSG_TOO_LONG = "audio is {seconds:.1f} s long; the limit is {limit:.1f} s"


@dataclass(frozen=True)
class AudioInfo:
    """What the container says about a file's first audio stream (no decoding)."""

    path: str
    duration_s: float | None  # None when the container does not know
    sample_rate: int
    channels: int
    codec: str
    sample_format: str
    container: str
    bit_rate: int | None


def check_file(path: str | Path, error: type[AudioError] = AudioError) -> Path:
    """Common checks before opening a user file: exists, is a file, is not empty."""
    p = Path(path)
    if not p.exists():
        raise error(MSG_MISSING, p)
    if p.is_dir():
        raise error(MSG_DIRECTORY, p)
    if p.stat().st_size == 0:
        raise error(MSG_EMPTY, p)
    return p


def _wav_truncation(p: Path) -> tuple[float, float] | None:
    """For a RIFF/WAVE file whose ``data`` chunk is shorter on disk than its header declares,
    return (declared seconds, held seconds); else None. FFmpeg silently decodes what is there."""
    size = p.stat().st_size
    with p.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        rate = block_align = 0
        pos = 12
        while True:
            f.seek(pos)
            hdr = f.read(8)
            if len(hdr) < 8:
                return None
            cid, csize = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(16)
                if len(fmt) < 16:
                    return None
                _, _, rate, _, block_align = struct.unpack("<HHIIH", fmt[:14])
            elif cid == b"data":
                # Streaming writers leave 0 or 0xFFFFFFFF as "unknown size": nothing to check.
                if csize in (0, 0xFFFFFFFF) or rate == 0 or block_align == 0:
                    return None
                held = size - (pos + 8)
                if held >= csize:
                    return None
                return csize / block_align / rate, max(held, 0) // block_align / rate
            pos += 8 + csize + (csize & 1)


def _open(p: Path) -> av.container.InputContainer:
    try:
        # max_size: the WAV demuxer's packet size (default 4096 bytes) → fewer, larger frames.
        return av.open(str(p), mode="r", options={"max_size": "262144"})
    except (av.error.FFmpegError, ValueError, UnicodeDecodeError) as e:
        raise AudioError(MSG_NOT_AUDIO, p) from e


def _audio_stream(p: Path, container: av.container.InputContainer) -> av.AudioStream:
    if not container.streams.audio:
        raise AudioError(MSG_NO_STREAM, p)
    return container.streams.audio[0]


def audio_info(path: str | Path) -> AudioInfo:
    """Describe a file's first audio stream from its headers (fast; nothing is decoded)."""
    p = check_file(path)
    with _open(p) as c:
        s = _audio_stream(p, c)
        cc = s.codec_context
        duration: float | None = None
        if s.duration is not None and s.time_base is not None:
            duration = float(s.duration * s.time_base)
        elif c.duration is not None:
            duration = c.duration / av.time_base
        return AudioInfo(
            path=str(p), duration_s=duration, sample_rate=int(cc.sample_rate or 0),
            channels=int(cc.channels or 0), codec=cc.name, sample_format=cc.format.name if cc.format else "",
            container=c.format.name, bit_rate=int(cc.bit_rate) if cc.bit_rate else None,
        )  # fmt: skip


def resample(pcm: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a whole mono float32 signal with soxr (HQ). Same rate → a float32 copy."""
    x = np.ascontiguousarray(pcm, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"resample expects mono float32[n], got shape {x.shape}")
    if sr_in == sr_out:
        return x.copy()
    return np.asarray(soxr.resample(x, sr_in, sr_out, quality=RESAMPLE_QUALITY), dtype=np.float32)


class StreamResampler:
    """Streaming soxr resampler for mono float32: ``push`` chunks of any size, then ``flush``.
    The concatenated output has ``round(n_in * sr_out / sr_in)`` samples after ``flush``.
    The output does not depend on the chunking, bit for bit (soxr processes a fixed internal
    block grid; checked by tests/test_audio_io.py at 8-96 kHz)."""

    def __init__(self, sr_in: int, sr_out: int = SAMPLE_RATE) -> None:
        if sr_in <= 0 or sr_out <= 0:
            raise ValueError(f"sample rates must be positive, got {sr_in} → {sr_out}")
        self.sr_in, self.sr_out = int(sr_in), int(sr_out)
        self.reset()

    def reset(self) -> None:
        """Drop buffered input and start a new stream."""
        self._rs = (
            None
            if self.sr_in == self.sr_out
            else soxr.ResampleStream(self.sr_in, self.sr_out, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        )

    def push(self, pcm: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(pcm, dtype=np.float32)
        if self._rs is None:
            return x.copy()
        return np.asarray(self._rs.resample_chunk(x, last=False), dtype=np.float32)

    def flush(self) -> np.ndarray:
        """Return the buffered tail and reset, so the next ``push`` starts a new stream."""
        if self._rs is None:
            return np.zeros(0, dtype=np.float32)
        tail = np.asarray(self._rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True), dtype=np.float32)
        self.reset()
        return tail


#: Decoded frames are gathered into blocks of at least this many samples (at the file's rate)
#: before conversion and resampling, to keep per-packet Python overhead low on long files.
_BLOCK = 16384
_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def _frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """float32[n] mono from any FFmpeg sample format (packed or planar), channels averaged."""
    fmt = frame.format.name
    base = fmt.rstrip("p")
    arr = frame.to_ndarray()
    ch = len(frame.layout.channels)
    chans = arr if frame.format.is_planar else arr.reshape(-1, ch).T
    if base in ("flt", "dbl"):
        x = chans.astype(np.float32, copy=False)
    elif base == "u8":
        x = (chans.astype(np.float32) - np.float32(128.0)) * np.float32(1.0 / 128.0)
    elif base in _INT_SCALE:
        x = chans.astype(np.float32) * np.float32(1.0 / _INT_SCALE[base])  # power of 2: exact
    else:  # pragma: no cover - FFmpeg has no other sample formats today
        raise ValueError(f"unsupported sample format {fmt}")
    return x[0].copy() if x.shape[0] == 1 else x.mean(axis=0, dtype=np.float32)


def _decoded_mono(p: Path, max_seconds: float) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (mono float32 at the file's own rate, that rate) in blocks, checking truncation,
    NaN/Inf and length as it goes."""
    trunc = _wav_truncation(p)
    if trunc is not None:
        raise AudioError(MSG_TRUNCATED_WAV.format(declared=trunc[0], held=trunc[1]), p)
    with _open(p) as c:
        s = _audio_stream(p, c)
        rate = int(s.codec_context.sample_rate or 0)
        if rate <= 0:
            raise AudioError(MSG_NOT_AUDIO, p)
        declared = None
        if s.duration is not None and s.time_base is not None:
            declared = float(s.duration * s.time_base)
        elif c.duration is not None:
            declared = c.duration / av.time_base
        if declared is not None and declared > max_seconds + 1.0:
            raise AudioError(MSG_TOO_LONG.format(seconds=declared, limit=max_seconds), p)
        limit = int(max_seconds * rate)
        n_done = 0
        pending: list[np.ndarray] = []
        n_pending = 0

        def block() -> np.ndarray:
            nonlocal n_done
            mono = pending[0] if len(pending) == 1 else np.concatenate(pending)
            pending.clear()
            bad = ~np.isfinite(mono)
            if bad.any():
                raise AudioError(MSG_NONFINITE.format(at=(n_done + int(np.argmax(bad))) / rate), p)
            n_done += mono.shape[0]
            if n_done > limit:
                raise AudioError(MSG_TOO_LONG.format(seconds=n_done / rate, limit=max_seconds), p)
            return mono

        try:
            for frame in c.decode(s):
                if frame.sample_rate != rate:
                    raise AudioError(f"sample rate changes mid-stream ({rate} → {frame.sample_rate} Hz)", p)
                pending.append(_frame_to_mono(frame))
                n_pending += frame.samples
                if n_pending >= _BLOCK:
                    n_pending = 0
                    yield block(), rate
        except av.error.FFmpegError as e:
            at = (n_done + sum(x.shape[0] for x in pending)) / rate
            raise AudioError(MSG_CORRUPT.format(at=at), p) from e
        if pending:
            yield block(), rate
        if n_done == 0:
            raise AudioError(MSG_NO_SAMPLES, p)
        held = n_done / rate
        if (
            declared is not None
            and c.format.name in _EXACT_DURATION_CONTAINERS
            and held < declared - max(0.1, 0.02 * declared)
        ):
            raise AudioError(MSG_TRUNCATED.format(declared=declared, held=held), p)


def _iter_16k(p: Path, max_seconds: float) -> Iterator[np.ndarray]:
    """16 kHz mono float32 pieces of arbitrary size, clipped to [-1, 1]."""
    rs: StreamResampler | None = None
    for mono, rate in _decoded_mono(p, max_seconds):
        if rs is None:
            rs = StreamResampler(rate, SAMPLE_RATE)
        out = rs.push(mono)
        if out.size:
            yield np.clip(out, -1.0, 1.0, out=out)
    if rs is not None:
        out = rs.flush()
        if out.size:
            yield np.clip(out, -1.0, 1.0, out=out)


def iter_audio(
    path: str | Path, chunk_samples: int = SAMPLE_RATE, *, max_seconds: float = MAX_AUDIO_SECONDS
) -> Iterator[np.ndarray]:
    """Stream a file as 16 kHz mono float32 chunks of exactly ``chunk_samples`` samples (the
    last one may be shorter). Memory stays O(chunk) however long the file is."""
    if chunk_samples <= 0:
        raise ValueError(f"chunk_samples must be positive, got {chunk_samples}")
    p = check_file(path)
    pending: list[np.ndarray] = []
    n_pending = 0
    for piece in _iter_16k(p, max_seconds):
        pending.append(piece)
        n_pending += piece.shape[0]
        if n_pending >= chunk_samples:
            buf = np.concatenate(pending)
            n_full = (buf.shape[0] // chunk_samples) * chunk_samples
            for start in range(0, n_full, chunk_samples):
                yield buf[start : start + chunk_samples].copy()
            rest = buf[n_full:]
            pending, n_pending = ([rest], rest.shape[0]) if rest.size else ([], 0)
    if n_pending:
        yield np.concatenate(pending)


def load_audio(path: str | Path, *, max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """Decode a whole file into float32[n] at 16 kHz mono in [-1, 1]."""
    p = check_file(path)
    pieces = list(_iter_16k(p, max_seconds))
    if not pieces:
        raise AudioError(MSG_NO_SAMPLES, p)
    return np.concatenate(pieces)
