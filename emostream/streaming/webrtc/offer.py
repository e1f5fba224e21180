"""The body of ``POST /offer``, checked before anything is built for it.

``{"sdp": "v=0...", "type": "offer", "emotion"?: str, "intensity"?: number, "portrait"?: id}``.
The SDP is parsed here (aiortc's own parser) and must carry at least one audio, video or data
section with ICE credentials, a DTLS fingerprint and a direction: aiortc rejects anything else
only deep inside ``setRemoteDescription`` with messages such as "None is not in list".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiortc import sdp as aiortc_sdp

from emostream.arkit import EmotionStyle
from emostream.errors import InputError
from emostream.streaming.webrtc.guard import load_json

MAX_OFFER_BYTES = 256 * 1024
#: The offer is a flat object; nothing in it nests.
MAX_OFFER_DEPTH = 4


@dataclass(frozen=True)
class Offer:
    sdp: str
    style: EmotionStyle
    #: Portrait id from ``POST /portrait`` (None: the server's default portrait).
    portrait: str | None = None


def check_sdp(sdp: str) -> None:
    """InputError unless ``sdp`` is an offer aiortc can answer."""
    if not sdp.startswith("v=0"):
        raise InputError("bad offer: missing or malformed sdp")
    try:
        desc = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as e:  # the parser raises ValueError/KeyError/IndexError on garbage lines
        raise InputError(f"bad offer: malformed sdp ({e!r})") from e
    if desc.origin is None:
        raise InputError("bad offer: malformed sdp (no o= line)")
    media = [m for m in desc.media if m.kind in ("audio", "video", "application")]
    if not media:
        raise InputError("bad offer: the sdp has no audio, video or data section")
    for m in media:
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
            raise InputError(f"bad offer: the sdp's {m.kind} section has no ICE credentials")
        if m.dtls is None or not m.dtls.fingerprints:
            raise InputError(f"bad offer: the sdp's {m.kind} section has no DTLS fingerprint")
        if m.kind != "application" and m.direction is None:
            raise InputError(f"bad offer: the sdp's {m.kind} section has no direction")


def parse_offer(body: bytes) -> Offer:
    """A request body → Offer, or InputError (answered with 400) saying what is wrong. The SDP
    itself is checked by ``check_sdp`` (after the cheaper checks of the caller)."""
    params = load_json(body, max_bytes=MAX_OFFER_BYTES, max_depth=MAX_OFFER_DEPTH, what="bad offer: body")
    if not isinstance(params, dict) or params.get("type") != "offer":
        raise InputError('bad offer: expected {"sdp": ..., "type": "offer"}')
    sdp = params.get("sdp")
    if not isinstance(sdp, str):
        raise InputError("bad offer: missing or malformed sdp")
    intensity = params.get("intensity", 1.0)
    if isinstance(intensity, bool) or not isinstance(intensity, int | float) or not math.isfinite(intensity):
        raise InputError(f"bad offer: intensity must be a number, got {intensity!r}")
    style = EmotionStyle(str(params.get("emotion", "neutral")).lower(), float(intensity))
    pid = params.get("portrait")
    if pid is not None and not isinstance(pid, str):
        raise InputError(f"bad offer: portrait must be an id string, got {pid!r}")
    return Offer(sdp, style, pid or None)
