"""The command line: --help, --version, probe output, one-line errors with exit 2, --debug."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emostream import __version__
from emostream.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emostream", *args], capture_output=True, text=True, timeout=120
    )


def test_help_and_version() -> None:
    r = _run("--help")
    assert r.returncode == 0 and "probe" in r.stdout and "--debug" in r.stdout
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"emostream {__version__}"


def test_probe_json(sample_wav: Path) -> None:
    r = _run("probe", str(sample_wav), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["kind"] == "audio" and data["sample_rate"] == 16000


def test_error_is_one_line_exit_2_and_debug_shows_traceback(data_dir: Path) -> None:
    path = data_dir / "text.wav"
    r = _run("probe", str(path))
    assert r.returncode == 2
    assert r.stderr == f"emostream: error: {path}: not an audio file (FFmpeg cannot read it)\n"
    assert "Traceback" not in r.stderr and r.stdout == ""
    r = _run("--debug", "probe", str(path))
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "AudioError" in r.stderr and "InvalidDataError" in r.stderr


BAD_FILES = [
    "truncated.wav", "text.wav", "empty.wav", "nan_float.wav", "livelink_missing_columns.csv",
    "livelink_extra_column.csv", "livelink_duplicate_column.csv", "livelink_bad_number.csv",
    "livelink_bad_timecode.csv", "livelink_empty.csv", "livelink_header_only.csv",
]  # fmt: skip


@pytest.mark.parametrize("name", BAD_FILES)
def test_every_bad_input_fails_cleanly(data_dir: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["probe", str(data_dir / name)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"emostream: error: {data_dir / name}: ") and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_missing_and_directory(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.wav" if kind == "missing" else tmp_path
    with pytest.raises(SystemExit) as e:
        main(["probe", str(path)])
    assert e.value.code == 2
    expected = "file not found" if kind == "missing" else "is a directory, not a file"
    assert capsys.readouterr().err == f"emostream: error: {path}: {expected}\n"


def test_usage_error_exits_2_without_traceback() -> None:
    r = _run("probe")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "Missing" in r.stderr
