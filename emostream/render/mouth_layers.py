"""The textures of the inner mouth, built once per portrait in the photo's own crop pixels.

Each ``Layer`` is a premultiplied RGBA image over the mouth's box in the source crop, carried
from frame to frame by one part of the head: the skull (upper teeth, gums and the cavity behind
them), the jaw (lower teeth) or the tongue (the jaw, pushed forward by tongueOut). Its pixels,
grain included, are fixed: a frame only moves them (see mouth.py), so teeth never swim or
shimmer.

Two sources:
- ``procedural_layers``: teeth along the rig's dental arch, single teeth suggested by soft
  shading only (no outlines), darker towards the corners and the gums, in tones taken from the
  photo (``PhotoLook``: eye whites and skin for the teeth, the lips for gums, tongue and cavity,
  never darker than the photo's own black level), blurred to the photo's sharpness and given a
  fixed grain of the photo's strength;
- ``photo_layers``: the photo's own open mouth, split along the darkest row between the teeth
  (upper part to the skull, lower part to the jaw), extended past the lips by inpainting it into
  a darkening gum band, so a mouth opened wider than in the photo still shows its own teeth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emostream.render import topology as tp
from emostream.render.photo_look import LUMA, PhotoLook, grain_sigma, luma

#: Tooth boundaries along the arch, in head-frame x at the front (incisors narrow, then wider).
TOOTH_EDGES = np.array([-0.30, -0.20, -0.13, -0.065, 0.0, 0.065, 0.13, 0.20, 0.30])
#: Height of the upper / lower crowns (head-frame units, eye-corner distance = 1).
CROWN = (0.11, 0.10)
#: Interproximal shading: depth and half-width (fraction of a tooth) of the darker seam.
SEAM_DEPTH, SEAM_WIDTH = 0.1, 0.18
#: Brightness lost at the arch's ends (the corners of the mouth) and at the gum line.
CORNER_DARK, CERVICAL_DARK = 0.5, 0.15
#: Fixed seed of the grain textures (one stream per layer); the grain is scaled by lightness
#: relative to the skin's, down to ``GRAIN_FLOOR`` of it.
GRAIN_SEED = 16
GRAIN_FLOOR = 0.6
#: Lightness of the cavity relative to the lips, floored at the photo's black level.
CAVITY, TONGUE, GUM = 0.25, 0.75, 0.8
#: A photo counts as showing its mouth open when the inner lips are this far apart (× mouth width)
#: and the opening differs from the lips in lightness by ``OPEN_CONTRAST`` (0-255).
OPEN_GAP, OPEN_CONTRAST, OPEN_MIN_PX = 0.06, 12.0, 40


@dataclass(frozen=True)
class Layer:
    rgba: np.ndarray  # float32[h, w, 4], premultiplied, in source crop px at ``origin``
    carrier: str  # "skull" | "jaw" | "tongue"


@dataclass(frozen=True)
class MouthBox:
    """The mouth's box in the source crop (x0, y0, w, h) and the layers' common pixel grid."""

    x0: int
    y0: int
    w: int
    h: int

    @property
    def origin(self) -> np.ndarray:
        return np.array([self.x0, self.y0], np.float64)

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[0 : self.h, 0 : self.w].astype(np.float32)
        return xx + self.x0, yy + self.y0


def arch(x: np.ndarray, y: float, z0: float) -> np.ndarray:
    """3D points on the dental arch (head frame): it curves back towards the sides."""
    return np.stack([x, np.full_like(x, y), z0 + 1.4 * x**2], -1)


def _interp_curve(pts: np.ndarray, xs: np.ndarray, values: np.ndarray) -> np.ndarray:
    o = np.argsort(pts[:, 0])
    return np.asarray(np.interp(xs, pts[o, 0], values[o]))


def _grain(shape: tuple[int, int], seed: int, look: PhotoLook) -> np.ndarray:
    """float32[h, w]: a fixed grain field whose high-pass σ is the photo's."""
    if look.grain <= 0.0:
        return np.zeros(shape, np.float32)
    g = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    g = np.asarray(cv2.GaussianBlur(g, (0, 0), max(0.35, 0.5 * look.blur)), np.float32)
    s = grain_sigma(g * 50.0, np.ones(shape, bool)) / 50.0
    return np.asarray(g * (look.grain / max(s, 1e-6)), np.float32)


def _finish(rgb: np.ndarray, alpha: np.ndarray, look: PhotoLook, seed: int, blur: bool) -> np.ndarray:
    """float32[h, w, 4] premultiplied: blurred to the photo's sharpness, grain added."""
    rgba = np.concatenate([rgb * alpha[..., None], alpha[..., None]], -1).astype(np.float32)
    if blur:
        # the per-frame bilinear warp and the mask's edge add about 0.5 px of blur of their own
        s = float(np.sqrt(max(look.blur**2 - 0.5**2, 0.0)))
        if s > 0.2:
            rgba = np.asarray(cv2.GaussianBlur(rgba, (0, 0), s), np.float32)
    g = _grain(alpha.shape, seed, look)
    # grain in proportion to lightness (as a photo's own: shadows carry less of it), the same
    # value on every channel
    # multiplicative (each channel in proportion), so a toned photo's grain stays on its tone
    # curve and a grey one's stays grey
    lum = rgba[..., :3] @ LUMA.astype(np.float32)  # premultiplied lightness
    skin_l = max(float(look.skin @ LUMA), 1.0)
    scale = np.clip(lum / np.maximum(rgba[..., 3], 1e-3) / skin_l, GRAIN_FLOOR, 1.0)
    rgba[..., :3] *= (1.0 + g * scale / np.maximum(lum / np.maximum(rgba[..., 3], 1e-3), 1.0))[..., None]
    return np.ascontiguousarray(rgba)


@dataclass(frozen=True)
class Tones:
    tooth: np.ndarray
    gum: np.ndarray
    cavity: np.ndarray
    tongue: np.ndarray

    @classmethod
    def from_look(cls, look: PhotoLook) -> Tones:
        skin_l, white_l = float(look.skin @ LUMA), float(look.white @ LUMA)
        lip_l = float(look.lip @ LUMA)
        tooth = look.scaled(0.5 * look.white + 0.5 * look.skin, min(max(white_l, skin_l), 235.0))
        cavity = look.scaled(look.lip, max(CAVITY * lip_l, look.black + 4.0))
        return cls(
            tooth=tooth, gum=look.scaled(look.lip, GUM * lip_l), cavity=cavity,
            tongue=look.scaled(look.lip, TONGUE * lip_l),
        )  # fmt: skip


def photo_mouth_open(crop: np.ndarray, landmarks: np.ndarray) -> bool:
    """Whether the photo shows its mouth open: the inner lips part by ``OPEN_GAP`` × the mouth's
    width, over at least ``OPEN_MIN_PX`` pixels that differ in lightness from the lips."""
    lm = landmarks[:, :2].astype(np.float64)
    width = float(np.linalg.norm(lm[tp.MOUTH_CORNER_LEFT] - lm[tp.MOUTH_CORNER_RIGHT]))
    up, lo = np.array(tp.LIP_UPPER_INNER[3:8]), np.array(tp.LIP_LOWER_INNER[3:8])
    gap = float(np.median(lm[lo, 1] - lm[up, 1]))
    if gap < OPEN_GAP * width:
        return False
    inner = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(
        inner, [np.round(lm[list(tp.LIP_UPPER_INNER + tp.LIP_LOWER_INNER[::-1])]).astype(np.int32)], 1
    )
    inner = np.asarray(cv2.erode(inner, np.ones((3, 3), np.uint8)), np.uint8)
    if inner.sum() < OPEN_MIN_PX:
        return False
    lips = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(
        lips, [np.round(lm[list(tp.LIP_LOWER_OUTER + tp.LIP_LOWER_INNER[::-1])]).astype(np.int32)], 1
    )
    gray = luma(crop)
    inside = gray[inner > 0]
    lip_l = float(np.median(gray[lips > 0])) if lips.any() else float(np.median(inside))
    differs = np.abs(inside - lip_l) > OPEN_CONTRAST
    return bool(differs.mean() > 0.5)


def procedural_layers(
    box: MouthBox, project: dict[str, np.ndarray], look: PhotoLook, tones: Tones, scale: float
) -> list[Layer]:
    """Cavity, tongue, lower and upper teeth (back to front), in source crop px.

    ``project``: the neutral projections (crop px, float[N, 2]) of the head-frame curves named
    ``upper_edge``, ``upper_gum``, ``lower_edge``, ``lower_gum`` (41 points each along
    ``TOOTH_EDGES``), ``tongue`` (an ellipse ring) and ``centre`` (the mouth's middle)."""
    xx, yy = box.grid()
    px = 1.0  # antialiasing width (px)
    layers = []
    # cavity: darkest in the middle of the mouth (the throat), lighter towards the lips
    c = project["centre"][0]
    hw = 0.5 * float(np.ptp(project["upper_edge"][:, 0]))
    d = np.clip(((xx - c[0]) / max(hw, 1.0)) ** 2 + ((yy - c[1]) / max(0.2 * scale, 1.0)) ** 2, 0, 1)
    rgb = tones.cavity * (0.55 + 0.45 * d)[..., None]
    layers.append(Layer(_finish(rgb, np.ones_like(d), look, GRAIN_SEED, True), "skull"))
    # tongue: a soft, rounded body, lighter on top
    ring = project["tongue"]
    tc = ring.mean(0)
    rx, ry = max(float(np.ptp(ring[:, 0])) / 2, 1.0), max(float(np.ptp(ring[:, 1])) / 2, 1.0)
    r = np.sqrt(((xx - tc[0]) / rx) ** 2 + ((yy - tc[1]) / ry) ** 2)
    a = np.clip((1.0 - r) * min(rx, ry) / px, 0, 1)
    lit = 0.75 + 0.25 * np.clip(1.0 - r, 0, 1) - 0.15 * np.clip((yy - tc[1]) / ry, 0, 1)
    groove = 1.0 - 0.08 * np.exp(-(((xx - tc[0]) / (0.08 * rx)) ** 2))
    layers.append(
        Layer(_finish(tones.tongue * (lit * groove)[..., None], a, look, GRAIN_SEED + 1, True), "tongue")
    )
    for row, sign, seed in (("lower", 1.0, GRAIN_SEED + 2), ("upper", -1.0, GRAIN_SEED + 3)):
        edge, gum = project[f"{row}_edge"], project[f"{row}_gum"]
        xh = np.linspace(TOOTH_EDGES[0], TOOTH_EDGES[-1], len(edge))
        x = xx[0]
        inside = (x >= edge[:, 0].min()) & (x <= edge[:, 0].max())
        t = _interp_curve(edge, x, xh)  # head-frame x along the arch, per column
        ye, yg = _interp_curve(edge, x, edge[:, 1]), _interp_curve(gum, x, gum[:, 1])
        height = np.maximum(np.abs(ye - yg), 1.0)
        # v: 0 at the gum line, 1 at the biting edge
        v = (yy - yg[None, :]) / (ye - yg + 1e-9 * sign)[None, :]
        k = np.interp(t, TOOTH_EDGES, np.arange(len(TOOTH_EDGES), dtype=np.float64))
        frac = k - np.floor(k)
        seam = np.minimum(frac, 1.0 - frac)
        # each crown's biting edge is rounded at its sides (a slight scallop, no outline)
        v_end = (1.0 - 0.06 * np.exp(-((seam / 0.2) ** 2)))[None, :]
        a_tooth = np.clip((v_end - v) * height[None, :] + 0.5 * px, 0, 1)
        corner = 1.0 - CORNER_DARK * np.clip(np.abs(t) / TOOTH_EDGES[-1], 0, 1) ** 2
        per_col = (1.0 - SEAM_DEPTH * np.exp(-((seam / SEAM_WIDTH) ** 2))) * corner
        per_col *= 1.0 + 0.04 * np.cos(2.3 * np.floor(k) + (1.0 if row == "upper" else 0.0))
        shade = per_col[None, :] * (1.0 - CERVICAL_DARK * np.clip(1.0 - v, 0, 1) ** 2)
        # above the crowns (below, for the lower row) the gum, hidden by the lip until it lifts
        gz = np.clip(-v * height[None, :] / max(3.0, 0.4 * float(height.mean())), 0, 1)[..., None]
        rgb = (
            tones.tooth * shade[..., None] * (1 - gz)
            + tones.gum * (corner[None, :] * np.ones_like(v))[..., None] * gz
        )
        a = a_tooth * (v > -1.5) * inside[None, :]
        layers.append(
            Layer(_finish(rgb, a.astype(np.float32), look, seed, True), "jaw" if row == "lower" else "skull")
        )
    return layers


def photo_layers(
    box: MouthBox, crop: np.ndarray, landmarks: np.ndarray, look: PhotoLook, tones: Tones
) -> tuple[list[Layer], np.ndarray]:
    """The photo's own open mouth as (upper part → skull, lower part → jaw) layers over a cavity
    in the photo's own darkest interior tone. Also returns that cavity colour."""
    lm = landmarks[:, :2].astype(np.float64) - box.origin
    roi = np.ascontiguousarray(crop[box.y0 : box.y0 + box.h, box.x0 : box.x0 + box.w])
    inner = np.zeros((box.h, box.w), np.uint8)
    opening = lm[list(tp.LIP_UPPER_INNER + tp.LIP_LOWER_INNER[::-1])]
    cv2.fillPoly(inner, [np.round(opening * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    inside = inner > 0
    gray = luma(roi)
    cavity = tones.cavity
    dark = gray[inside] <= np.percentile(gray[inside], 10)
    if dark.any():
        own = np.median(roi[inside][dark].astype(np.float64), 0)
        # the photo's own hue at the procedural cavity's lightness (its darkest corners would
        # read as black outlines around the teeth)
        cavity = look.scaled(own, float(cavity @ LUMA))
    # split below the upper teeth: per column, the end of the first bright run under the upper
    # lip (the teeth, brighter than Otsu's threshold of the opening); teeth down to the lower lip
    # all belong to the upper row (the lower lip then covers the lower teeth)
    ys = np.arange(box.h, dtype=np.float64)
    g = cv2.GaussianBlur(gray, (0, 0), 0.7)
    thr, _ = cv2.threshold(np.clip(gray[inside], 0, 255).astype(np.uint8)[None], 0, 255,
                           cv2.THRESH_BINARY + cv2.THRESH_OTSU)  # fmt: skip
    cols = np.nonzero(inside.any(0))[0]
    split = np.full(box.w, np.nan)
    for x in cols:
        rows = np.nonzero(inside[:, x])[0]
        lo, hi = int(rows[0]), int(rows[-1])
        bright = g[lo : hi + 1, x] > thr
        if not bright.any():  # no teeth in this column (a dark corner): it follows its neighbours
            continue
        r0 = int(np.argmax(bright))
        dark = np.nonzero(~bright[r0:])[0]
        split[x] = lo + r0 + (int(dark[0]) if len(dark) else hi - lo - r0 + 1)
    all_cols, cols = cols, cols[np.isfinite(split[cols])]
    if not len(cols):  # no teeth at all: the whole opening goes with the jaw
        split[:] = 0.0
    else:
        s = split[cols]
        s = cv2.medianBlur(s.astype(np.float32)[None], 5)[0] if len(s) >= 5 else s
        k = max(3, len(s) // 8) | 1
        s = cv2.blur(s.astype(np.float32)[None], (k, 1), borderType=cv2.BORDER_REPLICATE)[0]
        split = np.interp(np.arange(box.w), cols, s)
    upper = inside & (ys[:, None] < split[None, :])
    lower = inside & ~upper
    dist_scale = max(2.0, 0.05 * look.iod)
    x_lo, x_hi = (all_cols.min(), all_cols.max()) if len(all_cols) else (0, box.w - 1)
    xs = np.arange(box.w, dtype=np.float64)
    fade_x = np.clip(1.0 - np.maximum(x_lo - xs, xs - x_hi) / dist_scale, 0, 1)
    layers = []
    for part, above, carrier in ((lower, False, "jaw"), (upper, True, "skull")):
        if not part.any():
            continue
        fill = cv2.inpaint(roi, (~part).astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32)
        dist = cv2.distanceTransform((~part).astype(np.uint8), cv2.DIST_L2, 3)
        keep = np.exp(-dist / dist_scale)[..., None]
        # away from the photo's own pixels the extension darkens into the gums and the cavity
        rgb = fill * keep + (tones.gum * 0.7) * (1 - keep)
        # a soft edge along the split (1 px), the photo's own pixels kept exactly inside
        side = np.clip(split[None, :] - ys[:, None] + 0.5, 0, 1)
        side = side if above else 1.0 - side
        alpha = (side * fade_x[None, :]).astype(np.float32)
        if not above:  # below the photo's own lower part it fades into the procedural lower teeth
            alpha *= keep[..., 0]
        rgb[part] = roi[part]
        rgba = np.concatenate([rgb * alpha[..., None], alpha[..., None]], -1).astype(np.float32)
        layers.append(Layer(np.ascontiguousarray(rgba), carrier))
    return layers, cavity
