"""Encoder policy for the avatar's video and audio, set deliberately through aiortc's module
constants (aiortc 1.16 has no bitrate API).

Choices and why:
- **VP8** is offered first (``prefer_codec``). It is supported by every current browser, and its
  software encoder is the cheapest on these CPUs (VP8 512² ≈ 3–7 ms/frame vs H.264 ≈ 8–14 ms),
  which matters with several sessions on 2 cores. H.264 stays negotiable as a fallback.
- **Bitrate pinned** (``MIN_BITRATE == MAX_BITRATE == DEFAULT_BITRATE``): aiortc rebuilds the
  encoder (→ a keyframe burst) whenever a REMB estimate moves the target by more than 10 %,
  and browsers send ramping REMB estimates during the first seconds. A pinned target makes
  every REMB clamp to the same value, so the encoder is built once. The value is
  ``BITS_PER_PIXEL`` × pixels × fps (≈ 0.1 bit/pixel: a talking head on a still background
  is easy content): 256² @ 25 fps → 164 kbit/s, 512² → 655 kbit/s. The cost: no congestion
  response below that rate, acceptable on LAN/loopback, which is what this server targets;
  ``VideoPolicy(bitrate=...)`` overrides it for constrained links.
- **Keyframes on demand**: aiortc's VP8 gop is 3000 frames (2 min at 25 fps); keyframes are
  otherwise sent when the browser asks (PLI/FIR, e.g. on start or loss). A receiver-driven
  policy keeps the stream small; periodic keyframes would only help receivers that cannot ask.
- **Opus** 48 kHz (aiortc's encoder: 96 kbit/s, ``application=voip``, 20 ms frames). It wants
  s16 mono/stereo frames; the audio track sends s16 mono.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCRtpTransceiver
from aiortc.codecs import h264, vpx
from aiortc.rtcrtpsender import RTCRtpSender

from emostream.errors import ConfigError

#: Bits per pixel per frame for the pinned video bitrate.
BITS_PER_PIXEL = 0.1
#: Bounds of the pinned bitrate (bit/s).
MIN_VIDEO_BITRATE = 100_000
MAX_VIDEO_BITRATE = 4_000_000
PREFERRED_VIDEO_CODEC = "video/VP8"


@dataclass(frozen=True)
class VideoPolicy:
    """Video encoder settings for frames of ``width`` x ``height`` at ``fps``."""

    width: int
    height: int
    fps: int
    bitrate: int | None = None  # None: BITS_PER_PIXEL x pixels x fps

    def target_bitrate(self) -> int:
        if self.bitrate is not None:
            if not MIN_VIDEO_BITRATE <= self.bitrate <= MAX_VIDEO_BITRATE:
                raise ConfigError(
                    f"video bitrate must be in [{MIN_VIDEO_BITRATE}, {MAX_VIDEO_BITRATE}] bit/s, "
                    f"got {self.bitrate}"
                )
            return self.bitrate
        raw = int(BITS_PER_PIXEL * self.width * self.height * self.fps)
        return max(MIN_VIDEO_BITRATE, min(MAX_VIDEO_BITRATE, raw))


def apply_video_policy(policy: VideoPolicy) -> int:
    """Pin aiortc's VP8 and H.264 encoder bitrates (process-wide constants). Returns bit/s."""
    rate = policy.target_bitrate()
    set_encoder_bitrates(rate, rate, rate)
    return rate


_ENCODER_MODULES = (vpx, h264)


def encoder_bitrates() -> list[tuple[int, int, int]]:
    """(default, min, max) bit/s of aiortc's VP8 and H.264 encoders, in that order."""
    names = ("DEFAULT_BITRATE", "MIN_BITRATE", "MAX_BITRATE")
    return [tuple(int(getattr(m, n)) for n in names) for m in _ENCODER_MODULES]  # type: ignore[misc]


def set_encoder_bitrates(default: int, low: int, high: int) -> None:
    """Set aiortc's encoder module constants (process-wide; read when an encoder is built)."""
    for mod in _ENCODER_MODULES:
        mod.__dict__.update(DEFAULT_BITRATE=default, MIN_BITRATE=low, MAX_BITRATE=high)


def prefer_codec(transceiver: RTCRtpTransceiver, mime_type: str = PREFERRED_VIDEO_CODEC) -> None:
    """Put ``mime_type`` (and its RTX) first in the transceiver's codec preferences."""
    caps = RTCRtpSender.getCapabilities(transceiver.kind)
    first = [c for c in caps.codecs if c.mimeType.lower() == mime_type.lower()]
    rtx = [c for c in caps.codecs if c.mimeType.lower() == f"{transceiver.kind}/rtx"]
    rest = [c for c in caps.codecs if c not in first and c not in rtx]
    transceiver.setCodecPreferences(first + rtx + rest)
