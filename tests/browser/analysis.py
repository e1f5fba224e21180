"""Turn a page report (tests/browser/measure.js) into the figures the WebRTC issue targets.

- ``video_summary``: frames decoded/presented, freezes (the browser's getStats ``freezeCount``,
  reported by Chromium and by Firefox 153 — the key keeps its historical name, None where a
  browser does not report it — and our own count of presentation gaps > max(3 x median,
  median + 150 ms), WebRTC's freeze definition), presentation fps; over the window after the
  page's warm-up when it had one.
- ``frame_latency``: server send time of each frame → browser presentation, matching the
  browser's RTP timestamps to the server's send log (the RTP origin is random, so the first
  presented frame's pts is found as the one that makes every receive time follow its send
  time — a frame cannot arrive before it was sent, and one frame earlier is 40 ms off).
- ``av_offsets``: with the sync-pattern session (white frame + 1 kHz beep once a second),
  beep output time minus flash display time, measured in the page (positive: audio late).
- ``mouth_speech_correlation``: mouth-region change in the presented frames vs the
  envelope of the received audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

VIDEO_CLOCK = 90_000


def inbound(report: dict[str, Any], kind: str) -> dict[str, Any]:
    return _inbound(report.get("stats", []), kind)


def _inbound(stats: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    for s in stats:
        if s.get("type") == "inbound-rtp" and s.get("kind") == kind:
            return s
    return {}


def _window_count(report: dict[str, Any], kind: str, name: str) -> int | None:
    """A getStats counter over the measured window (after ``warmup``, when the page took a
    snapshot then), else over the whole run; None when the browser does not report it."""
    end = inbound(report, kind).get(name)
    if end is None or report.get("statsWarm") is None:
        return end
    start = _inbound(report["statsWarm"], kind).get(name)
    return None if start is None else end - start


def video_summary(report: dict[str, Any]) -> dict[str, Any]:
    """Video figures over the measured window: the frames presented from ``t0`` on when the
    page had a warm-up (``statsWarm``), else all of them."""
    frames = report["frames"]
    warm = report.get("statsWarm") is not None
    start = float(report["t0"]) if warm else -np.inf
    shown = [f for f in frames if f.get("presentationTime") is not None and f["presentationTime"] >= start]
    pt = np.array([f["presentationTime"] for f in shown])
    gaps = np.diff(pt) if pt.size > 1 else np.zeros(0)
    med = float(np.median(gaps)) if gaps.size else float("nan")
    freeze_gaps = gaps[gaps > max(3 * med, med + 150.0)] if gaps.size else gaps
    v = inbound(report, "video")
    span = (pt[-1] - pt[0]) / 1000.0 if pt.size > 1 else 0.0
    return {
        "frames_presented": len(shown) if warm else len(frames),
        "frames_decoded": _window_count(report, "video", "framesDecoded"),
        "frames_dropped": _window_count(report, "video", "framesDropped"),
        "freeze_count_chromium": _window_count(report, "video", "freezeCount"),
        "freezes_measured": int(freeze_gaps.size),
        "max_gap_ms": float(gaps.max()) if gaps.size else None,
        "median_gap_ms": med,
        "presented_fps": (pt.size - 1) / span if span > 0 else 0.0,
        "codec": v.get("codecId"),
        "window_s": span,
    }


def audio_summary(report: dict[str, Any]) -> dict[str, Any]:
    a = inbound(report, "audio")
    rms = np.array([x[1] for x in report.get("audio", [])], dtype=np.float64)
    return {
        "packets_received": a.get("packetsReceived"),
        "packets_lost": a.get("packetsLost"),
        "samples_received": a.get("totalSamplesReceived"),
        "concealed_samples": a.get("concealedSamples"),
        "jitter_buffer_ms": 1000.0 * a["jitterBufferDelay"] / a["jitterBufferEmittedCount"]
        if a.get("jitterBufferEmittedCount")
        else None,
        "tap_blocks": int(rms.size),
        "tap_max_rms": float(rms.max()) if rms.size else 0.0,
    }


def _unwrap_rtp(ts: Sequence[int]) -> np.ndarray:
    t = np.asarray(ts, dtype=np.int64)
    d = (np.diff(t) + (1 << 31)) % (1 << 32) - (1 << 31)
    return np.concatenate([[0], np.cumsum(d)])


def frame_latency(
    report: dict[str, Any], send_log: Sequence[tuple[int, float, float | None]]
) -> dict[str, Any]:
    """Per-frame server send → browser presentation, in ms (p50/p95/max) and the same from
    the frame's arrival from the session (adds the tracks' jitter margin)."""
    frames = [f for f in report["frames"] if f.get("rtpTimestamp") is not None]
    origin_ms = float(report["timeOrigin"])
    rel = _unwrap_rtp([f["rtpTimestamp"] for f in frames])
    if np.any(rel % (VIDEO_CLOCK // 25)):
        raise AssertionError("RTP timestamps are not on the 25 fps grid")
    dpts = rel // (VIDEO_CLOCK // 25)
    sent = {p: (s, a) for p, s, a in send_log}
    recv = np.array([origin_ms + f["receiveTime"] for f in frames]) / 1000.0
    shown = np.array([origin_ms + f["expectedDisplayTime"] for f in frames]) / 1000.0
    best = None
    for p0 in sorted(sent):
        pts = p0 + dpts
        if not all(int(p) in sent for p in pts):
            continue
        lat = recv - np.array([sent[int(p)][0] for p in pts])
        if lat.min() >= -0.002:
            best = p0  # keep the largest consistent origin
    if best is None:
        raise AssertionError("could not match browser frames to the server's send log")
    pts = best + dpts
    send = np.array([sent[int(p)][0] for p in pts])
    arrived = np.array([sent[int(p)][1] if sent[int(p)][1] is not None else np.nan for p in pts])
    lat = 1000.0 * (shown - send)
    lat_arr = 1000.0 * (shown - arrived)
    lat_arr = lat_arr[np.isfinite(lat_arr)]
    return {
        "first_pts": int(best),
        "send_to_display_ms": {
            "p50": float(np.median(lat)),
            "p95": float(np.percentile(lat, 95)),
            "max": float(lat.max()),
        },
        "session_to_display_ms": {"p50": float(np.median(lat_arr)), "p95": float(np.percentile(lat_arr, 95))}
        if lat_arr.size
        else None,
        "network_ms_p50": float(np.median(1000.0 * (recv - send))),
    }


def _onsets(times: np.ndarray, active: np.ndarray) -> np.ndarray:
    idx = np.nonzero(active[1:] & ~active[:-1])[0] + 1
    return times[idx]


def av_offsets(report: dict[str, Any], *, skip_s: float = 0.0) -> np.ndarray:
    """Beep output time − flash display time (ms) for each flash after ``skip_s`` seconds."""
    frames = report["frames"]
    vt = np.array([f["expectedDisplayTime"] for f in frames], dtype=np.float64)
    luma = np.array([f["luma"] for f in frames], dtype=np.float64)
    audio = np.array(report["audio"], dtype=np.float64)
    von = _onsets(vt, luma > 128)
    aon = _onsets(audio[:, 0], audio[:, 1] > 0.05)
    start = vt[0] + 1000.0 * skip_s
    out = []
    for v in von[von >= start]:
        j = np.argmin(np.abs(aon - v))
        if abs(aon[j] - v) < 400:
            out.append(aon[j] - v)
    return np.array(out)


#: Chromium's and Firefox's audio jitter buffers start large and A/V sync converges over the
#: first seconds (slower on a loaded machine): sync is judged on the last flashes.
JUDGE_LAST = 5


def sync_figures(report: dict[str, Any], send_log: Sequence[Any]) -> tuple[dict[str, Any], np.ndarray]:
    """The transport figures of a sync-pattern run (flash + beep once a second): video, audio,
    server-send → display latency, every A/V offset and a summary of the last ``JUDGE_LAST``.
    Returns (figures, offsets in ms)."""
    offsets = av_offsets(report)
    steady = offsets[-JUDGE_LAST:]
    figures = {
        "video": video_summary(report),
        "audio": audio_summary(report),
        "latency": frame_latency(report, send_log),
        "av_offset_ms_all": offsets.round(1).tolist(),
        "av_offset_ms_last": {
            "median": float(np.median(steady)),
            "min": float(steady.min()),
            "max": float(steady.max()),
        }
        if steady.size
        else None,
    }
    return figures, offsets


def envelope_correlations(
    vt: np.ndarray, dark: np.ndarray, at: np.ndarray, rms: np.ndarray, lags: np.ndarray, window: float
) -> np.ndarray:
    """For each lag: the correlation of the mouth's darkness at frame times ``vt`` with the mean
    sound RMS over [t + lag, t + lag + window) (``at`` sorted; any one time unit; -2 where either
    side is constant). The A/V analyses of the agent tests pick their lag from this."""
    out = np.full(len(lags), -2.0)
    for k, lag in enumerate(lags):
        lo, hi = np.searchsorted(at, vt + lag), np.searchsorted(at, vt + lag + window)
        env = np.array([rms[a:b].mean() if b > a else 0.0 for a, b in zip(lo, hi, strict=True)])
        if env.std() > 0 and dark.std() > 0:
            out[k] = float(np.corrcoef(env, dark)[0, 1])
    return out


def mouth_speech_correlation(report: dict[str, Any], *, max_lag_ms: float = 200.0) -> dict[str, float]:
    """Correlation of mouth openness (darkness of 32x32 grey crops of the mouth in the
    presented frames) with the received audio's envelope (RMS over the 40 ms before each
    display time + lag); the best over lags within ±max_lag_ms (positive lag: the sound
    that matches a mouth shape plays after it)."""
    frames = [f for f in report["frames"] if "gray" in f]
    t = np.array([f["expectedDisplayTime"] for f in frames], dtype=np.float64)
    g = np.stack([np.asarray(f["gray"], np.float32).reshape(32, 32) for f in frames])
    # An open mouth shows the dark mouth interior: openness = darkness of the patch.
    motion = -g.mean(axis=(1, 2))
    audio = np.array(report["audio"], dtype=np.float64)
    order = np.argsort(audio[:, 0])
    at, ar = audio[order, 0], audio[order, 1]
    best = (-1.0, 0.0)
    for lag in np.arange(-max_lag_ms, max_lag_ms + 1, 10.0):
        # envelope: RMS over the 40 ms before each display time (shifted by lag)
        env = np.array(
            [
                ar[(at > ti + lag - 40) & (at <= ti + lag)].mean()
                if np.any((at > ti + lag - 40) & (at <= ti + lag))
                else 0.0
                for ti in t
            ]
        )
        if env.std() == 0 or motion.std() == 0:
            continue
        r = float(np.corrcoef(env, motion)[0, 1])
        if r > best[0]:
            best = (r, float(lag))
    return {"r": best[0], "lag_ms": best[1]}
