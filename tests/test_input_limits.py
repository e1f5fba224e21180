"""Bounded memory on hostile images (issue 18, item 2): the pixel count is read from the header
and refused before any pixel is decoded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_inputs import png_bomb

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("bomb") / "bomb.png"
    p.write_bytes(png_bomb())
    return p


PROBE = """
import json, resource, sys, time
from pathlib import Path
from emostream.errors import ImageError
from emostream.streaming.webrtc.portrait import decode_portrait
from emostream.media.image import load_image_rgb

data = Path(sys.argv[1]).read_bytes()
out = {}
cases = [("upload", lambda: decode_portrait(data, "bomb.png")), ("file", lambda: load_image_rgb(sys.argv[1]))]
for name, fn in cases:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    try:
        fn()
        out[name] = {"error": None}
    except ImageError as e:
        out[name] = {"error": str(e)}
    out[name]["seconds"] = time.perf_counter() - t
    out[name]["peak_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps(out))
"""


def test_png_bomb_is_refused_from_its_header_with_bounded_memory(bomb: Path) -> None:
    """A 110 KB PNG claiming 30000×30000 pixels: refused in well under a second with (almost) no
    memory, both as an upload to /portrait and as a --image file. It took 11.7 s and 5.7 GB."""
    assert bomb.stat().st_size < 150_000
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(bomb)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["upload"]["error"] == "bomb.png: image too large (900000000 pixels, limit 16000000)"
    assert got["file"]["error"].endswith(
        "bomb.png: image has 900,000,000 pixels; the limit is 64,000,000 pixels"
    )
    for case in got.values():
        assert case["peak_growth_mb"] < 50, got  # the decoded image would be 2,700 MB
        assert case["seconds"] < 1.0, got
