"""Live Link Face (Epic's iPhone app) CSV recordings: read and write **by column name**.

A recording has 63 columns: ``Timecode`` (``HH:MM:SS:FF.fff``: timecode frame ``FF`` at the
timecode rate plus a sub-frame fraction), ``BlendShapeCount`` (61 = 52 blendshapes + 9
rotations; real captures spell it ``BlendshapeCount``), the 52 blendshapes in UpperCamelCase
(its Jaw/Mouth Left/Right pairs are ordered JawRight, JawLeft, ..., MouthRight, MouthLeft,
unlike the enum), then ``HeadYaw, HeadPitch, HeadRoll`` and the left/right eye yaw/pitch/roll.
Rotations are taken as radians (ARKit's unit). Column names are matched case-insensitively,
so lowerCamelCase exports are accepted too; their order never matters.

Recordings are usually 60 fps (sometimes irregular); the reader recovers each row's time
from its timecode, measures the recording's rate, and resamples every column linearly onto
the engine's frame grid ``k / fps`` starting at the first row.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, BLENDSHAPE_NAMES, MOTION_DIM, NUM_BLENDSHAPES
from emostream.config import DEFAULT_FPS, check_fps
from emostream.errors import MotionFileError

TIMECODE = "Timecode"
COUNT = "BlendShapeCount"
HEAD_COLUMNS: tuple[str, ...] = ("HeadYaw", "HeadPitch", "HeadRoll")
EYE_COLUMNS: tuple[str, ...] = (
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip


def _upper(name: str) -> str:
    return name[0].upper() + name[1:]


#: The blendshape columns in the order the app writes them (Jaw/Mouth Right before Left).
_APP_BLENDSHAPE_ORDER: tuple[str, ...] = tuple(
    _upper(n)
    for n in (
        *BLENDSHAPE_NAMES[: BLENDSHAPE_INDEX["jawLeft"]], "jawRight", "jawLeft",
        *BLENDSHAPE_NAMES[BLENDSHAPE_INDEX["jawOpen"] : BLENDSHAPE_INDEX["mouthLeft"]],
        "mouthRight", "mouthLeft",
        *BLENDSHAPE_NAMES[BLENDSHAPE_INDEX["mouthSmileLeft"] :],
    )
)  # fmt: skip
#: The full header the app writes (and ``write_livelink_csv`` reproduces).
LIVELINK_COLUMNS: tuple[str, ...] = (TIMECODE, COUNT, *_APP_BLENDSHAPE_ORDER, *HEAD_COLUMNS, *EYE_COLUMNS)
BLENDSHAPE_COUNT = len(_APP_BLENDSHAPE_ORDER) + len(HEAD_COLUMNS) + len(EYE_COLUMNS)  # 61
assert len(LIVELINK_COLUMNS) == 63 and BLENDSHAPE_COUNT == 61
assert sorted(_APP_BLENDSHAPE_ORDER) == sorted(_upper(n) for n in BLENDSHAPE_NAMES)

#: Timecode rates the reader considers (the app offers these).
TIMECODE_RATES: tuple[int, ...] = (24, 25, 30, 48, 50, 60)
#: Tie-break when the recording never crosses a second boundary (all rates fit equally well),
#: after the requested fps: the app's usual 30 fps timecode first.
_RATE_PREFERENCE: tuple[int, ...] = (30, 60, 25, 24, 50, 48)
_TC_RE = re.compile(r"^\s*(\d{1,2}):(\d{2}):(\d{2})[:;](\d{1,3})(?:\.(\d+))?\s*$")


@dataclass(frozen=True)
class LiveLinkClip:
    """A recording resampled to the engine's frame grid."""

    path: str
    motion: np.ndarray  # float32[T, MOTION_DIM]: 52 blendshapes (enum order) + yaw, pitch, roll (rad)
    eye_rotations: np.ndarray  # float32[T, 6]: left yaw/pitch/roll, right yaw/pitch/roll (rad)
    fps: int  # the grid of ``motion``
    source_fps: float  # measured rate of the recording
    timecode_rate: int  # rate of the FF field in the timecodes
    timecodes: tuple[str, ...]  # the recording's original timecodes, one per source row
    source_frames: int
    columns: tuple[str, ...]  # header as found in the file

    @property
    def duration_s(self) -> float:
        return len(self.motion) / self.fps


def _parse_timecode(text: str) -> tuple[int, float] | None:
    """``HH:MM:SS:FF.fff`` → (whole seconds, fractional frame FF.fff); None if malformed."""
    m = _TC_RE.match(text)
    if m is None:
        return None
    hh, mm, ss, ff, frac = m.groups()
    if int(mm) > 59 or int(ss) > 59:
        return None
    sub = float(f"0.{frac}") if frac else 0.0
    return int(hh) * 3600 + int(mm) * 60 + int(ss), int(ff) + sub


def _detect_timecode_rate(secs: np.ndarray, frames: np.ndarray, prefer: int) -> int:
    """The timecode rate that makes the row times most regular (smallest spread of steps).
    Only rates above the largest frame number seen are possible; ties (a recording that never
    crosses a second boundary) go to ``prefer``, then to the order of ``_RATE_PREFERENCE``."""
    order = (prefer, *(r for r in _RATE_PREFERENCE if r != prefer))
    candidates = [r for r in order if r > frames.max()]
    if not candidates:
        return int(np.ceil(frames.max() + 1))
    if len(secs) < 3:
        return candidates[0]
    best, best_spread = candidates[0], np.inf
    for r in candidates:
        steps = np.diff(secs + frames / r)
        spread = float(np.std(steps) / max(np.median(steps), 1e-9)) if np.all(steps > 0) else np.inf
        if spread < best_spread - 1e-6:
            best, best_spread = r, spread
    return best


def read_livelink_csv(
    path: str | Path, *, fps: int = DEFAULT_FPS, swap_mouth_lr: bool = False, timecode_rate: int | None = None
) -> LiveLinkClip:
    """Read a Live Link Face CSV and resample it to ``fps``. ``swap_mouth_lr`` swaps the
    MouthLeft/MouthRight columns (some app versions record them mirrored). The timecode rate
    is detected from the timecodes; a recording shorter than one second never shows it (then
    ``fps`` is assumed if the frame numbers fit, else 30, 60, ...), so pass ``timecode_rate``
    when it is known."""
    check_fps(fps)
    p = Path(path)
    if not p.exists():
        raise MotionFileError("file not found", p)
    if p.is_dir():
        raise MotionFileError("is a directory, not a Live Link Face CSV", p)
    if p.stat().st_size == 0:
        raise MotionFileError("file is empty (0 bytes)", p)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise MotionFileError("not a text file (not UTF-8)", p) from e
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise MotionFileError("no header row (the file holds only blank lines)", p)
    header = tuple(c.strip() for c in rows[0])
    _check_header(p, header)
    col = {name.lower(): i for i, name in enumerate(header)}
    data = rows[1:]
    if not data:
        raise MotionFileError("no data rows after the header", p)

    wanted = [*(_upper(n) for n in BLENDSHAPE_NAMES), *HEAD_COLUMNS, *EYE_COLUMNS]
    idx = [col[n.lower()] for n in wanted]
    values = np.empty((len(data), len(wanted)), dtype=np.float64)
    secs = np.empty(len(data), dtype=np.float64)
    frames = np.empty(len(data), dtype=np.float64)
    tcs: list[str] = []
    tc_i = col[TIMECODE.lower()]
    for r, row in enumerate(data):
        line = r + 2
        if len(row) != len(header):
            raise MotionFileError(f"line {line}: {len(row)} fields, the header has {len(header)}", p)
        tc = _parse_timecode(row[tc_i])
        if tc is None:
            raise MotionFileError(f"line {line}: bad timecode {row[tc_i]!r} (expected HH:MM:SS:FF.fff)", p)
        secs[r], frames[r] = tc
        tcs.append(row[tc_i].strip())
        for k, i in enumerate(idx):
            try:
                values[r, k] = float(row[i])
            except ValueError:
                raise MotionFileError(
                    f"line {line}, column {header[i]}: {row[i]!r} is not a number", p
                ) from None
            if not np.isfinite(values[r, k]):
                raise MotionFileError(f"line {line}, column {header[i]}: {row[i]!r} is not finite", p)

    rate = _detect_timecode_rate(secs, frames, fps) if timecode_rate is None else int(timecode_rate)
    if frames.max() >= rate:
        raise MotionFileError(f"timecode frame {int(frames.max())} does not fit a {rate} fps timecode", p)
    # Times relative to the first row, in seconds (midnight wrap-around handled).
    t = (secs - secs[0]) + (frames - frames[0]) / rate
    t = np.where(t < -43200, t + 86400, t)
    steps = np.diff(t)
    if np.any(steps <= 0):
        bad = int(np.argmax(steps <= 0)) + 3
        raise MotionFileError(f"line {bad}: timecode {tcs[bad - 2]!r} does not advance", p)
    source_fps = float(1.0 / np.median(steps)) if len(t) > 1 else float(fps)

    n_out = int(np.floor(t[-1] * fps + 1e-6)) + 1
    grid = np.arange(n_out, dtype=np.float64) / fps
    res = np.stack([np.interp(grid, t, values[:, k]) for k in range(values.shape[1])], axis=1)
    motion = res[:, :MOTION_DIM].astype(np.float32)
    if swap_mouth_lr:
        li, ri = BLENDSHAPE_INDEX["mouthLeft"], BLENDSHAPE_INDEX["mouthRight"]
        motion[:, [li, ri]] = motion[:, [ri, li]]
    return LiveLinkClip(
        path=str(p), motion=motion, eye_rotations=res[:, MOTION_DIM:].astype(np.float32), fps=fps,
        source_fps=source_fps, timecode_rate=rate, timecodes=tuple(tcs), source_frames=len(data),
        columns=header,
    )  # fmt: skip


def _check_header(p: Path, header: tuple[str, ...]) -> None:
    lower = [h.lower() for h in header]
    dups = sorted({h for h, lo in zip(header, lower, strict=True) if lower.count(lo) > 1})
    if dups:
        raise MotionFileError(f"duplicate column(s): {', '.join(dups)}", p)
    expected = {c.lower(): c for c in LIVELINK_COLUMNS}
    expected["blendshapecount"] = COUNT
    present = set(lower)
    missing = [c for c in LIVELINK_COLUMNS if c.lower() not in present]
    extra = [h for h, lo in zip(header, lower, strict=True) if lo not in expected]
    if missing and extra:
        raise MotionFileError(
            f"not a Live Link Face CSV: missing column(s) {', '.join(missing)}; "
            f"unexpected column(s) {', '.join(extra)}",
            p,
        )
    if missing:
        raise MotionFileError(f"missing column(s): {', '.join(missing)}", p)
    if extra:
        raise MotionFileError(f"unexpected column(s): {', '.join(extra)}", p)


def format_timecode(frame_index: int, fps: int) -> str:
    """Timecode of frame ``frame_index`` on an ``fps`` grid, ``HH:MM:SS:FF.000`` (exact)."""
    secs, ff = divmod(frame_index, fps)
    mm, ss = divmod(secs, 60)
    hh, mm = divmod(mm, 60)
    return f"{hh % 24:02d}:{mm:02d}:{ss:02d}:{ff:02d}.000"


def write_livelink_csv(
    path: str | Path, motion: np.ndarray, fps: int = DEFAULT_FPS, *, eye_rotations: np.ndarray | None = None
) -> Path:
    """Write float[T, 55] motion (enum order + head yaw/pitch/roll in radians) as a Live Link
    Face CSV with the app's header and column order; eye rotations default to zero."""
    check_fps(fps)
    m = np.asarray(motion, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != MOTION_DIM:
        raise ValueError(f"motion must be float[T, {MOTION_DIM}], got shape {m.shape}")
    eyes = np.zeros((len(m), len(EYE_COLUMNS))) if eye_rotations is None else np.asarray(eye_rotations, float)
    if eyes.shape != (len(m), len(EYE_COLUMNS)):
        raise ValueError(f"eye_rotations must be float[{len(m)}, 6], got shape {eyes.shape}")
    by_name = {_upper(n): m[:, i] for i, n in enumerate(BLENDSHAPE_NAMES)}
    by_name.update({c: m[:, NUM_BLENDSHAPES + k] for k, c in enumerate(HEAD_COLUMNS)})
    by_name.update({c: eyes[:, k] for k, c in enumerate(EYE_COLUMNS)})
    value_cols = LIVELINK_COLUMNS[2:]
    table = np.stack([by_name[c] for c in value_cols], axis=1)
    p = Path(path)
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(LIVELINK_COLUMNS)
        for i, row in enumerate(table):
            w.writerow([format_timecode(i, fps), BLENDSHAPE_COUNT, *(repr(float(v)) for v in row)])
    return p
