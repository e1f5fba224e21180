"""mp4 file sink: H.264 video + AAC audio through PyAV, both timed from sample/frame counts.

Video frame ``pts`` (frame count at fps) and audio ``pts`` (sample count at 16 kHz) come from
the same t0, so the file's tracks line up exactly; the AAC encoder's priming delay is
compensated by the muxer's edit list. Gaps in the video (frames the runtime dropped) repeat the
previous frame, so the file stays constant-frame-rate.

The file is written under a hidden temporary name beside ``path`` (outfile.PartFile) and
renamed into place by ``close()``; ``abort()`` (and leaving the ``with`` block with an
exception) removes it. A write error (a full disk) is an InputError naming the file, and
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from emostream.config import SAMPLE_RATE, check_fps
from emostream.errors import InputError
from emostream.streaming.sinks.outfile import PartFile, check_writable

#: What PyAV raises when the file cannot be written (ENOSPC, EIO, ...).
_WRITE_ERRORS = (OSError, av.error.FFmpegError)


class Mp4Writer:
    """Write RGB frames and mono float32 audio to an mp4 (H.264 yuv420p + AAC)."""

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: int,
        sample_rate: int = SAMPLE_RATE,
        crf: int = 20,
        preset: str = "veryfast",
        audio: bool = True,
    ) -> None:
        self.path = check_writable(path)
        self.fps = check_fps(fps)
        self.width, self.height = int(width), int(height)
        if self.width % 2 or self.height % 2:
            raise InputError(f"H.264 needs even frame sizes, got {self.width}x{self.height}")
        self._part = PartFile(self.path)
        try:
            self._container = av.open(str(self._part.tmp), mode="w", format="mp4")
        except _WRITE_ERRORS as e:
            self._part.discard()
            raise InputError(f"cannot write mp4: {e}", self.path) from e
        self._video = self._container.add_stream(
            "libx264", rate=self.fps, options={"crf": str(crf), "preset": preset}
        )
        self._video.width, self._video.height = self.width, self.height
        self._video.pix_fmt = "yuv420p"
        self._video.codec_context.time_base = Fraction(1, self.fps)
        self._audio = None
        self.sample_rate = int(sample_rate)
        if audio:
            self._audio = self._container.add_stream("aac", rate=self.sample_rate)
            self._audio.layout = "mono"
            self._audio.codec_context.time_base = Fraction(1, self.sample_rate)
        self._next_video_pts = 0
        self._last_rgb: np.ndarray | None = None
        self._next_audio_pts = 0
        self.frames_written = 0
        self.frames_repeated = 0
        self._closed = False

    def write_video(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """uint8[H, W, 3] RGB at frame ``pts`` (default: the next one)."""
        pts = self._next_video_pts if pts is None else int(pts)
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected uint8[{self.height}, {self.width}, 3], got {rgb.dtype}{rgb.shape}")
        if pts < self._next_video_pts:
            raise ValueError(f"video pts {pts} goes backwards (next is {self._next_video_pts})")
        while self._last_rgb is not None and self._next_video_pts < pts:
            self._encode_video(self._last_rgb, self._next_video_pts)
            self.frames_repeated += 1
        self._next_video_pts = pts
        self._encode_video(rgb, pts)
        self._last_rgb = rgb

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            for packet in packets:
                self._container.mux(packet)
        except _WRITE_ERRORS as e:
            self.abort()
            raise InputError(f"cannot write mp4: {getattr(e, 'strerror', None) or e}", self.path) from e

    def _encode_video(self, rgb: np.ndarray, pts: int) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = pts
        frame.time_base = Fraction(1, self.fps)
        self._mux(self._video.encode(frame))
        self._next_video_pts = pts + 1
        self.frames_written += 1

    def write_audio(self, pcm: np.ndarray, pts: int | None = None) -> None:
        """float32[n] mono in [-1, 1] starting at sample ``pts`` (default: right after the last)."""
        if self._audio is None:
            return
        pts = self._next_audio_pts if pts is None else int(pts)
        if pts > self._next_audio_pts:  # a gap: fill with silence so the track stays continuous
            pcm = np.concatenate([np.zeros(pts - self._next_audio_pts, np.float32), pcm])
            pts = self._next_audio_pts
        elif pts < self._next_audio_pts:
            raise ValueError(f"audio pts {pts} goes backwards (next is {self._next_audio_pts})")
        if pcm.size == 0:
            return
        s16 = (np.clip(pcm, -1.0, 1.0) * 32767.0).round().astype(np.int16)
        frame = av.AudioFrame.from_ndarray(s16[None, :], format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = pts
        frame.time_base = Fraction(1, self.sample_rate)
        self._mux(self._audio.encode(frame))
        self._next_audio_pts = pts + s16.size

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._closed:
            return
        self._mux(self._video.encode(None))
        if self._audio is not None:
            self._mux(self._audio.encode(None))
        try:
            self._container.close()
        except _WRITE_ERRORS as e:
            self.abort()
            raise InputError(f"cannot write mp4: {getattr(e, 'strerror', None) or e}", self.path) from e
        self._closed = True
        self._part.commit()

    def abort(self) -> None:
        """Give up: nothing is left at ``path`` (nor the temporary file)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(*_WRITE_ERRORS):  # thrown away; its write error is already reported
            self._container.close()
        self._part.discard()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
