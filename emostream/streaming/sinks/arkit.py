"""ARKit streams: Live Link Face CSV, JSON lines, and OSC in the VMC protocol.

VMC (Virtual Motion Capture protocol, used by VSeeFace, Warudo, Unity/Unreal receivers): per
frame one OSC bundle with ``/VMC/Ext/Blend/Val name value`` for the 52 blendshapes (perfect-sync
UpperCamelCase names such as ``JawOpen``), ``/VMC/Ext/Blend/Apply``, and the head rotation as
``/VMC/Ext/Bone/Pos "Head" px py pz qx qy qz qw`` (Unity's left-handed axes).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from emostream.arkit import BLENDSHAPE_NAMES, HEAD_POSE_NAMES
from emostream.engine.session import ArkitFrame, SessionItem
from emostream.errors import ConfigError, DependencyError, InputError
from emostream.livelink import write_livelink_csv
from emostream.streaming.sinks.outfile import PartFile

VMC_NAMES: tuple[str, ...] = tuple(n[0].upper() + n[1:] for n in BLENDSHAPE_NAMES)


class LiveLinkCsvSink:
    """Collect ArkitFrames; write one Live Link Face CSV at close."""

    def __init__(self, path: str | Path, fps: int) -> None:
        self.path = Path(path)
        self.fps = fps
        self._rows: list[np.ndarray] = []

    def write(self, item: SessionItem) -> None:
        if isinstance(item, ArkitFrame):
            self._rows.append(item.motion.vector())

    def close(self) -> None:
        """Write the file under a hidden temporary name, then move it into place."""
        if self._rows:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            part = PartFile(self.path)
            try:
                write_livelink_csv(part.tmp, np.stack(self._rows), self.fps)
            except OSError as e:
                part.discard()
                raise InputError(f"cannot write the CSV: {e.strerror or e}", self.path) from e
            part.commit()


def frame_json(item: ArkitFrame) -> dict[str, Any]:
    m = item.motion
    return {
        "pts": m.pts,
        "time": float(m.time),
        "emotion": {"name": m.emotion.name, "intensity": m.emotion.intensity},
        "blendshapes": {n: round(float(v), 5) for n, v in zip(BLENDSHAPE_NAMES, m.blendshapes, strict=True)},
        "head": {n: round(float(v), 5) for n, v in zip(HEAD_POSE_NAMES, m.head_pose, strict=True)},
    }


class JsonLinesSink:
    """One JSON object per ArkitFrame (default: stdout), flushed per line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    def write(self, item: SessionItem) -> None:
        if isinstance(item, ArkitFrame):
            self.stream.write(json.dumps(frame_json(item)) + "\n")
            self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


def head_quaternion(yaw: float, pitch: float, roll: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) for yaw about Y, pitch about X, roll about Z (applied Y·X·Z, Unity order)."""
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    x = cy * sp * cr + sy * cp * sr
    y = sy * cp * cr - cy * sp * sr
    z = cy * cp * sr - sy * sp * cr
    w = cy * cp * cr + sy * sp * sr
    return x, y, z, w


def parse_host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        p = int(port)
    except ValueError as e:
        raise ConfigError(f"expected HOST:PORT, got {text!r}") from e
    if not host or not 0 < p < 65536:
        raise ConfigError(f"expected HOST:PORT, got {text!r}")
    return host, p


class VmcOscSink:
    """Send ArkitFrames as VMC protocol OSC bundles over UDP."""

    def __init__(self, host: str, port: int) -> None:
        # deferred: python-osc, needed only by this sink
        try:
            from pythonosc.udp_client import SimpleUDPClient
        except ImportError as e:
            raise DependencyError("python-osc is not installed: pip install python-osc") from e
        self.client = SimpleUDPClient(host, port)
        self.frames_sent = 0

    def bundle(self, item: ArkitFrame) -> Any:
        # deferred: python-osc, needed only by this sink (a missing one is a DependencyError at start)
        from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
        from pythonosc.osc_message_builder import OscMessageBuilder

        def msg(address: str, *args: Any) -> Any:
            b = OscMessageBuilder(address=address)
            for a in args:
                b.add_arg(a)
            return b.build()

        bb = OscBundleBuilder(IMMEDIATELY)
        m = item.motion
        for name, value in zip(VMC_NAMES, m.blendshapes, strict=True):
            bb.add_content(msg("/VMC/Ext/Blend/Val", name, float(value)))
        bb.add_content(msg("/VMC/Ext/Blend/Apply"))
        qx, qy, qz, qw = head_quaternion(*(float(v) for v in m.head_pose))
        bb.add_content(msg("/VMC/Ext/Bone/Pos", "Head", 0.0, 0.0, 0.0, qx, qy, qz, qw))
        return bb.build()

    def write(self, item: SessionItem) -> None:
        if isinstance(item, ArkitFrame):
            self.client.send(self.bundle(item))
            self.frames_sent += 1

    def close(self) -> None:
        pass
