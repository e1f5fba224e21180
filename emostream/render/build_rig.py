"""Build the ARKit-52 face rig asset: ``python -m emostream.render.build_rig [-o PATH]``.

Writes ``emostream/assets/rig/rig.npz`` (~0.4 MB):

- ``reference`` float32[468, 3]: a symmetric mean face in the *head frame* (origin between the
  outer eye corners, x towards the image's right, y down, z away from the camera, unit = the
  outer-eye-corner distance). It is the mean of the frontalised 3D landmarks that the bundled
  mediapipe landmark model finds on the two public-domain test portraits (scikit-image's
  astronaut, matplotlib's Grace Hopper), mirrored and averaged.
- ``triangles`` int32[T, 3]: the face-mesh tessellation (3-cliques of mediapipe's
  ``FACEMESH_TESSELATION`` edge list, Apache-2.0); the eye and mouth openings are holes.
- ``mirror`` int32[468]: the left/right vertex correspondence.
- ``deltas`` float32[52, 468, 3]: one displacement field per ARKit blendshape at weight 1, in the
  head frame, authored procedurally from its FACS meaning (emostream.render.blendshapes).
- ``jaw_pivot``, ``head_pivot`` float32[3], ``jaw_angle`` (radians at jawOpen = 1).

Deterministic: the same installed models give the same file.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from emostream.render import topology as tp
from emostream.render.blendshapes import author_blendshapes
from emostream.render.face import detect_landmarks, mediapipe_dir
from emostream.render.portrait import sample_faces

RIG_PATH = Path(__file__).resolve().parents[1] / "assets" / "rig" / "rig.npz"


def tessellation_triangles() -> np.ndarray:
    """Triangles of mediapipe's face mesh, recovered as 3-cliques of its edge list."""
    src = (mediapipe_dir() / "python" / "solutions" / "face_mesh_connections.py").read_text()
    edges: list[tuple[int, int]] = []
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FACEMESH_TESSELATION":
            call = node.value
            assert isinstance(call, ast.Call)
            edges = [tuple(e) for e in ast.literal_eval(call.args[0])]
    if not edges:
        raise RuntimeError("FACEMESH_TESSELATION not found in mediapipe's face_mesh_connections.py")
    adj: dict[int, set[int]] = {}
    for a, b in edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    tris = sorted({tuple(sorted((a, b, c))) for a, b in edges for c in adj[a] & adj[b]})
    # A vertex of degree 3 makes its three neighbours a clique that is not a face: such a
    # triangle is the only one whose three edges are each shared by three cliques.
    count: dict[tuple[int, int], int] = {}
    for a, b, c in tris:
        for e in ((a, b), (b, c), (a, c)):
            count[e] = count.get(e, 0) + 1
    faces = [t for t in tris if min(count[(t[0], t[1])], count[(t[1], t[2])], count[(t[0], t[2])]) < 3]
    return np.array(faces, dtype=np.int32)


def head_frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(origin, rotation rows x/y/z, scale) of the head frame for 3D landmarks in pixels."""
    p_r, p_l = lm[tp.EYE_RIGHT_CORNERS[0]], lm[tp.EYE_LEFT_CORNERS[1]]
    origin = (p_r + p_l) / 2
    x = p_l - p_r
    scale = float(np.linalg.norm(x))
    x = x / scale
    y = lm[tp.CHIN] - lm[tp.FOREHEAD]
    y = y - x * np.dot(x, y)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return origin, np.stack([x, y, z]), scale


def to_head_frame(lm: np.ndarray) -> np.ndarray:
    origin, rot, scale = head_frame(lm.astype(np.float64))
    return ((lm - origin) @ rot.T) / scale


def mirror_map(v: np.ndarray) -> np.ndarray:
    """The left/right vertex permutation: an optimal assignment of each vertex to the nearest
    vertex of the x-mirrored shape, made an involution (i -> m[i] -> i)."""
    m = v * np.array([-1.0, 1.0, 1.0])
    cost = cdist(v, m)
    cost = cost + cost.T  # symmetric cost: pairs (i, j) and (j, i) cost the same
    _, idx = linear_sum_assignment(cost)
    idx = np.asarray(idx, dtype=np.int32)
    bad = idx[idx] != np.arange(len(v))
    idx[bad] = np.arange(len(v))[bad]  # the rare unpaired vertex maps to itself
    return idx


#: The frontal photos whose landmarks are averaged into the reference face. Named explicitly, not
#: taken from ``sample_faces()``: adding a test face must not change the shipped rig.
REFERENCE_FACES = ("astronaut", "grace_hopper")


def reference_shape() -> tuple[np.ndarray, np.ndarray]:
    shapes = [
        to_head_frame(detect_landmarks(img, check_pose=False))
        for name, img in sample_faces()
        if name in REFERENCE_FACES
    ]
    v = np.mean(shapes, axis=0)
    mirror = mirror_map(v)
    flipped = v[mirror] * np.array([-1.0, 1.0, 1.0])
    sym = (v + flipped) / 2
    return sym.astype(np.float32), mirror


def build(path: Path = RIG_PATH) -> Path:
    ref, mirror = reference_shape()
    tris = tessellation_triangles()
    auth = author_blendshapes(ref, mirror)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        reference=ref,
        triangles=tris,
        mirror=mirror,
        deltas=auth.deltas.astype(np.float32),
        jaw_pivot=auth.jaw_pivot.astype(np.float32),
        head_pivot=auth.head_pivot.astype(np.float32),
        jaw_angle=np.float32(auth.jaw_angle),
        jaw_weight=auth.jaw_weight.astype(np.float32),
    )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", type=Path, default=RIG_PATH, help="where to write rig.npz")
    args = ap.parse_args()
    print(build(args.output))


if __name__ == "__main__":
    main()
