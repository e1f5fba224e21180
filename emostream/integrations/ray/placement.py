"""Which session host gets the next session, cluster capacity, and how many hosts to run.

Sessions are long-lived (minutes) and the HTTP request that opens one lasts milliseconds, so
everything here counts *sessions*: a host's load is its live sessions plus the offers it has
been given and not yet answered (``reserved``). Pure bookkeeping, no Ray: the front feeds it
the hosts' reports and asks it where to go.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HostLoad:
    """What a session host reports about itself."""

    host: str
    node: str
    sessions: int
    capacity: int
    #: Changes when Ray restarts the host (its sessions were lost with the old process).
    incarnation: str


@dataclass
class HostSlot:
    """The front's view of one host."""

    name: str
    handle: Any
    load: HostLoad | None = None
    reserved: int = 0
    #: False while starting, after a failed report, or once its node is gone.
    alive: bool = False
    idle_since: float | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def sessions(self) -> int:
        return self.load.sessions if self.load is not None and self.alive else 0

    @property
    def busy(self) -> int:
        return self.sessions + self.reserved

    @property
    def capacity(self) -> int:
        return self.load.capacity if self.load is not None and self.alive else 0

    @property
    def free(self) -> int:
        if not self.alive or self.load is None:
            return 0
        return max(0, self.load.capacity - self.busy)


@dataclass(frozen=True)
class ScalePolicy:
    min_hosts: int = 1
    max_hosts: int = 1
    #: Add a host when fewer than this many free sessions remain on the live hosts.
    headroom: int = 1
    #: Remove a host (above ``min_hosts``) after it has been idle this long.
    idle_s: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_hosts <= self.max_hosts:
            raise ValueError(f"need 1 <= min hosts ({self.min_hosts}) <= max hosts ({self.max_hosts})")


@dataclass
class Placement:
    """Hosts by name, the cluster-wide session cap, and the placement and scaling rules."""

    max_sessions: int
    hosts: dict[str, HostSlot] = field(default_factory=dict)

    def add(self, slot: HostSlot) -> None:
        self.hosts[slot.name] = slot

    def live_sessions(self) -> int:
        return sum(s.busy for s in self.hosts.values())

    def capacity(self) -> int:
        """Sessions the live hosts can hold, at most ``max_sessions``."""
        total = sum(s.load.capacity for s in self.hosts.values() if s.alive and s.load is not None)
        return min(self.max_sessions, total)

    def reserve(self, exclude: frozenset[str] = frozenset()) -> HostSlot | None:
        """The least loaded live host with a free session (load = busy / capacity; ties: the
        fewest sessions, then the name), its count raised by one; None when all are full."""
        if self.live_sessions() >= self.max_sessions:
            return None
        candidates = [s for s in self.hosts.values() if s.free > 0 and s.name not in exclude]
        if not candidates:
            return None
        best = min(candidates, key=lambda s: (s.busy / s.capacity, s.busy, s.name))
        best.reserved += 1
        best.idle_since = None
        return best

    def release(self, slot: HostSlot, load: HostLoad | None = None) -> None:
        """An offer to ``slot`` was answered (``load``: the host's report after it) or failed."""
        slot.reserved = max(0, slot.reserved - 1)
        if load is not None:
            self.report(slot, load)

    def report(self, slot: HostSlot, load: HostLoad, now: float | None = None) -> None:
        """A host's fresh report. A new incarnation means Ray restarted it: its old sessions are gone."""
        slot.load = load
        slot.alive = True
        if slot.busy == 0:
            if slot.idle_since is None:
                slot.idle_since = time.monotonic() if now is None else now
        else:
            slot.idle_since = None

    def lost(self, slot: HostSlot) -> None:
        """A host did not answer (dead node, crashed or stuck process): no sessions go to it,
        and its sessions no longer count against capacity."""
        slot.alive = False
        slot.idle_since = None

    def remove(self, name: str) -> HostSlot | None:
        return self.hosts.pop(name, None)

    def scale(self, policy: ScalePolicy, now: float | None = None) -> tuple[int, list[str]]:
        """``(hosts to add, idle hosts to remove)`` so that free sessions stay above the
        headroom within the bounds. Starting hosts count as coming capacity."""
        now = time.monotonic() if now is None else now
        running = [s for s in self.hosts.values() if s.alive]
        starting = [s for s in self.hosts.values() if not s.alive and s.load is None]
        # Lost hosts count too until the front gives up on them (Ray may be restarting them).
        count = len(self.hosts)
        per_host = max((s.load.capacity for s in running if s.load is not None), default=1)
        free = sum(s.free for s in running) + per_host * len(starting)
        room = self.max_sessions - self.live_sessions()
        add = 0
        if count < policy.min_hosts:
            add = policy.min_hosts - count
        elif free < min(policy.headroom, room) and count < policy.max_hosts:
            add = 1
        remove: list[str] = []
        if add == 0:
            idle = sorted(
                ((s.idle_since, s.name) for s in running if s.busy == 0 and s.idle_since is not None),
            )
            for since, name in idle:
                if len(running) - len(remove) <= policy.min_hosts:
                    break
                if now - since < policy.idle_s:
                    continue
                if free - per_host < policy.headroom:
                    break
                remove.append(name)
                free -= per_host
        return add, remove
