"""``emostream agent``: bad input fails fast (before any model loads) with one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "emostream", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_agent_listed_in_help() -> None:
    r = _run("agent", "--help")
    assert r.returncode == 0 and "piper" in r.stdout and "--max-sessions" in r.stdout


def test_agent_bad_input_one_line_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nobody.png"
    r = _run("agent", "--image", str(missing))
    assert (r.returncode, r.stderr) == (2, f"emostream: error: {missing}: portrait image not found\n")
    r = _run("agent", "--emotion", "grumpy")
    assert r.returncode == 2 and r.stderr.startswith("emostream: error: unknown emotion 'grumpy'")
    assert r.stderr.count("\n") == 1
    r = _run("agent", "--renderer", "nope")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "renderer" in r.stderr


def test_agent_without_the_pipecat_extra_says_how_to_install() -> None:
    code = "import sys; sys.modules['pipecat'] = None; from emostream.cli import main; main(['agent'])"
    r = _run(code=code)
    assert r.returncode == 2
    assert r.stderr.startswith("emostream: error: emostream agent needs the pipecat extra")
    assert "pip install 'emostream[pipecat]'" in r.stderr and r.stderr.count("\n") == 1
