"""``emostream render`` fails fast and clean (issue 18, items 3, 9, 11): every bad input is one
line and exit 2 before any model loads; a failed write leaves no file; audio is streamed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from render_fixtures import *  # noqa: F403  (pytest fixtures)
from render_fixtures import vec

from emostream.cli import main
from emostream.livelink import write_livelink_csv

ROOT = Path(__file__).resolve().parents[1]


def _csv(tmp_path: Path, n: int = 50) -> Path:
    m = np.stack([vec(jawOpen=float(w), yaw=0.1 * float(w)) for w in np.linspace(0, 1, n)])
    return write_livelink_csv(tmp_path / "m.csv", m, 25)


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the motion model fails the test: inputs must be checked first."""
    from emostream.engine.motion import MotionEngine

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("the motion model was loaded before the inputs were checked")

    monkeypatch.setattr(MotionEngine, "load", refuse)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    return int(e.value.code or 0), capsys.readouterr().err


def test_bad_inputs_fail_before_the_audio_model(
    tmp_path: Path, sample_wav: Path, no_models: None, render_cache: None, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    out = tmp_path / "out.mp4"
    base = ["render", "--audio", str(sample_wav), "-o", str(out)]
    cases = [
        (["--image", str(tmp_path / "missing.png")], f"{tmp_path / 'missing.png'}: portrait image not found"),
        (
            ["--image", str(tiny)],
            f"{tiny}: image too small for a face (1x1 px; need at least 50 px per side)",
        ),
        (["--size", "300"], "--size must be 256 or 512, got 300"),
        (
            ["--renderer", "fomm", "--checkpoint", str(junk)],
            f"{junk}: truncated or not a torch checkpoint (Unsupported operand 110)",
        ),
        (["-o", str(tmp_path)], f"{tmp_path}: is a directory; give a file name"),
        (["-o", "/proc/x.mp4"], "/proc/x.mp4: cannot write the output: No such file or directory"),
        (["--arkit-csv", str(tmp_path)], f"{tmp_path}: is a directory; give a file name"),
    ]
    for extra, message in cases:
        args = [*base[:3], *extra] if extra[0] == "-o" else [*base, *extra]
        code, err = run_main(args, capsys)
        assert code == 2, (extra, err)
        assert err.startswith(f"emostream: error: {message}"), (extra, err)
        assert err.count("\n") == 1, err
    assert not out.exists()


def _can_mount() -> bool:
    if not shutil.which("unshare"):
        return False
    cmd = ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"]
    return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount(), reason="needs unshare -m and mount (root)")
@pytest.mark.parametrize(
    ("mount_opts", "message"),
    [
        ("ro", "cannot write the output: Read-only file system"),
        ("size=16k", "cannot write mp4: No space left on device"),
    ],
)
def test_read_only_and_full_disk_fail_in_one_line_leaving_nothing(
    tmp_path: Path, mount_opts: str, message: str
) -> None:
    """A private tmpfs (own mount namespace): read-only, or 16 KB, smaller than the video. Was a
    traceback after all the work, and a 64 KB partial mp4 on the full disk."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    csv = _csv(tmp_path)
    render = f"{sys.executable} -m emostream render --motion {csv} -o {mnt}/out.mp4"
    script = f"mount -t tmpfs -o {mount_opts} tmpfs {mnt} && {render}; rc=$?; ls -A {mnt}; exit $rc"
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("INFO: ")]  # TF Lite (issue 16)
    assert lines == [f"emostream: error: {mnt}/out.mp4: {message}"]
    assert proc.stdout.strip() == "", f"left behind: {proc.stdout}"


def test_render_audio_streams_and_matches_the_whole_file_pass(
    tmp_path: Path, sample_wav: Path, render_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18, item 9: the audio is decoded, animated, rendered and written block by block
    (here 1 s blocks); the motion equals the whole-file pass."""
    from emostream.apps import render_audio as ra
    from emostream.apps.render_video import motion_from_audio
    from emostream.media.audio import load_audio
    from emostream.render.factory import create_renderer

    monkeypatch.setattr(ra, "BLOCK", 16000)
    out = tmp_path / "a.mp4"
    rendered: list[int] = []
    done: list[int] = []

    class Counting:  # the analytic renderer, counting the frames it renders
        def __init__(self) -> None:
            self.inner = create_renderer("analytic", None, size=256)
            self.width, self.height = self.inner.width, self.inner.height

        def render(self, motion: np.ndarray) -> np.ndarray:
            rendered.append(len(motion))
            return self.inner.render(motion)

    def progress(seconds: float) -> None:  # frames are rendered (and written) as the audio is read
        done.append(sum(rendered))

    n, motion = ra.render_audio(Counting(), sample_wav, out, seed=3, progress=progress, keep_motion=True)  # type: ignore[arg-type]
    whole = motion_from_audio(load_audio(sample_wav), seed=3)
    assert motion is not None and motion.shape == whole.shape and n == len(whole)
    np.testing.assert_allclose(motion, whole, atol=1e-5)  # chunking never changes the output
    assert len(done) >= 5 and 0 < done[0] < done[1] < done[2] < done[-1] < n, done
    assert out.is_file() and not list(tmp_path.glob("*.part"))
    assert oct(out.stat().st_mode & 0o777) != oct(0o600), "the usual file mode, not mkstemp's"
