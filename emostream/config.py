"""Constants with one source of truth, and the small typed configs shared across stages."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from emostream.errors import ConfigError

#: Engine-internal audio: 16 kHz mono float32 in [-1, 1].
SAMPLE_RATE = 16_000
#: Video frame rates the engine supports; 25 is the default (MEAD / HDTF).
SUPPORTED_FPS = (25, 30)
DEFAULT_FPS = 25
#: Seeds default to this value everywhere, so fixed-seed runs are reproducible.
DEFAULT_SEED = 0
#: Largest input accepted before refusing (10 hours of audio, or images of 64 Mpx).
MAX_AUDIO_SECONDS = 10 * 3600
MAX_IMAGE_PIXELS = 64_000_000
#: Output framing (emostream.render.framing): the whole photo (the commands' default) or the
#: square face crop.
CROPS = ("photo", "face")
DEFAULT_CROP = "photo"
#: Long-side cap of offline output (``render``, ``demo``).
OFFLINE_MAX_SIDE = 1280
#: Long-side cap of live output (``serve``, ``camera``, ``stream``): two sessions still hold 25 fps
#: on two cores with render, paste-back and encode at this size (README, "Output framing").
LIVE_MAX_SIDE = 720
#: Smallest cap accepted.
MIN_MAX_SIDE = 128


def check_fps(fps: int) -> int:
    if fps not in SUPPORTED_FPS:
        raise ConfigError(f"fps must be one of {SUPPORTED_FPS}, got {fps}")
    return fps


def samples_per_frame(fps: int) -> Fraction:
    """Exact (rational) number of 16 kHz samples per video frame: 640 at 25 fps, 1600/3 at 30."""
    return Fraction(SAMPLE_RATE, check_fps(fps))


def frame_start_sample(frame_index: int, fps: int) -> int:
    """First audio sample of video frame ``frame_index`` (exact integer arithmetic, no drift)."""
    return (frame_index * SAMPLE_RATE) // check_fps(fps)


def frames_covering(n_samples: int, fps: int) -> int:
    """Number of video frames needed to cover ``n_samples`` samples (ceil): a clip's frame count."""
    return -((-n_samples * check_fps(fps)) // SAMPLE_RATE)


def frames_in_samples(n_samples: int, fps: int) -> int:
    """Number of whole video frames whose audio span fits in ``n_samples`` samples."""
    return (n_samples * check_fps(fps)) // SAMPLE_RATE


@dataclass(frozen=True)
class TimeBase:
    """The one clock of a stream: everything is derived from frame and sample counts."""

    fps: int = DEFAULT_FPS
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        check_fps(self.fps)

    def frame_time(self, frame_index: int) -> Fraction:
        return Fraction(frame_index, self.fps)

    def sample_time(self, sample_index: int) -> Fraction:
        return Fraction(sample_index, self.sample_rate)
