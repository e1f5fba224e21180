"""Virtual camera sink with a fake pyvirtualcam backend: frames at 25 fps, right size/format."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import pyvirtualcam
from session_doubles import double_engine, tone

from emostream.engine.clock import SimulatedClock
from emostream.engine.session import SegmentEnd
from emostream.errors import DeviceError
from emostream.streaming.sinks.camera import CameraSink

SENT: list[tuple[float, np.ndarray]] = []


class FakeCamera:
    """pyvirtualcam backend: records every frame it is sent (and the simulated send time)."""

    clock: SimulatedClock | None = None

    def __init__(
        self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: Any
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        self._device = device or "/dev/fake0"

    def send(self, frame: np.ndarray) -> None:
        SENT.append((FakeCamera.clock.now() if FakeCamera.clock else time.monotonic(), frame.copy()))

    def close(self) -> None:
        pass

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int | None:
        return None


pyvirtualcam.register_backend("emostream-fake", FakeCamera)


async def test_fake_camera_gets_frames_at_25_fps() -> None:
    SENT.clear()
    clock = SimulatedClock(100.0)
    FakeCamera.clock = clock
    engine = double_engine()
    s = engine.new_session(clock=clock)
    cam = CameraSink(s.width, s.height, engine.fps, backend="emostream-fake")
    assert cam.device == "/dev/fake0"
    # the speech arrives at once (like TTS); the session paces it on the simulated clock, and
    # the camera is written from the consumer itself so the fake sees the simulated send times
    s.push_audio(tone(2.0))
    s.end_segment()
    async for item in s:
        cam.write(item)
        if isinstance(item, SegmentEnd):
            break
    s.stop()
    cam.close()
    stats = s.stats
    assert stats.dropped_frames == 0
    assert len(SENT) == stats.video_frames >= 50
    for _, frame in SENT:  # pyvirtualcam hands backends the RGB bytes flattened
        assert frame.dtype == np.uint8 and frame.size == s.height * s.width * 3
    times = np.array([t for t, _ in SENT])
    np.testing.assert_allclose(np.diff(times), 1 / 25, atol=1e-6)  # paced by the session clock
    assert max(f.reshape(s.height, s.width, 3)[:, :, 0].max() for _, f in SENT) > 0  # the mouth moved


def test_missing_virtual_camera_gives_setup_steps() -> None:
    class Missing(FakeCamera):
        def __init__(self, **kw: Any) -> None:
            raise RuntimeError("No v4l2 loopback device found at /dev/video[0-99]")

    pyvirtualcam.register_backend("emostream-missing", Missing)
    with pytest.raises(DeviceError, match=r"modprobe v4l2loopback devices=1 exclusive_caps=1.*OBS"):
        CameraSink(64, 64, 25, backend="emostream-missing")


def test_real_backend_without_device_gives_setup_steps() -> None:
    import glob

    if glob.glob("/dev/video*"):
        pytest.skip("this machine has video devices")
    with pytest.raises(DeviceError, match="modprobe v4l2loopback"):
        CameraSink(64, 64, 25, backend="v4l2loopback")
