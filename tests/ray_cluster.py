"""A real local Ray cluster for tests: nodes started with ``ray start --block`` on loopback, each
its own process group with its own CPU budget, so that a test can stop one node by its process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Test clusters live on loopback and must not depend on (or create) ~/.ray/auth_token, which
#: Ray 2.60 uses to turn token authentication on for every cluster started on the machine.
AUTH = {"RAY_AUTH_MODE": "disabled"}


def ray_env() -> dict[str, str]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_DISABLE_DOCKER_CPU_WARNING="1", **AUTH)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class LocalCluster:
    """``ray start --head`` plus workers; ``stop_node(i)`` ends node i (SIGTERM to its group)."""

    temp_dir: Path
    port: int = field(default_factory=free_port)
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, args: list[str], name: str) -> None:
        log = open(self.temp_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [RAY, "start", "--block", "--num-cpus=1", "--num-gpus=0", "--node-ip-address=127.0.0.1",
             "--disable-usage-stats", *args],
            stdout=log, stderr=subprocess.STDOUT, env=ray_env(), start_new_session=True,
        )  # fmt: skip
        self.nodes.append(proc)

    def start(self, workers: int, timeout_s: float = 120.0) -> None:
        os.environ.update(AUTH)  # this process's GCS client too
        self._start(
            [
                "--head", f"--port={self.port}", "--include-dashboard=false",
                f"--temp-dir={self.temp_dir}", f"--ray-client-server-port={free_port()}",
                f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            ],
            "head",
        )  # fmt: skip
        self.wait_nodes(1, timeout_s)
        for i in range(workers):
            self._start(
                [f"--address={self.address}", f"--node-manager-port={free_port()}",
                 f"--object-manager-port={free_port()}"],
                f"worker{i}",
            )  # fmt: skip
        self.wait_nodes(1 + workers, timeout_s)

    def alive_nodes(self) -> int:
        from ray._raylet import GcsClient  # the GCS's own client: no driver, no dashboard needed

        try:
            nodes = GcsClient(address=self.address).get_all_node_info(timeout=10)
        except Exception:
            return 0
        return sum(1 for info in nodes.values() if info.state == 0)  # 0: ALIVE

    def wait_nodes(self, n: int, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while self.alive_nodes() < n:
            for p in self.nodes:
                if p.poll() is not None:
                    raise RuntimeError(f"a ray node exited ({p.returncode}); see {self.temp_dir}")
            if time.monotonic() > end:
                raise RuntimeError(f"{n} ray nodes not up within {timeout_s:.0f} s; see {self.temp_dir}")
            time.sleep(1.0)

    def node_id(self, i: int) -> str:
        """Ray's id of node ``i`` (0: the head), found by the node-manager port it was given."""
        from ray._raylet import GcsClient  # the GCS's own client: no driver, no dashboard needed

        port = int(next(a for a in self.nodes[i].args if a.startswith("--node-manager-port=")).split("=")[1])
        nodes = GcsClient(address=self.address).get_all_node_info(timeout=10)
        return next(nid.hex() for nid, info in nodes.items() if info.node_manager_port == port)

    def stop_node(self, i: int, timeout_s: float = 10.0) -> None:
        proc = self.nodes[i]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def shutdown(self) -> None:
        for i in reversed(range(len(self.nodes))):
            self.stop_node(i)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
