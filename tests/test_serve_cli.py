"""``emostream serve`` start-up and shutdown (issue 18, items 4, 5, 10): every failure is one
line and exit 2 before anything loads; SIGTERM cleans up like Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from fomm_fixtures import paths

from emostream.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model load fails the test: the checks must come first."""
    from emostream.engine.pipeline import Engine

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("models were loaded before the options were checked")

    monkeypatch.setattr(Engine, "load", refuse)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def test_port_in_use_is_one_line_before_serving(
    busy_port: int, no_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(["serve", "--port", str(busy_port)], capsys)
    assert code == 2 and "serving on" not in out
    assert err == f"emostream: error: cannot listen on 127.0.0.1:{busy_port}: Address already in use\n"


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("999.1.1.1", "bad --host '999.1.1.1': Name or service not known"),
        ("not a host", "bad --host 'not a host': Name or service not known"),
        ("10.255.255.1", "cannot listen on 10.255.255.1:8080: Cannot assign requested address"),
    ],
)
def test_bad_host_is_one_line_before_serving(
    host: str, message: str, no_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(["serve", "--host", host], capsys)
    assert code == 2 and "serving on" not in out
    assert err == f"emostream: error: {message}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "300"], "--size must be 256 or 512, got 300"),
        (["--image", "/nonexistent/me.png"], "/nonexistent/me.png: portrait image not found"),
        (["--renderer", "fomm"], "the fomm renderer needs --checkpoint"),
        (
            ["--renderer", "fomm", "--checkpoint", "/nonexistent/c.pth"],
            "/nonexistent/c.pth: checkpoint file not found",
        ),
        (["--checkpoint", "/nonexistent/c.pth"], "--checkpoint and --config only apply with --renderer fomm"),
        (["--max-sessions", "0"], "--max-sessions must be 'auto' or a positive integer, got '0'"),
        (["--max-sessions", "many"], "--max-sessions must be 'auto' or a positive integer, got 'many'"),
        (["--port", "70000"], "bad --port 70000: must be 0..65535"),
    ],
)
def test_bad_serve_options_fail_before_models_load(
    args: list[str], message: str, no_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(["serve", *args], capsys)
    assert code == 2
    assert err.startswith("emostream: error: ") and message in err and err.count("\n") == 1


def _serve(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "emostream", "serve", *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(180)
def test_serve_fomm_with_checkpoint_and_sigterm_removes_uploads(tmp_path: Path) -> None:
    """Item 5: `serve --renderer fomm --checkpoint C` asked for --checkpoint, then rejected it.
    Item 10: SIGTERM left the uploaded portraits in /tmp/emostream-portraits-*."""
    ckpt, cfg, _ = paths("fomm_small")
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    port = _free_port()
    proc = _serve(
        ["--renderer", "fomm", "--checkpoint", str(ckpt), "--config", str(cfg), "--max-sessions", "1",
         "--port", str(port)],
        env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == f"emostream: serving on http://127.0.0.1:{port}/ (max 1 sessions)\n", proc.stderr
        folders = list(tmp_path.glob("emostream-portraits-*"))
        assert len(folders) == 1
        import asyncio

        from skimage import data

        async def upload() -> int:
            import cv2

            png = cv2.imencode(".png", data.astronaut()[:, :, ::-1])[1].tobytes()
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"http://127.0.0.1:{port}/portrait", data=png) as r,
            ):
                return r.status

        assert asyncio.run(upload()) == 200
        assert any(folders[0].iterdir()), "the upload is stored"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not folders[0].exists(), "SIGTERM removes the upload folder"
    finally:
        if proc.poll() is None:
            proc.kill()


def _catches_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.timeout(120)
def test_sigterm_while_loading_exits_143_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = _serve(["--port", str(_free_port()), "--max-sessions", "1"], env)
    end = time.monotonic() + 60
    while not _catches_sigterm(proc.pid):  # the CLI's handler is in place: it is loading now
        assert time.monotonic() < end and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    if "serving on" in out:  # a fast machine got there first: a clean stop
        assert proc.returncode == 0
    else:
        assert proc.returncode == 143 and err.strip().splitlines()[-1] == "emostream: terminated"
    assert not list(tmp_path.glob("emostream-portraits-*"))
