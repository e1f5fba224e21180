"""Rendering evaluation: drive a scripted motion, re-detect landmarks on every rendered frame.

Metrics (JSON):
- ``lip_gap_corr``: Pearson r of the re-detected inner-lip gap (13–14, ÷ eye-corner distance) with
  the commanded jawOpen over the jaw sweep;
- ``blink_closure``: 1 − (eye opening at full blink ÷ eye opening at rest), both eyes; the opening
  is the lid distance across the eye (three central pairs) from mediapipe's eye-contour model
  (``iris_landmark.tflite``, run on each eye as mediapipe does);
- ``blink_control``: the same measurement on a closed eye made without the renderer: the source
  crop with each eye opening (between its lid contours, +1 px) inpainted from the surrounding skin
  (``cv2.inpaint``, Telea) and a lash line drawn where the lids meet. It is what the detector
  reports on this face when no eye is visible: where it is well below 1 (the eye-contour model
  keeps part of an eye-shaped opening on a lidded, skin-filled eye, most on the faces with
  glasses), a low ``blink_closure`` is a limit of the measurement, not only of the renderer;
- ``smile_corr``: r of the mouth-corner lift (lip centre y − corner y, ÷ eye distance) with the
  commanded smile over the smile segment;
- ``source_yaw_deg``: the photo's own yaw (``face.estimate_yaw_deg``; three-quarter views are
  accepted up to ``MAX_SOURCE_YAW_DEG``);
- ``head_yaw_corr``: r of the yaw estimated from the landmarks with the commanded yaw;
- ``background_mae``: mean |Δ| (0–255) against the source of pixels far outside the face (outside
  the warp ring, 8 px margin), over all frames;
- ``flicker``: mean |Δ| between consecutive frames of a static segment (the whole frame);
- ``ms_per_frame_256`` / ``ms_per_frame_512``: CPU time per rendered frame (``process_time``, one
  thread; robust to other load on the machine);
- ``mirror_score``: the mirrored-content detector (render/mirror_check.py) at its worst over the
  face crop and the whole-photo frame, still and with the head turned (below
  ``MIRROR_THRESHOLD``: no mirrored copy); ``mirror_score_reflected``: the same detector on the
  crop made with a reflected border instead (high where the crop reaches past the photo: the
  detector's control).
- the mouth interior's colour, detail and stability against the photo (``mouth_*``,
  ``interior_*``, ``skin_chroma``, ``photo_tone_spread``): see render/eval_mouth.py.

The contact sheet (neutral, jaw open, "oo", smile, blink, sad brows, head left/right) is written
as a PNG per face.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, HEAD_SLICE
from emostream.arkit import motion_vector as _vec
from emostream.render import topology as tp
from emostream.render.analytic import AnalyticRenderer
from emostream.render.eval_mouth import MouthMetrics, evaluate_mouth
from emostream.render.face import (
    EYE_LOWER_SLICE,
    EYE_UPPER_SLICE,
    detect_landmarks,
    estimate_yaw_deg,
    eyelid_contours,
    track_landmarks,
)
from emostream.render.framing import Framing
from emostream.render.mirror_check import mirror_score
from emostream.render.portrait import Portrait, prepare_portrait


def _ramp(n: int) -> np.ndarray:
    """0 → 1 → 0 over n frames."""
    return np.asarray(np.sin(np.linspace(0, np.pi, n)) ** 2, np.float32)


VISEMES = (
    {"jawOpen": 0.6},
    {"mouthPucker": 1.0, "jawForward": 0.6, "jawOpen": 0.2},
    {"mouthFunnel": 1.0},
    {
        "mouthPressLeft": 0.8,
        "mouthPressRight": 0.8,
        "mouthDimpleLeft": 1.0,
        "mouthDimpleRight": 1.0,
        "jawOpen": 0.3,
    },
    {"mouthRollLower": 0.8, "mouthRollUpper": 0.8, "mouthUpperUpLeft": 0.3, "mouthUpperUpRight": 0.3},
)

SHEET_POSES: tuple[tuple[str, np.ndarray], ...] = (
    ("neutral", _vec()),
    ("jaw open", _vec(jawOpen=1.0)),
    ("oo", _vec(mouthFunnel=1.0, mouthPucker=0.4, jawOpen=0.25)),
    ("smile", _vec(mouthSmileLeft=1.0, mouthSmileRight=1.0, cheekSquintLeft=0.5, cheekSquintRight=0.5)),
    ("blink", _vec(eyeBlinkLeft=1.0, eyeBlinkRight=1.0)),
    (
        "sad brows",
        _vec(browInnerUp=1.0, browDownLeft=0.3, browDownRight=0.3, mouthFrownLeft=0.6, mouthFrownRight=0.6),
    ),
    ("head left", _vec(yaw=-0.3)),
    ("head right", _vec(yaw=0.3)),
)


@dataclass(frozen=True)
class Script:
    motion: np.ndarray  # float32[T, 55]
    segments: dict[str, slice]


def scripted_motion() -> Script:
    parts: list[np.ndarray] = []
    seg: dict[str, slice] = {}

    def add(name: str, frames: np.ndarray) -> None:
        start = sum(len(p) for p in parts)
        parts.append(frames)
        seg[name] = slice(start, start + len(frames))

    add("static", np.repeat(_vec()[None], 12, 0))
    add("jaw", np.stack([_vec(jawOpen=float(w)) for w in _ramp(31)]))
    add("visemes", np.stack([_vec(**v) for v in VISEMES for _ in range(4)]))
    add(
        "blink",
        np.stack(
            [
                _vec(eyeBlinkLeft=float(w), eyeBlinkRight=float(w))
                for w in np.concatenate([_ramp(9), _ramp(9)])
            ]
        ),
    )
    add("smile", np.stack([_vec(mouthSmileLeft=float(w), mouthSmileRight=float(w)) for w in _ramp(21)]))
    add(
        "brows",
        np.stack(
            [
                _vec(browInnerUp=float(w), browOuterUpLeft=float(w), browOuterUpRight=float(w))
                for w in _ramp(15)
            ]
        ),
    )
    add("yaw", np.stack([_vec(yaw=float(a)) for a in 0.35 * np.sin(np.linspace(0, 2 * np.pi, 31))]))
    add("pitch", np.stack([_vec(pitch=float(a)) for a in 0.25 * np.sin(np.linspace(0, 2 * np.pi, 21))]))
    add("roll", np.stack([_vec(roll=float(a)) for a in 0.25 * np.sin(np.linspace(0, 2 * np.pi, 21))]))
    return Script(np.concatenate(parts).astype(np.float32), seg)


@dataclass(frozen=True)
class RenderMetrics:
    lip_gap_corr: float
    blink_closure: float
    blink_control: float
    smile_corr: float
    source_yaw_deg: float
    head_yaw_corr: float
    background_mae: float
    flicker: float
    ms_per_frame_256: float
    ms_per_frame_512: float
    fold_guard_min_alpha: float
    mirror_score: float
    mirror_score_reflected: float
    mouth: MouthMetrics

    def to_dict(self) -> dict[str, float]:
        d = {k: round(float(v), 4) for k, v in asdict(self).items() if k != "mouth"}
        return d | self.mouth.to_dict()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def lid_opening(frame: np.ndarray, lm: np.ndarray) -> float:
    """Mean lid distance (px) of both eyes from mediapipe's dedicated eye-contour model (the
    face-mesh model itself barely follows closed lids): the three central upper/lower pairs,
    measured across the eye."""
    vals = []
    for c in eyelid_contours(frame, lm):
        lower, upper = c[EYE_LOWER_SLICE], c[EYE_UPPER_SLICE]
        axis = lower[-1] - lower[0]
        axis /= np.linalg.norm(axis) + 1e-9
        normal = np.array([-axis[1], axis[0]])
        vals += [abs(float(np.dot(lower[k + 1] - upper[k], normal))) for k in (2, 3, 4)]
    return float(np.mean(vals))


def eye_opening(lms: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
    """float[T]: lid distance across the eye (perpendicular to the corner-to-corner line), mean of
    the three central upper/lower landmark pairs, in px."""
    axis = lms[:, upper[-1], :2] - lms[:, upper[0], :2]
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    normal = np.stack([-axis[:, 1], axis[:, 0]], 1)
    d = [np.abs(((lms[:, lower[k], :2] - lms[:, upper[k], :2]) * normal).sum(1)) for k in (3, 4, 5)]
    return np.asarray(np.mean(d, axis=0))


def closed_eye_control(crop: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """uint8[S, S, 3]: ``crop`` with both eyes closed by inpainting, not by the renderer (see
    ``blink_control``): each opening between the lid contours (dilated 1 px) is filled from the
    surrounding skin and a lash line (the opening's 10th-percentile colour, 1.2 % of the
    eye-corner distance wide) is drawn where the lids meet (30 % of the way up from the lower lid)."""
    xy = lm[:, :2].astype(np.float64)
    iod = float(np.linalg.norm(xy[tp.EYE_LEFT_CORNERS[1]] - xy[tp.EYE_RIGHT_CORNERS[0]]))
    mask = np.zeros(crop.shape[:2], np.uint8)
    lines = []
    for up, lo in ((tp.EYE_RIGHT_UPPER, tp.EYE_RIGHT_LOWER), (tp.EYE_LEFT_UPPER, tp.EYE_LEFT_LOWER)):
        u, lw = xy[list(up)], xy[list(lo)]
        cv2.fillPoly(mask, [np.round(np.concatenate([u, lw[::-1]])).astype(np.int32)], 255)
        lines.append(0.3 * u + 0.7 * lw)
    opening = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    lash = np.percentile(crop[opening > 0], 10, axis=0)
    out = np.asarray(cv2.inpaint(crop, opening, 3, cv2.INPAINT_TELEA), np.uint8)
    for line in lines:
        cv2.polylines(out, [np.round(line * 16).astype(np.int32)], False, lash.tolist(),
                      max(1, round(0.012 * iod)), cv2.LINE_AA, 4)  # fmt: skip
    return out


def _time_render(r: AnalyticRenderer, motion: np.ndarray) -> float:
    r.render(motion[:3])  # warm-up
    t0 = time.process_time()
    for i in range(len(motion)):
        r.render(motion[i : i + 1])
    return (time.process_time() - t0) * 1000 / len(motion)


def contact_sheet(r: AnalyticRenderer, title: str = "") -> np.ndarray:
    frames = r.render(np.stack([m for _, m in SHEET_POSES]))
    tiles = []
    for (name, _), f in zip(SHEET_POSES, frames, strict=True):
        f = np.ascontiguousarray(f)
        s = f.shape[0] / 256
        cv2.putText(
            f,
            name,
            (6, int(20 * s)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * s,
            (255, 255, 255),
            max(1, int(2 * s)),
            cv2.LINE_AA,
        )
        cv2.putText(
            f,
            name,
            (6, int(20 * s)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * s,
            (20, 20, 20),
            max(1, int(s)),
            cv2.LINE_AA,
        )
        tiles.append(f)
    rows = [np.concatenate(tiles[i : i + 4], 1) for i in range(0, len(tiles), 4)]
    sheet = np.concatenate(rows, 0)
    if title:
        band = np.full((28, sheet.shape[1], 3), 255, np.uint8)
        cv2.putText(band, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        sheet = np.concatenate([band, sheet], 0)
    return sheet


#: Poses for the mirror check: still, head turned both ways with the jaw open, head tilted.
MIRROR_POSES = np.stack(
    [_vec(), _vec(yaw=0.4, jawOpen=0.5), _vec(yaw=-0.4, pitch=0.25), _vec(roll=0.25, pitch=-0.25)]
)


def mirror_scores(portrait: Portrait) -> tuple[float, float]:
    """(worst mirror score of our frames, the score of the crop with a reflected border)."""
    frames = [
        *AnalyticRenderer(portrait, framing=Framing(crop="face")).render(MIRROR_POSES),
        *AnalyticRenderer(portrait, framing=Framing(crop="photo")).render(MIRROR_POSES),
    ]
    s = portrait.size
    reflected = cv2.warpAffine(portrait.image, portrait.crop_affine, (s, s), borderMode=cv2.BORDER_REFLECT101)
    return max(mirror_score(f) for f in frames), mirror_score(reflected)


def evaluate_render(img: np.ndarray, *, sheet_path: Path | None = None, name: str = "") -> RenderMetrics:
    cv2.setNumThreads(1)
    script = scripted_motion()
    portrait = prepare_portrait(img, 256)
    r = AnalyticRenderer(portrait)
    frames = np.empty((len(script.motion), 256, 256, 3), np.uint8)
    alphas = []
    for i, m in enumerate(script.motion):
        frames[i] = r.render(m[None])[0]
        alphas.append(r.last_alpha)
    # re-detect on every frame (tracking from the previous frame, as on video)
    lm = detect_landmarks(portrait.crop)
    marks = []
    for f in frames:
        lm, _ = track_landmarks(f, lm)
        marks.append(lm)
    lms = np.stack(marks)
    iod = np.linalg.norm(lms[:, tp.EYE_LEFT_CORNERS[1], :2] - lms[:, tp.EYE_RIGHT_CORNERS[0], :2], axis=1)
    gap = np.linalg.norm(lms[:, tp.LIP_LOWER_MID, :2] - lms[:, tp.LIP_UPPER_MID, :2], axis=1) / iod
    eye = np.array([lid_opening(f, x) for f, x in zip(frames, lms, strict=True)]) / iod
    centre_y = (lms[:, tp.LIP_UPPER_MID, 1] + lms[:, tp.LIP_LOWER_MID, 1]) / 2
    corner_y = (lms[:, tp.MOUTH_CORNER_LEFT, 1] + lms[:, tp.MOUTH_CORNER_RIGHT, 1]) / 2
    lift = (centre_y - corner_y) / iod
    yaw_est = np.array([estimate_yaw_deg(x) for x in lms])
    seg, mot = script.segments, script.motion
    jaw = seg["jaw"]
    lip_gap_corr = _corr(gap[jaw], mot[jaw, BLENDSHAPE_INDEX["jawOpen"]])
    blink = seg["blink"]
    w_blink = mot[blink, BLENDSHAPE_INDEX["eyeBlinkLeft"]]
    rest = float(np.median(eye[seg["static"]]))
    closed = float(np.mean(eye[blink][w_blink >= 0.97]))
    blink_closure = 1.0 - closed / rest
    lm0 = detect_landmarks(portrait.crop)
    rest0 = lid_opening(portrait.crop, lm0)
    control = closed_eye_control(portrait.crop, portrait.landmarks)
    blink_control = 1.0 - lid_opening(control, track_landmarks(control, lm0)[0]) / rest0
    sm = seg["smile"]
    smile_corr = _corr(lift[sm], mot[sm, BLENDSHAPE_INDEX["mouthSmileLeft"]])
    yw = seg["yaw"]
    head_yaw_corr = _corr(yaw_est[yw], mot[yw, HEAD_SLICE.start])
    ring = r.warp.ring_mask(feather=1.0)
    far = cv2.dilate((ring > 0.01).astype(np.uint8), np.ones((17, 17), np.uint8)) == 0
    diff = np.abs(frames.astype(np.int16) - portrait.crop.astype(np.int16))
    background_mae = float(diff[:, far].mean()) if far.any() else 0.0
    st = frames[seg["static"]].astype(np.int16)
    flicker = float(np.abs(np.diff(st, axis=0)).mean())
    ms256 = _time_render(r, mot)
    r512 = AnalyticRenderer(prepare_portrait(img, 512))
    ms512 = _time_render(r512, mot)
    mirror, mirror_reflected = mirror_scores(portrait)
    mouth = evaluate_mouth(r512)
    if sheet_path is not None:
        sheet_path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sheet_path), contact_sheet(r512, name)[:, :, ::-1])
    return RenderMetrics(
        lip_gap_corr=lip_gap_corr, blink_closure=blink_closure, blink_control=blink_control,
        smile_corr=smile_corr,
        source_yaw_deg=estimate_yaw_deg(portrait.landmarks), head_yaw_corr=head_yaw_corr,
        background_mae=background_mae, flicker=flicker,
        ms_per_frame_256=ms256, ms_per_frame_512=ms512, fold_guard_min_alpha=float(min(alphas)), mouth=mouth,
        mirror_score=mirror, mirror_score_reflected=mirror_reflected,
    )  # fmt: skip
