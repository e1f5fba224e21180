"""Run a live session end to end: a source feeds it, sinks consume its items off the event loop.

``run_live(session, source, sinks)`` pushes the source's chunks as they arrive, hands every
item the session yields to the sinks (on one sink thread, through a bounded queue, so encoding
never blocks the event loop), and ends once the source is exhausted and its last frame played.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from emostream.engine.session import (
    ArkitFrame,
    AudioFrame,
    SegmentEnd,
    Session,
    SessionItem,
    SessionStats,
    VideoFrame,
)  # fmt: skip
from emostream.streaming.sinks.mp4 import Mp4Writer
from emostream.streaming.sources import AudioSource

log = logging.getLogger(__name__)


class Sink(Protocol):
    def write(self, item: SessionItem) -> None: ...
    def close(self) -> None: ...


class Mp4Sink:
    """Session items -> mp4 (video and the matching audio, same t0)."""

    def __init__(self, path: str, *, width: int, height: int, fps: int) -> None:
        self.writer = Mp4Writer(path, width=width, height=height, fps=fps)

    def write(self, item: SessionItem) -> None:
        if isinstance(item, VideoFrame):
            self.writer.write_video(item.rgb, item.pts)
        elif isinstance(item, AudioFrame):
            self.writer.write_audio(item.pcm, item.pts)

    def close(self) -> None:
        self.writer.close()


class SinkThread:
    """Feeds items to sinks on a worker thread through a bounded queue; errors surface at close."""

    _END = object()

    def __init__(self, sinks: Sequence[Sink], *, maxsize: int = 256) -> None:
        self.sinks = list(sinks)
        self._q: queue.Queue[object] = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="emostream-sinks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is self._END:
                break
            if self._error is not None:
                continue
            try:
                for s in self.sinks:
                    s.write(item)  # type: ignore[arg-type]
            except BaseException as e:
                log.exception("sink failed")
                self._error = e
        for s in self.sinks:
            try:
                s.close()
            except BaseException as e:
                self._error = self._error or e

    async def put(self, item: SessionItem) -> None:
        if self._error is not None:
            raise self._error
        try:
            self._q.put_nowait(item)
        except queue.Full:  # the sinks fell behind: wait without blocking the event loop
            await asyncio.get_running_loop().run_in_executor(None, self._q.put, item)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._q.put, self._END)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        if self._error is not None:
            raise self._error


async def run_live(
    session: Session,
    source: AudioSource,
    sinks: Sequence[Sink] = (),
    *,
    tail_frames: int = 5,
    max_seconds: float | None = None,
    on_item: Callable[[SessionItem], None] | None = None,
) -> SessionStats:
    """Stream ``source`` through ``session`` into ``sinks``; return the session's stats."""
    out = SinkThread(sinks)
    fed = asyncio.Event()

    async def feed() -> None:
        try:
            async for chunk in source:
                session.push_audio(chunk, source.sample_rate)
        finally:
            session.end_segment()
            if not session.config.realtime:
                session.close()
            fed.set()

    session.start()
    feeder = asyncio.create_task(feed(), name="emostream-feed")
    stop_at: int | None = None
    try:
        async for item in session:
            await out.put(item)
            if on_item is not None:
                on_item(item)
            if isinstance(item, SegmentEnd) and fed.is_set() and stop_at is None:
                stop_at = item.pts + tail_frames
            if isinstance(item, ArkitFrame):
                if stop_at is not None and item.pts >= stop_at:
                    break
                if max_seconds is not None and item.pts >= max_seconds * session.fps:
                    break
            if feeder.done() and feeder.exception() is not None:
                break
    finally:
        session.stop()
        await asyncio.to_thread(session.join, 10.0)  # never leave inference running at exit
        if not feeder.done():
            feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await out.close()
    if feeder.done() and not feeder.cancelled() and feeder.exception() is not None:
        raise feeder.exception()  # type: ignore[misc]
    return session.stats
