"""The local HTTP control endpoint changes a live session's emotion and clears it."""

from __future__ import annotations

import aiohttp
import pytest
from session_doubles import SMILE, double_engine

from emostream.engine.clock import SimulatedClock
from emostream.engine.session import ArkitFrame
from emostream.streaming.control_http import start_control_server


async def test_http_sets_emotion_and_reports_state() -> None:
    clock = SimulatedClock()
    s = double_engine().new_session(clock=clock)
    runner = await start_control_server(s, port=0)
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/emotion", json={"name": "happy", "intensity": 0.8}) as r:
                assert r.status == 200 and (await r.json())["emotion"] == "happy"
            async with http.get(f"{base}/emotion", params={"name": "furious"}) as r:
                assert r.status == 400 and "unknown emotion" in (await r.json())["error"]
            smile = []
            async for item in s:
                if isinstance(item, ArkitFrame):
                    smile.append(float(item.motion.blendshapes[SMILE]))
                    if len(smile) == 30:
                        break
            assert smile[-1] == pytest.approx(0.8)
            async with http.get(f"{base}/state") as r:
                state = await r.json()
            assert state["emotion"] == "happy" and state["intensity"] == 0.8 and state["dropped_frames"] == 0
            async with http.post(f"{base}/clear") as r:
                assert (await r.json()) == {"cleared": True}
    finally:
        s.stop()
        await runner.cleanup()
