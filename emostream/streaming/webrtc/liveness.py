"""Is the peer still there? Packets counted on its DTLS transports.

A browser tab that is killed, or a network that goes away, sends no goodbye: aiortc notices only
when its ICE consent checks fail, about 30 s later. A live browser sends RTCP reports for what it
receives at least every second or so, so a count of packets received that stops moving for a few
seconds means the peer is gone (``SilenceWatch``).
"""

from __future__ import annotations

import time
from typing import Any

from aiortc import RTCPeerConnection

#: A peer that sent nothing for this long is gone (a live browser's RTCP comes every ~1 s).
PEER_TIMEOUT_S = 4.0
#: How often the watchers look.
WATCH_INTERVAL_S = 0.5


def packets_received(pc: RTCPeerConnection) -> int:
    """Packets received from the peer on its DTLS transports (RTP, RTCP, data channel).
    aiortc counts them only in its transports' private stats."""
    transports: dict[int, Any] = {id(t.sender.transport): t.sender.transport for t in pc.getTransceivers()}
    if pc.sctp is not None:
        transports[id(pc.sctp.transport)] = pc.sctp.transport
    return sum(
        int(st.packetsReceived)
        for tr in transports.values()
        for st in tr._get_stats().values()
        if getattr(st, "type", None) == "transport"
    )


class SilenceWatch:
    """``silent_for()``: seconds since ``pc``'s packet count last moved (call it every few
    hundred ms; the first call starts the clock)."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self._count = packets_received(pc)
        self._heard = time.monotonic()

    def silent_for(self) -> float:
        now, n = time.monotonic(), packets_received(self.pc)
        if n != self._count:
            self._count, self._heard = n, now
        return now - self._heard
