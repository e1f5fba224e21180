"""Virtual camera sink (pyvirtualcam): v4l2loopback on Linux, OBS Virtual Camera on Windows/macOS.

The session already paces its items, so frames are sent as they come. A frame the runtime
dropped is filled by repeating the previous one, so the camera keeps a steady rate. The
backend is injectable (``backend=`` a name registered with ``pyvirtualcam.register_backend``),
which is how tests run without a real device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emostream.engine.session import ArkitFrame, SessionItem, VideoFrame
from emostream.errors import DependencyError, DeviceError

SETUP_STEPS = (
    "set up a virtual camera first: on Linux `sudo apt-get install v4l2loopback-dkms` then "
    "`sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=emostream` (and pass "
    "--device /dev/videoN if it is not the first); on Windows/macOS install OBS Studio and start "
    "its Virtual Camera once"
)


class CameraSink:
    """Session items -> a virtual camera (RGB frames at the session's size and fps)."""

    def __init__(
        self, width: int, height: int, fps: int, *, device: str | None = None, backend: str | None = None
    ) -> None:
        # deferred: pyvirtualcam (optional: needs a virtual camera driver)
        try:
            import pyvirtualcam
        except ImportError as e:
            raise DependencyError("pyvirtualcam is not installed: pip install pyvirtualcam") from e
        kwargs: dict[str, Any] = {"fmt": pyvirtualcam.PixelFormat.RGB}
        if device is not None:
            kwargs["device"] = device
        if backend is not None:
            kwargs["backend"] = backend
        try:
            self.camera = pyvirtualcam.Camera(width, height, fps, **kwargs)
        except RuntimeError as e:
            raise DeviceError(f"no virtual camera ({e}); {SETUP_STEPS}") from e
        self.width, self.height, self.fps = width, height, fps
        self.device = self.camera.device
        self._last: np.ndarray | None = None
        self._shown_pts = -1
        self.frames_sent = 0
        self.frames_repeated = 0

    def write(self, item: SessionItem) -> None:
        if isinstance(item, ArkitFrame):
            # the previous frame had no video (dropped by the runtime): repeat the last one
            while self._last is not None and self._shown_pts < item.pts - 1:
                self._send(self._last)
                self._shown_pts += 1
                self.frames_repeated += 1
        elif isinstance(item, VideoFrame):
            if item.rgb.shape != (self.height, self.width, 3):
                raise ValueError(f"frame {item.rgb.shape} does not fit the camera {self.width}x{self.height}")
            self._send(item.rgb)
            self._last = item.rgb
            self._shown_pts = item.pts

    def _send(self, rgb: np.ndarray) -> None:
        self.camera.send(np.ascontiguousarray(rgb))
        self.frames_sent += 1

    def close(self) -> None:
        self.camera.close()
