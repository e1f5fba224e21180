"""The data-channel protocol between the page and a session (JSON text messages).

Page → server:
- ``{"type": "emotion", "name": "happy", "intensity": 0.7}``
- ``{"type": "style", "frames": [[55 floats], ...]}``: a reference clip of ARKit motion
  vectors (see emostream.arkit) whose style the avatar takes on.
- ``{"type": "clear"}``: barge-in, drop queued speech.
- ``{"type": "ping", "t": <page ms>}`` → ``{"type": "pong", "t": <same>}`` (round-trip).
Server → page:
- ``{"type": "stats", ...}`` once a second (see ``PeerSession.stats``).
- ``{"type": "error", "message": "..."}`` for a rejected message; the channel stays open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from emostream.arkit import MOTION_DIM, EmotionStyle
from emostream.errors import ConfigError, InputError
from emostream.streaming.webrtc.guard import load_json

#: Longest accepted style reference clip (frames) and message size (bytes).
MAX_STYLE_FRAMES = 25 * 30
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
#: The deepest message is a style clip: an object holding a list of rows.
MAX_MESSAGE_DEPTH = 4


@dataclass(frozen=True)
class SetEmotion:
    style: EmotionStyle


@dataclass(frozen=True)
class SetStyle:
    reference: np.ndarray  # float32[T, MOTION_DIM]


@dataclass(frozen=True)
class Clear:
    pass


@dataclass(frozen=True)
class Ping:
    t: float


Command = SetEmotion | SetStyle | Clear | Ping


def parse_style(frames: Any) -> np.ndarray:
    try:
        ref = np.asarray(frames, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InputError(f"style frames must be a list of {MOTION_DIM}-number rows") from e
    if ref.ndim != 2 or ref.shape[1] != MOTION_DIM:
        raise InputError(f"style frames must have shape [T, {MOTION_DIM}], got {list(ref.shape)}")
    if not 1 <= ref.shape[0] <= MAX_STYLE_FRAMES:
        raise InputError(f"style clip must have 1..{MAX_STYLE_FRAMES} frames, got {ref.shape[0]}")
    if not np.isfinite(ref).all():
        raise InputError("style frames contain NaN or infinity")
    return ref


def parse_message(text: str | bytes) -> Command:
    """One data-channel message → a command, or InputError/ConfigError with a precise reason."""
    msg = load_json(text, max_bytes=MAX_MESSAGE_BYTES, max_depth=MAX_MESSAGE_DEPTH, what="message")
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise InputError('message must be a JSON object with a "type"')
    kind = msg["type"]
    if kind == "emotion":
        intensity = msg.get("intensity", 1.0)
        if not isinstance(intensity, int | float) or not math.isfinite(intensity):
            raise ConfigError(f"emotion intensity must be a number, got {intensity!r}")
        return SetEmotion(EmotionStyle(str(msg.get("name", "")).lower(), float(intensity)))
    if kind == "style":
        return SetStyle(parse_style(msg.get("frames")))
    if kind == "clear":
        return Clear()
    if kind == "ping":
        t = msg.get("t")
        if not isinstance(t, int | float):
            raise InputError('ping needs a numeric "t"')
        return Ping(float(t))
    raise InputError(f"unknown message type {kind!r}")
