"""ARKit streams: Live Link Face CSV, JSON lines, VMC over OSC (received on a local UDP port)."""

from __future__ import annotations

import io
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from emostream.arkit import BLENDSHAPE_INDEX, MOTION_DIM, EmotionStyle, MotionFrame
from emostream.engine.session import ArkitFrame
from emostream.errors import ConfigError
from emostream.livelink import read_livelink_csv
from emostream.streaming.sinks.arkit import (
    JsonLinesSink,
    LiveLinkCsvSink,
    VmcOscSink,
    head_quaternion,
    parse_host_port,
)


def frames(n: int) -> list[ArkitFrame]:
    rng = np.random.default_rng(0)
    out = []
    base = rng.uniform(0.2, 0.6, MOTION_DIM)
    slope = rng.uniform(-0.01, 0.01, MOTION_DIM)
    for i in range(n):  # smooth (linear in time), so the reader's resampling is exact
        v = (base + i * slope).astype(np.float32)
        v[52:] -= 0.4
        out.append(ArkitFrame(MotionFrame.from_vector(v, i, emotion=EmotionStyle("sad", 0.5))))
    return out


def test_livelink_csv_round_trip(tmp_path: Path) -> None:
    fs = frames(60)  # >1 s, so the reader can tell the timecodes are at 25 fps
    sink = LiveLinkCsvSink(tmp_path / "out.csv", 25)
    for f in fs:
        sink.write(f)
    sink.close()
    motion = read_livelink_csv(tmp_path / "out.csv").motion  # resampled to the 25 fps grid
    assert len(fs) - 2 <= len(motion) <= len(fs)
    np.testing.assert_allclose(motion, np.stack([f.motion.vector() for f in fs])[: len(motion)], atol=1e-5)


def test_json_lines() -> None:
    buf = io.StringIO()
    sink = JsonLinesSink(buf)
    for f in frames(3):
        sink.write(f)
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [d["pts"] for d in lines] == [0, 1, 2]
    assert lines[1]["time"] == 1 / 25
    assert len(lines[0]["blendshapes"]) == 52 and set(lines[0]["head"]) == {
        "headYaw",
        "headPitch",
        "headRoll",
    }
    assert lines[0]["emotion"] == {"name": "sad", "intensity": 0.5}


def test_vmc_osc_reaches_a_receiver() -> None:
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    got: list[tuple] = []
    applied = threading.Event()
    d = Dispatcher()
    d.map("/VMC/Ext/Blend/Val", lambda addr, *args: got.append(("val", *args)))
    d.map("/VMC/Ext/Bone/Pos", lambda addr, *args: got.append(("bone", *args)))
    d.map("/VMC/Ext/Blend/Apply", lambda addr, *args: applied.set())
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        f = frames(1)[0]
        sink = VmcOscSink("127.0.0.1", server.server_address[1])
        sink.write(f)
        assert applied.wait(5)
    finally:
        server.shutdown()
    vals = {a[1]: a[2] for a in got if a[0] == "val"}
    assert len(vals) == 52
    assert vals["JawOpen"] == pytest.approx(
        float(f.motion.blendshapes[BLENDSHAPE_INDEX["jawOpen"]]), abs=1e-6
    )
    bone = next(a for a in got if a[0] == "bone")
    assert bone[1] == "Head" and math.isclose(sum(q * q for q in bone[5:9]), 1.0, abs_tol=1e-5)


def test_head_quaternion_and_host_port() -> None:
    assert head_quaternion(0.0, 0.0, 0.0) == (0.0, 0.0, 0.0, 1.0)
    x, y, z, _w = head_quaternion(0.5, 0.0, 0.0)
    assert (x, z) == (0.0, 0.0) and y == pytest.approx(math.sin(0.25))
    assert parse_host_port("127.0.0.1:39539") == ("127.0.0.1", 39539)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_host_port("localhost")
