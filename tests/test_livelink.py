"""Live Link Face CSV: real header, read by column name, rate detection, resampling, round trips,
and the exact message for every malformed file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from emostream.arkit import BLENDSHAPE_INDEX, MOTION_DIM
from emostream.errors import MotionFileError
from emostream.livelink import BLENDSHAPE_COUNT, LIVELINK_COLUMNS, read_livelink_csv, write_livelink_csv

# The header of a real capture (from public Live Link Face recordings), except that real files
# spell the second column "BlendshapeCount"; both spellings are accepted.
REAL_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,"
    "EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,"
    "MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,"
    "MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,"
    "MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,"
    "CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,"
    "LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll"
)


def _motion(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.random((n, MOTION_DIM)).astype(np.float32)
    m[:, 52:] = (m[:, 52:] - 0.5).astype(np.float32)
    return m


def test_header_matches_the_app() -> None:
    assert ",".join(LIVELINK_COLUMNS) == REAL_HEADER
    assert BLENDSHAPE_COUNT == 61


@pytest.mark.parametrize("fps", [25, 30])
def test_round_trip_is_exact(tmp_path: Path, fps: int) -> None:
    m = _motion(2 * fps + 7)
    eyes = _motion(len(m), 1)[:, :6]
    path = write_livelink_csv(tmp_path / "r.csv", m, fps, eye_rotations=eyes)
    clip = read_livelink_csv(path, fps=fps)
    assert clip.timecode_rate == fps and abs(clip.source_fps - fps) < 1e-6
    assert np.array_equal(clip.motion, m)
    assert np.array_equal(clip.eye_rotations, eyes)
    assert clip.timecodes[fps] == "00:00:01:00.000"


def test_reads_by_name_not_position(tmp_path: Path) -> None:
    m = _motion(30)
    path = write_livelink_csv(tmp_path / "a.csv", m, 30)
    rows = list(csv.reader(path.read_text().splitlines()))
    perm = np.random.default_rng(3).permutation(len(rows[0]))
    shuffled = tmp_path / "b.csv"
    # lowerCamelCase names and the real captures' "BlendshapeCount" spelling are accepted too.
    header = [h[0].lower() + h[1:] if h.startswith("Mouth") else h for h in rows[0]]
    header = ["BlendshapeCount" if h == "BlendShapeCount" else h for h in header]
    with shuffled.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([header[i] for i in perm])
        for r in rows[1:]:
            w.writerow([r[i] for i in perm])
    assert np.array_equal(read_livelink_csv(shuffled, fps=30).motion, m)


def test_60fps_recording_with_30fps_timecode(data_dir: Path) -> None:
    clip = read_livelink_csv(data_dir / "livelink_ok.csv", fps=25)
    assert clip.source_frames == 70 and clip.timecode_rate == 30
    assert clip.source_fps == pytest.approx(60.0)
    assert clip.motion.shape == (29, MOTION_DIM)  # 69/60 s → frames 0..28 at 25 fps
    jaw = clip.motion[:, BLENDSHAPE_INDEX["jawOpen"]]
    expected = (np.arange(29) / 25 * 60) / 69  # the ramp sampled at k/25 s
    np.testing.assert_allclose(jaw, expected, atol=1e-5)
    assert np.allclose(clip.motion[:, BLENDSHAPE_INDEX["eyeBlinkLeft"]], 0.25)


def test_60fps_timecode_rate_detected(tmp_path: Path) -> None:
    rows = []
    for i in range(100):  # 60 fps frames, FF counts to 59, crossing a second boundary
        f = 50 + i
        rows.append([f"01:02:{f // 60:02d}:{f % 60:02d}.000", "61", *(["0.1"] * 61)])
    p = tmp_path / "r60.csv"
    p.write_text("\n".join(",".join(r) for r in [list(LIVELINK_COLUMNS), *rows]) + "\n")
    clip = read_livelink_csv(p, fps=30)
    assert clip.timecode_rate == 60 and clip.source_fps == pytest.approx(60.0)
    assert len(clip.motion) == 50  # 99/60 s → frames 0..49 at 30 fps


def test_swap_mouth_left_right(tmp_path: Path) -> None:
    m = _motion(10)
    path = write_livelink_csv(tmp_path / "s.csv", m, 25)
    # 10 frames never cross a second boundary: the timecode rate cannot be detected, so the
    # requested fps is assumed (a round trip at one fps always works), else 30.
    assert read_livelink_csv(path, fps=25).timecode_rate == 25
    assert read_livelink_csv(path, fps=30).timecode_rate == 30
    swapped = read_livelink_csv(path, swap_mouth_lr=True, timecode_rate=25).motion
    li, ri = BLENDSHAPE_INDEX["mouthLeft"], BLENDSHAPE_INDEX["mouthRight"]
    assert np.array_equal(swapped[:, li], m[:, ri]) and np.array_equal(swapped[:, ri], m[:, li])
    other = [i for i in range(MOTION_DIM) if i not in (li, ri)]
    assert np.array_equal(swapped[:, other], m[:, other])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("livelink_missing_columns.csv", "missing column(s): MouthLeft, TongueOut"),
        ("livelink_extra_column.csv", "unexpected column(s): Confidence"),
        ("livelink_duplicate_column.csv", "duplicate column(s): JawOpen"),
        ("livelink_bad_number.csv", "line 3, column JawOpen: 'abc' is not a number"),
        ("livelink_bad_timecode.csv", "line 4: bad timecode '10:00:00.05' (expected HH:MM:SS:FF.fff)"),
        ("livelink_empty.csv", "file is empty (0 bytes)"),
        ("livelink_header_only.csv", "no data rows after the header"),
    ],
)
def test_malformed_files(data_dir: Path, name: str, message: str) -> None:
    with pytest.raises(MotionFileError) as e:
        read_livelink_csv(data_dir / name)
    assert str(e.value) == f"{data_dir / name}: {message}"


def test_more_malformed(tmp_path: Path) -> None:
    m = _motion(5)
    good = write_livelink_csv(tmp_path / "g.csv", m, 25).read_text().splitlines()
    cases = {
        "short_row.csv": ([*good[:3], good[3].rsplit(",", 1)[0]], "line 4: 62 fields, the header has 63"),
        "stuck.csv": ([*good[:3], good[2]], "line 4: timecode '00:00:00:01.000' does not advance"),
        "blank.csv": (["", "  ", ""], "no header row (the file holds only blank lines)"),
        "not_llf.csv": (["a,b,c", "1,2,3"], None),
    }  # fmt: skip
    for name, (lines, message) in cases.items():
        p = tmp_path / name
        p.write_text("\n".join(lines) + "\n")
        if message is None:
            with pytest.raises(MotionFileError):
                read_livelink_csv(p)
            continue
        with pytest.raises(MotionFileError) as e:
            read_livelink_csv(p)
        assert str(e.value) == f"{p}: {message}"
    with pytest.raises(MotionFileError) as e:
        read_livelink_csv(tmp_path / "not_llf.csv")
    assert str(e.value).startswith(
        f"{tmp_path / 'not_llf.csv'}: not a Live Link Face CSV: missing column(s) Timecode"
    )
    with pytest.raises(MotionFileError) as e:
        read_livelink_csv(tmp_path / "g.csv", timecode_rate=2)
    assert str(e.value) == f"{tmp_path / 'g.csv'}: timecode frame 4 does not fit a 2 fps timecode"
    with pytest.raises(MotionFileError) as e:
        read_livelink_csv(tmp_path / "nope.csv")
    assert str(e.value) == f"{tmp_path / 'nope.csv'}: file not found"
    with pytest.raises(MotionFileError) as e:
        read_livelink_csv(tmp_path)
    assert str(e.value) == f"{tmp_path}: is a directory, not a Live Link Face CSV"


def test_non_finite_value(tmp_path: Path) -> None:
    lines = write_livelink_csv(tmp_path / "g.csv", _motion(3), 25).read_text().splitlines()
    cells = lines[2].split(",")
    cells[LIVELINK_COLUMNS.index("CheekPuff")] = "nan"
    p = tmp_path / "nan.csv"
    p.write_text("\n".join([lines[0], lines[1], ",".join(cells)]) + "\n")
    with pytest.raises(MotionFileError) as e:
        read_livelink_csv(p)
    assert str(e.value) == f"{p}: line 3, column CheekPuff: 'nan' is not finite"
