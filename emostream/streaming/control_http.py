"""A small local HTTP endpoint to steer a live session (emotion, intensity, barge-in).

    GET  /state                                  -> {"emotion": "happy", "intensity": 0.7, ...}
    POST /emotion  {"name": "sad", "intensity": 0.5}   (or GET /emotion?name=sad&intensity=0.5)
    POST /clear                                  -> barge-in

Binds to 127.0.0.1 by default; it has no authentication, so do not expose it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emostream.arkit import EMOTIONS
from emostream.engine.session import Session
from emostream.errors import ConfigError


def make_app(session: Session) -> web.Application:
    state: dict[str, Any] = {"emotion": session.emotion.name, "intensity": session.emotion.intensity}

    async def get_state(request: web.Request) -> web.Response:
        stats = session.stats
        return web.json_response(
            {**state, "emotions": list(EMOTIONS), "video_frames": stats.video_frames,
             "dropped_frames": stats.dropped_frames, "latency_ms": stats.latency_summary()}
        )  # fmt: skip

    async def set_emotion(request: web.Request) -> web.Response:
        if request.method == "POST" and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"error": "body must be JSON"}, status=400)
        else:
            body = dict(request.query)
        try:
            name = str(body.get("name", state["emotion"])).lower()
            intensity = float(body.get("intensity", state["intensity"]))
            session.set_emotion(name, intensity)
        except (ConfigError, ValueError, TypeError) as e:
            return web.json_response({"error": str(e)}, status=400)
        state.update(emotion=name, intensity=intensity)
        return web.json_response(state)

    async def clear(request: web.Request) -> web.Response:
        session.clear()
        return web.json_response({"cleared": True})

    app = web.Application()
    app.router.add_get("/state", get_state)
    app.router.add_route("*", "/emotion", set_emotion)
    app.router.add_post("/clear", clear)
    return app


async def start_control_server(session: Session, host: str = "127.0.0.1", port: int = 8765) -> web.AppRunner:
    """Start serving; stop with ``await runner.cleanup()``."""
    runner = web.AppRunner(make_app(session), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
