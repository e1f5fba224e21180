"""Face detection and dense (468-point) 3D landmarks, offline, on CPU.

Choice and licences: the models are the TFLite files bundled in the ``mediapipe==0.10.21`` wheel
(Apache-2.0): ``face_detection_short_range.tflite`` / ``face_detection_full_range_sparse.tflite``
(BlazeFace) and ``face_landmark.tflite`` (468-vertex face mesh, x/y in pixels plus a relative
depth z). That mediapipe version pins numpy < 2, so it is installed with ``pip install --no-deps
mediapipe==0.10.21`` and never imported: its files are located with
``importlib.util.find_spec("mediapipe")`` and run by ``ai_edge_litert``'s interpreter. The
alternative, dlib's 68-point predictor, is sparser (no eyelid/inner-lip detail for blinks and lip
gaps) and its training data (iBUG 300-W) exclude commercial use.

Pipeline (as mediapipe's own graph): letterbox → BlazeFace (anchors, sigmoid scores, weighted
NMS) → rotated square ROI (eye line horizontal, 1.5× box) → landmark model → a second pass on the
ROI derived from the landmarks themselves (refinement, and what tracking uses on video).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from emostream.errors import DependencyError, ImageError
from emostream.native_logs import quiet_stderr
from emostream.render import topology as tp
from emostream.render.rig import load_rig

log = logging.getLogger(__name__)

NUM_LANDMARKS = 468
#: Smallest face (inter-ocular distance in pixels) we accept.
MIN_EYE_DISTANCE_PX = 20.0
#: Smallest image side that can hold a usable face: two eyes MIN_EYE_DISTANCE_PX apart need a
#: face about 2.5x that wide (smaller images are "too small", not "no face found").
MIN_IMAGE_SIDE_PX = int(2.5 * MIN_EYE_DISTANCE_PX)
#: |yaw| beyond this (estimated from the landmarks) is a profile view; three-quarter views pass.
MAX_SOURCE_YAW_DEG = 50.0

_SETUP_HINT = "install the bundled models with: pip install --no-deps mediapipe==0.10.21"


@cache
def mediapipe_dir() -> Path:
    """Folder of the installed (never imported) mediapipe package."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(f"face models not found; {_SETUP_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def model_path(rel: str) -> Path:
    p = mediapipe_dir() / "modules" / rel
    if not p.is_file():
        raise DependencyError(f"face model {p} is missing; {_SETUP_HINT}")
    return p


class _TFLite:
    """One interpreter per model, single-threaded, guarded by a lock (interpreters are not reentrant)."""

    def __init__(self, path: Path) -> None:
        # deferred: ai-edge-litert (heavy), loaded on the first face detection
        from ai_edge_litert.interpreter import Interpreter

        with quiet_stderr():  # TF Lite announces its XNNPACK delegate on fd 2
            self._it = Interpreter(model_path=str(path), num_threads=1)
            self._it.allocate_tensors()
        self._in = self._it.get_input_details()[0]["index"]
        self._out = [d["index"] for d in self._it.get_output_details()]
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            self._it.set_tensor(self._in, x.astype(np.float32)[None])
            self._it.invoke()
            return [self._it.get_tensor(i)[0].copy() for i in self._out]


@cache
def _model(rel: str) -> _TFLite:
    return _TFLite(model_path(rel))


# ----------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class Detection:
    """A face box and 6 keypoints (right eye, left eye, nose, mouth, right ear, left ear) in pixels."""

    box: np.ndarray  # float32[4] x0, y0, x1, y1
    keypoints: np.ndarray  # float32[6, 2]
    score: float

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


def _anchors(size: int, strides: tuple[int, ...], per_layer: tuple[int, ...]) -> np.ndarray:
    """SSD anchor centres (mediapipe's fixed-size anchors), float32[N, 2] in [0, 1]."""
    out = []
    layer = 0
    while layer < len(strides):
        stride, count = strides[layer], per_layer[layer]
        while layer + 1 < len(strides) and strides[layer + 1] == stride:
            layer += 1
            count += per_layer[layer]
        n = -(-size // stride)
        ys, xs = np.mgrid[0:n, 0:n]
        c = np.stack([(xs + 0.5) / n, (ys + 0.5) / n], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, count, axis=1).reshape(-1, 2))
        layer += 1
    return np.concatenate(out).astype(np.float32)


_DETECTORS = {
    # name: (model file, input size, anchors)
    "short": ("face_detection/face_detection_short_range.tflite", 128, ((8, 16, 16, 16), (2, 2, 2, 2))),
    "full": ("face_detection/face_detection_full_range_sparse.tflite", 192, ((4,), (1,))),
}


def _letterbox(img: np.ndarray, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    h, w = img.shape[:2]
    scale = size / max(h, w)
    nh, nw = round(h * scale), round(w * scale)
    canvas = np.zeros((size, size, 3), np.uint8)
    oy, ox = (size - nh) // 2, (size - nw) // 2
    canvas[oy : oy + nh, ox : ox + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return canvas, scale, np.array([ox, oy], np.float32)


def detect_faces(img: np.ndarray, *, threshold: float = 0.5) -> list[Detection]:
    """All faces in an RGB uint8 image, largest first (short-range model, then full-range)."""
    for name in ("short", "full"):
        rel, size, (strides, per_layer) = _DETECTORS[name]
        canvas, scale, offset = _letterbox(img, size)
        reg, cls = _model(rel)(canvas.astype(np.float32) / 127.5 - 1.0)
        anchors = _anchors(size, strides, per_layer)
        scores = 1.0 / (1.0 + np.exp(-np.clip(cls[:, 0], -50, 50)))
        keep = np.nonzero(scores >= threshold)[0]
        if keep.size == 0:
            continue
        r = reg[keep] / size
        a = anchors[keep]
        cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], 1)
        kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
        dets = _weighted_nms(boxes * size, kps * size, scores[keep])
        out = [
            Detection(
                box=((b.reshape(2, 2) - offset) / scale).reshape(4).astype(np.float32),
                keypoints=((k - offset) / scale).astype(np.float32),
                score=s,
            )
            for b, k, s in dets
        ]
        return sorted(out, key=lambda d: -d.area)
    return []


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return np.asarray(inter / (area(box) + area(boxes) - inter + 1e-9))


def _weighted_nms(
    boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, iou: float = 0.3
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    used = np.zeros(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if used[i]:
            continue
        grp = (~used) & (_iou(boxes[i], boxes) >= iou)
        used |= grp
        w = scores[grp][:, None]
        out.append(
            (
                (boxes[grp] * w).sum(0) / w.sum(),
                (kps[grp] * w[:, :, None]).sum(0) / w.sum(),
                float(scores[i]),
            )
        )
    return out


# ----------------------------------------------------------------------------- landmarks


@dataclass(frozen=True)
class Roi:
    """A rotated square region: centre (px), side (px), rotation (radians, counter-clockwise)."""

    center: np.ndarray  # float32[2]
    size: float
    angle: float

    def affine(self, out: int) -> np.ndarray:
        """float64[2, 3] mapping image pixels into an ``out``×``out`` crop of this ROI."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        k = out / self.size
        # rotate by +angle about the centre (undoing the face's roll), scale, centre in crop
        m = np.array([[c * k, -s * k], [s * k, c * k]])
        t = np.array([out / 2, out / 2]) - m @ self.center
        return np.hstack([m, t[:, None]])


def _roi_from_points(center: np.ndarray, extent: float, p_right: np.ndarray, p_left: np.ndarray) -> Roi:
    # image y points down; roll of the line from the subject's right eye to left eye
    angle = float(np.arctan2(p_left[1] - p_right[1], p_left[0] - p_right[0]))
    return Roi(center.astype(np.float32), float(extent), -angle)


def roi_from_detection(det: Detection, scale: float = 1.5) -> Roi:
    c = (det.box[:2] + det.box[2:]) / 2
    side = max(det.box[2] - det.box[0], det.box[3] - det.box[1]) * scale
    return _roi_from_points(c, side, det.keypoints[0], det.keypoints[1])


def roi_from_landmarks(lm: np.ndarray, scale: float = 1.5) -> Roi:
    """The ROI mediapipe tracks with: landmark box in the eye-aligned frame, ×1.5, square."""
    p_r, p_l = lm[33, :2], lm[263, :2]
    angle = float(np.arctan2(p_l[1] - p_r[1], p_l[0] - p_r[0]))
    c, s = np.cos(-angle), np.sin(-angle)
    rot = np.array([[c, -s], [s, c]])
    q = lm[:, :2] @ rot.T
    lo, hi = q.min(0), q.max(0)
    center = ((lo + hi) / 2) @ rot
    side = float(max(hi - lo)) * scale
    return Roi(center.astype(np.float32), side, -angle)


LANDMARK_INPUT = 192


def landmarks_in_roi(img: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
    """float32[468, 3] landmarks (x, y px in ``img``; z in the same pixel scale) and face presence."""
    m = roi.affine(LANDMARK_INPUT)
    crop = cv2.warpAffine(
        img, m, (LANDMARK_INPUT, LANDMARK_INPUT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    raw, flag = _model("face_landmark/face_landmark.tflite")(crop.astype(np.float32) / 255.0)
    pts = raw.reshape(NUM_LANDMARKS, 3)
    inv = cv2.invertAffineTransform(m)
    xy = pts[:, :2] @ inv[:, :2].T + inv[:, 2]
    z = pts[:, 2] * (roi.size / LANDMARK_INPUT)
    presence = float(1.0 / (1.0 + np.exp(-float(flag.reshape(-1)[0]))))
    return np.concatenate([xy, z[:, None]], 1).astype(np.float32), presence


#: Landmarks used for the pose fit: all but the face outline, whose far side follows the
#: silhouette (not fixed points on the head) once the face turns.
_POSE_POINTS = np.setdiff1d(np.arange(NUM_LANDMARKS), np.array(tp.FACE_OVAL))
#: The affine fit reads turned faces short (the landmark model under-rotates): on faces of known
#: yaw (render/turn.py: astronaut and Grace Hopper turned 0-45 deg) it reads 0.83 x the truth.
YAW_GAIN = 1.2


def estimate_yaw_deg(lm: np.ndarray) -> float:
    """Head yaw in degrees (0 = frontal; > 0 = the face turned towards the image's right, the
    rig's convention) from a fit of the rig's 3D reference face to the 2D landmarks.

    An affine camera ``x = A X + t`` (least squares over ``_POSE_POINTS``) is fitted to the
    reference shape X; its two rows, made orthonormal, are the first two rows of the head
    rotation, their cross product the third, and the yaw is read from that rotation
    (``R = R_y R_x R_z``), times ``YAW_GAIN``. Checked against faces of known yaw in
    tests/test_render_yaw.py (within 6 deg up to 45 deg)."""
    ref = load_rig().reference.astype(np.float64)[_POSE_POINTS]
    x = np.c_[ref, np.ones(len(ref))]
    a, *_ = np.linalg.lstsq(x, lm[_POSE_POINTS, :2].astype(np.float64), rcond=None)
    a = a[:3].T  # [2, 3]
    r1 = a[0] / np.linalg.norm(a[0])
    r2 = a[1] - r1 * np.dot(r1, a[1])
    r2 /= np.linalg.norm(r2)
    r3 = np.cross(r1, r2)
    return float(YAW_GAIN * np.degrees(np.arctan2(-r1[2], r3[2])))


def detect_landmarks(
    img: np.ndarray, *, path: str | Path | None = None, check_pose: bool = True
) -> np.ndarray:
    """The dense landmarks of the largest face (float32[468, 3]) or an ImageError saying why not.

    ``check_pose=False`` skips the profile check (it needs the rig asset; build_rig has none yet)."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ImageError(f"expected an RGB uint8 image, got shape {img.shape} {img.dtype}", path)
    h, w = img.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE_PX:
        raise ImageError(
            f"image too small for a face ({w}x{h} px; need at least {MIN_IMAGE_SIDE_PX} px per side)", path
        )
    dets = detect_faces(img)
    if not dets:
        raise ImageError("no face found in the image", path)
    if len(dets) > 1:
        log.warning("%d faces found; using the largest", len(dets))
    det = dets[0]
    # a turned face brings the eyes together, so its size is also read from the box: 0.4 × the box
    # width stays below a frontal face's eye distance (0.43-0.48 × on the test faces)
    eye_dist = max(
        float(np.linalg.norm(det.keypoints[0] - det.keypoints[1])), 0.4 * float(det.box[2] - det.box[0])
    )
    if eye_dist < MIN_EYE_DISTANCE_PX:
        raise ImageError(
            f"the face is too small ({eye_dist:.0f} px between the eyes, need >= {MIN_EYE_DISTANCE_PX:.0f})",
            path,
        )
    lm, presence = landmarks_in_roi(img, roi_from_detection(det))
    lm, presence = landmarks_in_roi(img, roi_from_landmarks(lm))
    if presence < 0.5:
        raise ImageError(f"no face found in the image (landmark confidence {presence:.2f})", path)
    yaw = estimate_yaw_deg(lm) if check_pose else 0.0
    if abs(yaw) > MAX_SOURCE_YAW_DEG:
        raise ImageError(
            f"the face is in profile (yaw about {yaw:.0f} deg); use a frontal or three-quarter "
            f"portrait (|yaw| <= {MAX_SOURCE_YAW_DEG:.0f} deg)",
            path,
        )
    return lm


def track_landmarks(img: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, float]:
    """Landmarks on a video frame from the previous frame's landmarks (no detector run)."""
    lm, presence = landmarks_in_roi(img, roi_from_landmarks(previous))
    return lm, presence


# ----------------------------------------------------------------------------- eyelids (iris model)

IRIS_INPUT = 64
#: The iris model's first 16 eye-contour points: lower lid 0..8 (outer → inner corner), upper 9..15.
EYE_LOWER_SLICE = slice(0, 9)
EYE_UPPER_SLICE = slice(9, 16)


def eyelid_contours(img: np.ndarray, lm: np.ndarray) -> list[np.ndarray]:
    """Refined eyelid contours from mediapipe's iris/eye-contour model (``iris_landmark.tflite``),
    run on a crop around each eye (2.3× the corner distance, eye line horizontal; the left eye is
    mirrored, as the model expects a right eye). Returns [right, left], each float32[16, 2] in
    image px: lower lid 0..8, upper lid 9..15."""
    out = []
    for corners, flip in (((33, 133), False), ((263, 362), True)):
        p0, p1 = lm[corners[0], :2], lm[corners[1], :2]
        ang = float(np.arctan2(p1[1] - p0[1], p1[0] - p0[0]))
        if flip:  # outer → inner runs right-to-left for the left eye
            ang = float(np.arctan2(p0[1] - p1[1], p0[0] - p1[0]))
        roi = Roi(((p0 + p1) / 2).astype(np.float32), float(np.linalg.norm(p1 - p0)) * 2.3, -ang)
        m = roi.affine(IRIS_INPUT)
        crop = cv2.warpAffine(
            img, m, (IRIS_INPUT, IRIS_INPUT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        if flip:
            crop = crop[:, ::-1]
        contour, _ = _model("iris_landmark/iris_landmark.tflite")(crop.astype(np.float32) / 255.0)
        pts = contour.reshape(71, 3)[:16, :2].copy()
        if flip:
            pts[:, 0] = IRIS_INPUT - pts[:, 0]
        inv = cv2.invertAffineTransform(m)
        out.append((pts @ inv[:, :2].T + inv[:, 2]).astype(np.float32))
    return out
