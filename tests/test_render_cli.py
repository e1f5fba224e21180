"""``emostream render`` and ``emostream eval render`` end to end (small inputs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from render_fixtures import *  # noqa: F403  (pytest fixtures)
from render_fixtures import vec

from emostream.cli import main
from emostream.errors import ConfigError
from emostream.livelink import write_livelink_csv
from emostream.render.factory import create_renderer


def _csv(tmp_path: Path, n: int = 12) -> Path:
    m = np.stack([vec(jawOpen=float(w), yaw=0.1 * float(w)) for w in np.linspace(0, 1, n)])
    return write_livelink_csv(tmp_path / "m.csv", m, 25)


def test_render_livelink_csv_to_mp4(
    tmp_path: Path, render_cache: None, capsys: pytest.CaptureFixture[str]
) -> None:
    import av

    out = tmp_path / "out.mp4"
    main(["render", "--motion", str(_csv(tmp_path)), "-o", str(out), "--crop", "face"])
    assert "12 frames" in capsys.readouterr().out
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (v.width, v.height) == (256, 256)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 12
    assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 1  # the mouth opened


def test_render_outputs_the_whole_photo_by_default(
    tmp_path: Path, render_cache: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The portrait's own framing: Luis Pedro Coelho's 300 x 377 photo as 300 x 376 (even), or
    capped by --max-side."""
    import av

    from emostream.render.portrait import FACES_DIR

    photo = FACES_DIR / "luispedro.jpg"
    for extra, wh in (([], (300, 376)), (["--max-side", "200"], (158, 200))):
        out = tmp_path / "photo.mp4"
        main(["render", "--motion", str(_csv(tmp_path, 3)), "--image", str(photo), "-o", str(out), *extra])
        assert f"{wh[0]}x{wh[1]}" in capsys.readouterr().out
        with av.open(str(out)) as c:
            assert (c.streams.video[0].width, c.streams.video[0].height) == wh


def test_render_argument_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["render", "-o", str(tmp_path / "x.mp4")])
    assert e.value.code == 2
    assert "exactly one of --motion" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["render", "--motion", str(_csv(tmp_path)), "--emotion", "happy", "-o", str(tmp_path / "x.mp4")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["render", "--motion", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "x.mp4")])
    assert e.value.code == 2
    assert "missing.csv" in capsys.readouterr().err


def test_render_from_audio_runs_the_full_pipeline(tmp_path: Path, sample_wav: Path) -> None:
    """Default weights: speech in, an mp4 with H.264 + AAC covering the speech, and its ARKit CSV."""
    import av

    from emostream.livelink import read_livelink_csv
    from emostream.streaming.audio_io import audio_info

    out, csv = tmp_path / "a.mp4", tmp_path / "a.csv"
    cmd = ["render", "--audio", str(sample_wav), "--emotion", "happy:0.8", "--seed", "3",
           "-o", str(out), "--arkit-csv", str(csv)]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "emostream", *cmd], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    duration = audio_info(sample_wav).duration_s
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, a.codec_context.name) == ("h264", "aac")
        n_frames = sum(1 for _ in c.decode(video=0))
    assert abs(n_frames - duration * 25) <= 2
    motion = read_livelink_csv(csv).motion
    assert abs(len(motion) - n_frames) <= 2
    jaw = motion[:, 17]  # jawOpen moves while the sample speaks
    assert jaw.max() > 0.2 and jaw.std() > 0.05


def test_factory_errors(render_cache: None) -> None:
    with pytest.raises(ConfigError, match="unknown renderer"):
        create_renderer("magic", None)
    with pytest.raises(ConfigError, match="--checkpoint"):
        create_renderer("fomm", None)
    r = create_renderer("analytic", None, size=256)
    assert (r.height, r.width) == (256, 256)


def test_eval_render_json(tmp_path: Path, render_cache: None, capsys: pytest.CaptureFixture[str]) -> None:
    main(["eval", "render", "--image", "astronaut", "--sheets", str(tmp_path), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert set(res) >= {
        "lip_gap_corr", "blink_closure", "blink_control", "smile_corr", "head_yaw_corr", "background_mae",
        "flicker", "ms_per_frame_256", "ms_per_frame_512", "mouth_chroma", "skin_chroma",
        "mouth_hue_diff_deg", "photo_tone_spread", "mouth_tone_dist", "mouth_colour_ok",
        "interior_sharpness_rel", "interior_noise_rel", "interior_detail_ok", "interior_temporal_mad",
        "source_yaw_deg", "mirror_score", "mirror_score_reflected",
    }  # fmt: skip
    assert res["mirror_score"] < 0.6  # emostream.render.mirror_check.MIRROR_THRESHOLD
    assert res["lip_gap_corr"] > 0.9 and res["head_yaw_corr"] > 0.9 and res["smile_corr"] > 0.8
    assert res["background_mae"] < 2 and res["flicker"] < 1
    assert (tmp_path / "astronaut.png").stat().st_size > 10_000
    assert res["interior_temporal_mad"] < 1  # the interior holds still while the jaw does
    assert abs(res["source_yaw_deg"]) < 10


def test_eval_render_sheets_before_after(tmp_path: Path, render_cache: None) -> None:
    from emostream.render.sheets import read_sheet

    before, after = tmp_path / "before", tmp_path / "after"
    main(["eval", "render", "--image", "astronaut", "--sheets", str(before), "--sheets-only"])
    sheet = read_sheet(before / "astronaut.png")
    assert sheet.shape[1] == 4 * 512  # 512² tiles, four to a row
    main(["eval", "render", "--image", "astronaut", "--image", "hopper_sepia", "--sheets", str(after),
          "--sheets-only", "--before", str(before), "--strip", str(tmp_path / "strip.jpg")])  # fmt: skip
    assert (after / "overview.png").is_file() and (after / "hopper_sepia.png").is_file()
    pair = read_sheet(after / "astronaut-before-after.png")
    assert pair.shape[0] == 2 * (sheet.shape[0] + 28)  # before over after, each under a label band
    assert not (after / "hopper_sepia-before-after.png").exists()  # no earlier sheet for it
    assert (after / "overview-before-after.png").is_file()
    strip = read_sheet(tmp_path / "strip.jpg")
    assert strip.shape == (2 * (160 + 28), 5 * 160, 3)  # astronaut before + after, five poses


@pytest.mark.parametrize("command", ["render", "demo", "stream", "camera", "serve"])
def test_framing_options_are_checked_before_anything_loads(
    command: str, tmp_path: Path, sample_wav: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command that makes frames takes --crop / --max-side and rejects a bad value in one
    line with exit code 2 (in-process, so a model load would show as a slow test)."""
    extra = {
        "render": ["--motion", str(_csv(tmp_path, 2)), "-o", str(tmp_path / "x.mp4")],
        "stream": ["--audio", str(sample_wav), "--out", str(tmp_path / "x.mp4")],
        "camera": ["--audio", str(sample_wav)],
    }.get(command, [])
    bad_options = ((["--crop", "square"], "unknown crop 'square'"), (["--max-side", "10"], "--max-side"))
    for bad, message in bad_options:
        with pytest.raises(SystemExit) as e:
            main([command, *extra, *bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("emostream: error: ") and message in err and err.count("\n") == 1
