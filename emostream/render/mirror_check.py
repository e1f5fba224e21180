"""Detect mirrored content in a frame: a reflected border's copy of the face, head or shoulders.

A reflected border (``cv2.BORDER_REFLECT*`` where a crop leaves the photo) makes the frame
mirror-symmetric about the photo's edge: an upside-down copy of the forehead and hair above the
head, of the chin below it, a left-right copy of a cheek, ear or shoulder beside it. The detector
looks for such a line. On the detail layer of the grey frame (grey minus its blur), for every row
and every column ``c`` (and every half-way position) it correlates the band of ``BAND`` × the
frame's long side before ``c``, flipped, with the band after it, across the whole frame
(``mirror``), and subtracts the correlation of the same two bands unflipped (``shift``): content
that does not change across the line (an edge row drawn outwards, a smooth fill, a straight
stripe) matches both ways and scores 0; a reflection scores near 1. Bands with almost no detail
are skipped. Frames are analysed at a long side of at most ``ANALYSIS_SIDE`` px.

Measured (README, "Output framing"): reflected crops of faces near a border score 0.67–0.997; our
frames of the test faces and of faces cut by the photo's edge score at most 0.49.
"""

from __future__ import annotations

import cv2
import numpy as np

BAND = 0.05
ANALYSIS_SIDE = 512
#: Detail layer: grey minus its Gaussian blur at this fraction of the long side.
DETAIL_SIGMA = 0.01
#: Bands whose mean squared detail is below this (grey levels²) are skipped.
MIN_ENERGY = 4.0
#: Scores above this mean mirrored content.
MIRROR_THRESHOLD = 0.6


def _line_scores(d: np.ndarray, k: int) -> float:
    """Best (mirror − shift) correlation over the lines between rows of ``d`` (float32[n, m])."""
    n, m = d.shape
    best = -1.0
    cs = np.arange(n)
    for on_row in (0, 1):  # the axis between two rows, or on a row (reflect-101)
        mir = np.zeros(n)
        sft = np.zeros(n)
        ea = np.zeros(n)
        eb = np.zeros(n)
        valid = (cs - k >= 0) & (cs + k + on_row <= n)
        for j in range(k):
            a = d[np.clip(cs - 1 - j, 0, n - 1)]
            b = d[np.clip(cs + on_row + j, 0, n - 1)]
            a_shift = d[np.clip(cs - k + j, 0, n - 1)]  # the band before, in the same order
            mir += np.einsum("ij,ij->i", a, b)
            sft += np.einsum("ij,ij->i", a_shift, b)
            ea += np.einsum("ij,ij->i", a, a)
            eb += np.einsum("ij,ij->i", b, b)
        ok = valid & (ea > MIN_ENERGY * k * m) & (eb > MIN_ENERGY * k * m)
        if not ok.any():
            continue
        norm = np.sqrt(ea * eb) + 1e-9
        score = mir / norm - np.maximum(sft / norm, 0.0)
        best = max(best, float(score[ok].max()))
    return best


def mirror_score(frame: np.ndarray) -> float:
    """How strongly the RGB ``frame`` is mirror-symmetric about some row or column (−1..1; a
    reflected border: near 1)."""
    h, w = frame.shape[:2]
    k_scale = min(1.0, ANALYSIS_SIDE / max(h, w))
    if k_scale < 1.0:
        frame = cv2.resize(
            frame, (max(1, round(w * k_scale)), max(1, round(h * k_scale))), interpolation=cv2.INTER_AREA
        )
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    side = max(g.shape)
    d = g - cv2.GaussianBlur(g, (0, 0), max(1.0, DETAIL_SIGMA * side))
    k = max(4, int(BAND * side))
    return max(_line_scores(d, k), _line_scores(np.ascontiguousarray(d.T), k))
