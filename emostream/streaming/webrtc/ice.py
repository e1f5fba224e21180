"""ICE configuration: no STUN unless asked, STUN/TURN from ``--ice-server`` URLs, and loopback.

- ``RTCPeerConnection()`` without a configuration asks Google's public STUN server; we always
  pass an explicit ``RTCConfiguration`` whose ice servers come from the user (default: none).
- URLs: ``stun:host[:port]``, ``turn:user:password@host[:port][?transport=udp|tcp]`` or
  ``turns:…`` (credentials may also be given as ``turn:host?username=U&credential=P``).
- Loopback: aioice (aiortc's ICE library) never offers 127.0.0.1 as a host candidate, so in a
  network namespace with only ``lo`` (containers, CI sandboxes) ICE silently never connects,
  and a browser on the same host depends on another interface being up. When the server is
  bound to a loopback address the peer *is* on this host, so a 127.0.0.1 host candidate is
  valid and is what should be used. ``enable_loopback_candidates()`` adds it by wrapping
  aioice's host-address enumeration (the only place addresses are chosen; aioice has no
  option for it). It is installed once by the server, only for loopback-bound servers.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Sequence
from urllib.parse import parse_qs, urlsplit

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

from emostream.errors import ConfigError

LOOPBACK_V4 = "127.0.0.1"
_SCHEMES = ("stun", "stuns", "turn", "turns")


def parse_ice_server(url: str) -> RTCIceServer:
    """``stun:host:3478`` / ``turn:user:pass@host:3478?transport=udp`` → RTCIceServer."""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() not in _SCHEMES or not rest:
        raise ConfigError(
            f"bad --ice-server {url!r}; expected stun:HOST[:PORT] or turn:USER:PASS@HOST[:PORT]"
        )
    scheme = scheme.lower()
    rest, _, query = rest.partition("?")
    params = parse_qs(query)
    username = params.get("username", [None])[0]
    credential = params.get("credential", [None])[0]
    if "@" in rest:
        cred, _, rest = rest.rpartition("@")
        username, _, credential = cred.partition(":")
    if not rest:
        raise ConfigError(f"bad --ice-server {url!r}: no host")
    check = urlsplit(f"//{rest}")
    try:
        _ = check.port
    except ValueError as e:
        raise ConfigError(f"bad --ice-server {url!r}: {e}") from e
    transport = params.get("transport", [None])[0]
    out = f"{scheme}:{rest}" + (f"?transport={transport}" if transport else "")
    if scheme.startswith("turn"):
        if not username or not credential:
            raise ConfigError(f"--ice-server {url!r}: TURN needs a username and a credential")
        return RTCIceServer(urls=out, username=username, credential=credential)
    return RTCIceServer(urls=out)


def rtc_configuration(urls: Sequence[str] = ()) -> RTCConfiguration:
    """Explicit configuration: exactly the given servers (none by default: no STUN traffic)."""
    return RTCConfiguration(iceServers=[parse_ice_server(u) for u in urls])


def browser_ice_servers(urls: Sequence[str] = ()) -> list[dict[str, object]]:
    """The same servers in the shape of the browser's ``RTCConfiguration.iceServers``."""
    out: list[dict[str, object]] = []
    for u in urls:
        s = parse_ice_server(u)
        entry: dict[str, object] = {"urls": s.urls}
        if s.username:
            entry["username"] = s.username
            entry["credential"] = s.credential
        out.append(entry)
    return out


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _with_loopback(fn: Callable[[bool, bool], list[str]]) -> Callable[[bool, bool], list[str]]:
    @functools.wraps(fn)
    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(fn(use_ipv4, use_ipv6))
        if use_ipv4 and LOOPBACK_V4 not in addresses:
            addresses.append(LOOPBACK_V4)
        return addresses

    get_host_addresses.emostream_loopback = True  # type: ignore[attr-defined]
    return get_host_addresses


def enable_loopback_candidates() -> None:
    """Make aioice also gather a 127.0.0.1 host candidate (idempotent, process-wide)."""
    current = aioice.ice.get_host_addresses
    if getattr(current, "emostream_loopback", False):
        return
    aioice.ice.get_host_addresses = _with_loopback(current)  # type: ignore[assignment]


def loopback_candidates_enabled() -> bool:
    return bool(getattr(aioice.ice.get_host_addresses, "emostream_loopback", False))
