"""Web safety of the signalling endpoints: Origin check, bearer token, per-client rate limit and
bounded JSON.

- Origin: a browser sends ``Origin`` with every cross-origin POST (a ``text/plain`` form post
  from any page included). A request whose Origin is neither the server's own
  (``scheme://Host``) nor one of ``allowed`` is refused with 403. Requests without an Origin
  (curl, aiohttp, aiortc clients) are not browsers' cross-site requests and pass.
- Token: with a token configured, ``Authorization: Bearer TOKEN`` is required (401 otherwise),
  compared in constant time.
- Rate: a token bucket per client address (``burst`` requests at once, refilled at
  ``per_minute``); beyond it 429 with ``Retry-After``. At most ``MAX_CLIENTS`` addresses are
  remembered (least recently seen dropped first), so the table never grows without bound.
- JSON: at most ``max_bytes`` and ``max_depth`` levels of nesting, checked before parsing (a
  deeply nested body would otherwise exhaust Python's recursion limit).
"""

from __future__ import annotations

import hmac
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from emostream.errors import InputError

#: Client addresses whose buckets are remembered.
MAX_CLIENTS = 10_000
#: JSON strings (with escapes), removed before counting brackets.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


@dataclass(frozen=True)
class RateLimit:
    """``burst`` requests at once, then ``per_minute`` (0 disables the limit)."""

    per_minute: float = 60.0
    burst: int = 20


class RateLimiter:
    """Token buckets per client key; ``allow(key)`` → 0.0 if allowed, else seconds to wait."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, t)

    def allow(self, key: str) -> float:
        if self.limit.per_minute <= 0:
            return 0.0
        rate = self.limit.per_minute / 60.0
        now = self.clock()
        tokens, t = self._buckets.pop(key, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - t) * rate)
        wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
        self._buckets[key] = (tokens - 1.0 if wait == 0.0 else tokens, now)
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait


def origin_allowed(origin: str | None, own: str, allowed: tuple[str, ...]) -> bool:
    """``origin`` (the request's Origin header or None) against the server's own origin
    (``scheme://host[:port]``) and the ``--allow-origin`` entries (``*`` allows any)."""
    if origin is None:
        return True
    o = origin.rstrip("/").lower()
    return o == own.lower() or "*" in allowed or o in {a.rstrip("/").lower() for a in allowed}


def token_ok(header: str | None, token: str | None) -> bool:
    """An ``Authorization`` header against the configured token (None: no token needed)."""
    if token is None:
        return True
    if header is None or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), token.encode())


def json_depth(data: bytes) -> int:
    """Deepest nesting of arrays/objects in JSON text (brackets inside strings ignored)."""
    bare = np.frombuffer(_JSON_STRING.sub(b'""', data), np.uint8)
    step = (bare == ord("[")).astype(np.int32) + (bare == ord("{"))
    step -= (bare == ord("]")).astype(np.int32) + (bare == ord("}"))
    return int(np.cumsum(step).max(initial=0))


def load_json(data: bytes | str, *, max_bytes: int, max_depth: int, what: str = "body") -> Any:
    """Parse bounded JSON, or InputError naming the limit it breaks."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise InputError(f"{what} too large ({len(raw)} bytes, limit {max_bytes})")
    depth = json_depth(raw)
    if depth > max_depth:
        raise InputError(f"{what} nested too deeply ({depth} levels, limit {max_depth})")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{what} is not JSON: {e}") from e


def _no_constant(name: str) -> float:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def retry_after(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
