"""The session's audio (float32 16 kHz mono, one block per frame) at a transport's rate, frame by
frame, with (almost) no delay: the voice-agent adapters publish at 24 or 48 kHz.

soxr's quick (cubic) quality delays by 3 input samples (0.2 ms) and returns every block at once;
its higher qualities hold output back in 40-80 ms blocks, which would put the sound a frame or
two behind the lips. Frame audio ending at 16 kHz sample ``e`` ends at output sample
``e * rate // 16000``, so every frame gets exactly its share and nothing drifts.
"""

from __future__ import annotations

import numpy as np
import soxr

from emostream.config import SAMPLE_RATE

#: soxr quality for the per-frame output resampling (see the module doc).
OUT_QUALITY = "QQ"


class FrameAudioOut:
    """``s16(pcm)``: one frame's float32 16 kHz mono audio -> int16[n, channels] at ``rate``."""

    def __init__(self, rate: int, channels: int = 1) -> None:
        self.rate, self.channels = int(rate), int(channels)
        self._rs = (
            None
            if self.rate == SAMPLE_RATE
            else soxr.ResampleStream(SAMPLE_RATE, self.rate, 1, dtype="float32", quality=OUT_QUALITY)
        )
        self._fifo = np.zeros(0, np.float32)
        self._in = 0  # 16 kHz samples taken
        self._out = 0  # output samples given

    def s16(self, pcm: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(pcm, dtype=np.float32)
        self._in += x.size
        want = self._in * self.rate // SAMPLE_RATE - self._out
        got = x if self._rs is None else np.asarray(self._rs.resample_chunk(x, last=False), np.float32)
        fifo = np.concatenate([self._fifo, got]) if self._fifo.size else got
        if fifo.size < want:  # the resampler's head (3 samples), once
            fifo = np.concatenate([np.zeros(want - fifo.size, np.float32), fifo])
        out, self._fifo = fifo[:want], fifo[want:]
        self._out += want
        s16 = (np.clip(out, -1.0, 1.0) * 32767.0).round().astype(np.int16)
        return np.repeat(s16[:, None], self.channels, axis=1)
