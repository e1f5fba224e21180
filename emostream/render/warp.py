"""A dense, fold-free, piecewise-affine warp of the portrait crop driven by the 468 keypoints.

Mesh: the face-mesh triangles, plus triangle strips that fill the eye and mouth openings (so
lids can close over the eye and lips can part), plus a band of quads from the face oval to a
static ring ``RING_SCALE`` × the oval around its centre. Everything outside the ring (hair,
shoulders, background) maps to itself exactly.

Per frame, the backward map (output pixel → source pixel) is exact per triangle: each driven
triangle's affine map back to its source triangle, selected through a triangle-id raster of the
driven mesh on a coarse grid (``cv2.fillConvexPoly``), upsampled as a *displacement* (so the
identity outside the ring stays exact), then ``cv2.remap``. The map is fold-free when no driven
triangle is flipped against its source triangle: ``fold_guard`` finds the largest fraction
α ∈ (0, 1] of the motion that keeps every triangle's orientation (bisection), which is 1 for all
rig motions within range. The Jacobian determinant of the backward map in a triangle is
area(source) / area(driven) > 0; source triangles are kept non-degenerate by opening closed eye and
mouth contours by ``MIN_OPENING_PX`` in the source keypoints.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.spatial import Delaunay

from emostream.render import topology as tp

RING_SCALE = 1.55
#: Per-round damping of folded vertices' displacement in ``fold_guard``.
SHRINK = 0.8
MIN_OPENING_PX = 0.6
_SHIFT = 4  # fixed-point bits for cv2 rasterisation


def strip_triangles(upper: tuple[int, ...], lower: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Triangles filling the opening between two contours that share their end points."""
    assert upper[0] == lower[0] and upper[-1] == lower[-1] and len(upper) == len(lower)
    n = len(upper)
    tris = [(upper[0], upper[1], lower[1])]
    for i in range(1, n - 2):
        tris.append((upper[i], upper[i + 1], lower[i + 1]))
        tris.append((upper[i], lower[i + 1], lower[i]))
    tris.append((upper[n - 2], upper[n - 1], lower[n - 2]))
    return tris


def opening_pairs() -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    return [
        (tp.LIP_UPPER_INNER, tp.LIP_LOWER_INNER),
        (tp.EYE_RIGHT_UPPER, tp.EYE_RIGHT_LOWER),
        (tp.EYE_LEFT_UPPER, tp.EYE_LEFT_LOWER),
    ]


def regularize_source(kp: np.ndarray) -> np.ndarray:
    """Open eye/mouth contours that touch or cross (in the source) to ``MIN_OPENING_PX``, so no
    source triangle of the fills is degenerate. Moves points by at most a pixel."""
    kp = np.array(kp, np.float64, copy=True)
    for up, lo in opening_pairs():
        u, lw = np.array(up[1:-1]), np.array(lo[1:-1])
        gap = kp[lw, 1] - kp[u, 1]
        short = gap < MIN_OPENING_PX
        mid = (kp[lw, 1] + kp[u, 1]) / 2
        kp[u, 1] = np.where(short, mid - MIN_OPENING_PX / 2, kp[u, 1])
        kp[lw, 1] = np.where(short, mid + MIN_OPENING_PX / 2, kp[lw, 1])
    return kp


#: Points inserted on every eye-lid and inner-lip contour edge, so the Delaunay mesh keeps those
#: edges (a conforming triangulation): the openings are then filled only by triangles between
#: their own contours, which collapse when a lid or the lips close.
CONTOUR_SUBDIVISION = 3


def contour_extras() -> tuple[np.ndarray, np.ndarray]:
    """(pairs int64[E, 2], t float64[E]): extra point k = (1 − t) · p[a] + t · p[b]."""
    pairs, ts = [], []
    for up, lo in opening_pairs():
        for contour in (up, lo):
            for a, b in itertools.pairwise(contour):
                for k in range(1, CONTOUR_SUBDIVISION):
                    pairs.append((a, b))
                    ts.append(k / CONTOUR_SUBDIVISION)
    return np.array(pairs, np.int64), np.array(ts, np.float64)


def select_control_points(face: np.ndarray, min_dist_iod: float = 0.05) -> np.ndarray:
    """Indices of the landmarks the warp mesh uses: every eye, lip and brow contour point, the
    face oval and nose tip, then the other landmarks greedily, skipping any closer than
    ``min_dist_iod`` × the eye-corner distance to one already taken (the projected 3D mesh has
    slivers that would fold under any motion; a 2D Delaunay mesh of well-spaced points has none).
    """
    iod = float(np.linalg.norm(face[tp.EYE_LEFT_CORNERS[1]] - face[tp.EYE_RIGHT_CORNERS[0]]))
    first: list[int] = []
    for group in (
        tp.LIP_UPPER_INNER, tp.LIP_LOWER_INNER, tp.EYE_RIGHT_UPPER, tp.EYE_RIGHT_LOWER,
        tp.EYE_LEFT_UPPER, tp.EYE_LEFT_LOWER,
    ):  # fmt: skip
        first += [i for i in group if i not in first]
    chosen = list(first)
    tree_pts = [face[i] for i in chosen]
    second = [*tp.LIP_UPPER_OUTER, *tp.LIP_LOWER_OUTER, *tp.BROW_RIGHT_UPPER, *tp.BROW_RIGHT_LOWER,
              *tp.BROW_LEFT_UPPER, *tp.BROW_LEFT_LOWER, *tp.FACE_OVAL, tp.NOSE_TIP]  # fmt: skip
    rest = second + [i for i in range(len(face)) if i not in second]
    min_d = min_dist_iod * iod
    for i in rest:
        if i in chosen:
            continue
        if np.min(np.linalg.norm(np.asarray(tree_pts) - face[i], axis=1)) >= min_d:
            chosen.append(i)
            tree_pts.append(face[i])
    return np.array(sorted(chosen), dtype=np.int64)


def signed_areas(pts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a = pts[..., tris[:, 1], :] - pts[..., tris[:, 0], :]
    b = pts[..., tris[:, 2], :] - pts[..., tris[:, 0], :]
    return np.asarray(0.5 * (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]))


@dataclass
class MeshWarp:
    """The warp of one portrait crop. ``source`` are the (regularised) keypoints in crop px."""

    size: int
    source: np.ndarray  # float64[P, 2]: 468 face points + ring points
    triangles: np.ndarray  # int32[T, 3]
    n_face: int
    n_dynamic: int  # face points + contour extras; the ring after them is static
    step: int  # px between backward-map samples (1 = exact at every pixel)
    extra_pairs: np.ndarray  # int64[E, 2]
    extra_t: np.ndarray  # float64[E]
    #: The fold-free driven points of the last ``backward_map`` call.
    last_points: np.ndarray | None = None

    @classmethod
    def build(cls, face_kp: np.ndarray, size: int, step: int = 1) -> MeshWarp:
        face = regularize_source(face_kp[:, :2])
        oval = np.array(tp.FACE_OVAL)
        center = face[oval].mean(0)
        ring = center + RING_SCALE * (face[oval] - center)
        n = len(face)
        pairs, ts = contour_extras()
        extras = face[pairs[:, 0]] * (1 - ts[:, None]) + face[pairs[:, 1]] * ts[:, None]
        keep = select_control_points(face)
        n_dyn = n + len(extras)
        pts = np.concatenate([face[keep], extras, ring])
        ids = np.concatenate([keep, n + np.arange(len(extras)), n_dyn + np.arange(len(ring))])
        tri = ids[Delaunay(pts).simplices].astype(np.int32)
        src = np.concatenate([face, extras, ring])
        # orient every triangle counter-clockwise in the source (positive signed area)
        neg = signed_areas(src, tri) < 0
        tri[neg] = tri[neg][:, [0, 2, 1]]
        return cls(size=size, source=src, triangles=tri, n_face=n, n_dynamic=n_dyn, step=step,
                   extra_pairs=pairs, extra_t=ts)  # fmt: skip

    def driven_points(self, face_driven: np.ndarray) -> np.ndarray:
        f = np.asarray(face_driven, np.float64)[:, :2]
        t = self.extra_t[:, None]
        extras = f[self.extra_pairs[:, 0]] * (1 - t) + f[self.extra_pairs[:, 1]] * t
        return np.concatenate([f, extras, self.source[self.n_dynamic :]])

    def __post_init__(self) -> None:
        t = self.triangles
        rows = np.concatenate([t[:, 0], t[:, 1], t[:, 2], t[:, 1], t[:, 2], t[:, 0]])
        cols = np.concatenate([t[:, 1], t[:, 2], t[:, 0], t[:, 0], t[:, 1], t[:, 2]])
        n = len(self.source)
        adj = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
        adj.data[:] = 1.0
        deg = np.maximum(np.asarray(adj.sum(1)).ravel(), 1.0)  # vertices off the mesh: 0 rows
        self._avg = (adj.multiply(1.0 / deg[:, None])).tocsr()  # neighbour mean
        on = np.zeros(n, bool)
        for up, lo in opening_pairs():
            on[list(up + lo)] = True
        on[self.n_face : self.n_dynamic] = True  # contour extras
        self._on_opening = on
        self._min_area = np.maximum(0.004 * signed_areas(self.source, t), 1e-4)

    def flipped(self, pts: np.ndarray) -> np.ndarray:
        """bool[T]: triangles folded over (or collapsed below 0.4 % of their source area)."""
        return np.asarray(signed_areas(pts, self.triangles) < self._min_area)

    def fold_guard(self, pts: np.ndarray, iters: int = 40) -> tuple[np.ndarray, float]:
        """Make the driven mesh fold-free. A 2D warp cannot show occlusion, so where the projected
        rig folds (a cheek turning away, lip corners pinched) the motion is fixed locally, round by
        round, on the folded triangles' vertices: lip and lid contour points have their
        displacement scaled by ``SHRINK`` (never mixing motion across an opening), other points
        take their neighbours' mean displacement (smooths a silhouette fold). If it has not
        converged after ``iters`` rounds, the whole motion is scaled by the largest α keeping
        every triangle unflipped (bisection).
        Returns (points, α); α = 1 unless the fallback was needed."""
        bad = self.flipped(pts)
        if not bad.any():
            return pts, 1.0
        d = pts - self.source
        for _ in range(iters):
            verts = np.unique(self.triangles[bad])
            verts = verts[verts < self.n_dynamic]  # the ring stays static
            opening = self._on_opening[verts]
            d[verts[opening]] *= SHRINK
            smooth = verts[~opening]
            d[smooth] = self._avg[smooth] @ d
            bad = self.flipped(self.source + d)
            if not bad.any():
                return self.source + d, 1.0
        lo, hi = 0.0, 1.0
        for _ in range(10):
            mid = (lo + hi) / 2
            if self.flipped(self.source + mid * d).any():
                hi = mid
            else:
                lo = mid
        return self.source + lo * d, lo

    def affines(self, pts: np.ndarray) -> np.ndarray:
        """float64[T, 2, 3]: per triangle, driven px → source px."""
        t = self.triangles
        d = np.ones((len(t), 3, 3))
        d[:, :2, :] = pts[t].transpose(0, 2, 1)
        s = self.source[t].transpose(0, 2, 1)  # [T, 2, 3]
        det = np.linalg.det(d)
        bad = np.abs(det) < 1e-9
        d[bad] = np.eye(3)
        a = s @ np.linalg.inv(d)
        a[bad] = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        return np.asarray(a)

    def _roi(self) -> tuple[int, int, int, int]:
        ring = self.source[self.n_dynamic :]
        x0, y0 = np.maximum(np.floor(ring.min(0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(ring.max(0)).astype(int) + 2, self.size)
        return int(x0), int(y0), int(x1), int(y1)

    def triangle_ids(self, pts: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids int32[h, w], x, y): the driven triangle covering each sample of the ROI grid (-1:
        none) and the samples' pixel coordinates.

        Rasterisation also claims a triangle's boundary cells; triangles are drawn in ``order``
        (most compressed first) so the boundary cells end up with a well-conditioned neighbour,
        whose affine map extrapolates sanely, instead of a collapsed lid or lip triangle's."""
        x0, y0, x1, y1 = self._roi()
        st = self.step
        off = (st - 1) / 2
        nx, ny = -(-(x1 - x0) // st), -(-(y1 - y0) // st)
        ids = np.full((ny, nx), -1, np.int32)
        fixed = np.round((pts - [x0 + off, y0 + off]) / st * (1 << _SHIFT)).astype(np.int32)
        polys = fixed[self.triangles]
        for i in order.tolist():
            cv2.fillConvexPoly(ids, polys[i], i, lineType=cv2.LINE_8, shift=_SHIFT)
        xs = x0 + off + st * np.arange(nx)
        ys = y0 + off + st * np.arange(ny)
        return ids, xs, ys

    def backward_map(self, face_driven: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(map_x, map_y float32[size, size], α) for cv2.remap from driven face keypoints."""
        pts, alpha = self.fold_guard(self.driven_points(face_driven))
        self.last_points = pts
        s = self.size
        a = self.affines(pts)
        stretch = np.abs(a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0])  # source/driven area
        ids, xs, ys = self.triangle_ids(pts, np.argsort(-stretch))
        gx, gy = np.meshgrid(xs, ys)
        sel = ids >= 0
        aa = a[ids[sel]]
        dx: np.ndarray = np.zeros(ids.shape, np.float32)
        dy: np.ndarray = np.zeros(ids.shape, np.float32)
        x, y = gx[sel], gy[sel]
        dx[sel] = aa[:, 0, 0] * x + aa[:, 0, 1] * y + aa[:, 0, 2] - x
        dy[sel] = aa[:, 1, 0] * x + aa[:, 1, 1] * y + aa[:, 1, 2] - y
        x0, y0, x1, y1 = self._roi()
        if self.step != 1:
            w, h = ids.shape[1] * self.step, ids.shape[0] * self.step
            dx = cv2.resize(dx, (w, h), interpolation=cv2.INTER_LINEAR)
            dy = cv2.resize(dy, (w, h), interpolation=cv2.INTER_LINEAR)
        mx = np.tile(np.arange(s, dtype=np.float32), (s, 1))
        my = np.ascontiguousarray(mx.T)
        mx[y0:y1, x0:x1] += dx[: y1 - y0, : x1 - x0]
        my[y0:y1, x0:x1] += dy[: y1 - y0, : x1 - x0]
        return mx, my, alpha

    def ring_mask(self, feather: float = 4.0) -> np.ndarray:
        """float32[size, size] in [0, 1]: 1 inside the static ring (where pixels can move)."""
        m = np.zeros((self.size, self.size), np.uint8)
        ring = self.source[self.n_dynamic :]
        cv2.fillPoly(m, [np.round(ring * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
        return np.asarray(cv2.GaussianBlur(m.astype(np.float32) / 255.0, (0, 0), feather))


def jacobian_det(map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Finite-difference Jacobian determinant of a backward map (interior pixels)."""
    dxdx = np.gradient(map_x, axis=1)
    dxdy = np.gradient(map_x, axis=0)
    dydx = np.gradient(map_y, axis=1)
    dydy = np.gradient(map_y, axis=0)
    return np.asarray(dxdx * dydy - dxdy * dydx)
