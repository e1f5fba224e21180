"""The ARKit rig: locality and direction of every blendshape, symmetry, exact neutral, head pose."""

from __future__ import annotations

import numpy as np
import pytest
from render_fixtures import *  # noqa: F403  (pytest fixtures)
from render_fixtures import vec

from emostream.arkit import BLENDSHAPE_INDEX, BLENDSHAPE_NAMES
from emostream.render import topology as tp
from emostream.render.rig import Rig, load_rig, rotation, umeyama

RIG = load_rig()
REF = RIG.reference.astype(np.float64)
X, Y = REF[:, 0], REF[:, 1]
NOSE_Y = REF[tp.NOSE_TIP, 1]
EYE_Y = REF[[tp.EYE_LEFT_TOP, tp.EYE_RIGHT_TOP], 1].mean()
MOUTH_Y = REF[[tp.MOUTH_CORNER_LEFT, tp.MOUTH_CORNER_RIGHT], 1].mean()


def moved(name: str) -> np.ndarray:
    return np.asarray(np.linalg.norm(RIG.deltas[BLENDSHAPE_INDEX[name]], axis=1) > 0)


def delta(name: str, vertex: int) -> np.ndarray:
    return np.asarray(RIG.deltas[BLENDSHAPE_INDEX[name], vertex], np.float64)


#: Where each group of shapes may act (head frame: y down, x = the subject's left).
REGIONS = {
    "eye": lambda: (Y < NOSE_Y - 0.05) & (Y > EYE_Y - 0.45),
    "mouth": lambda: Y > EYE_Y + 0.15,
    "brow": lambda: Y < NOSE_Y - 0.1,
    "sneer": lambda: (Y < MOUTH_Y + 0.02) & (Y > EYE_Y - 0.45),  # AU9: nose, upper lip, inner brow
}


def region_of(name: str) -> str:
    if name.startswith("noseSneer"):
        return "sneer"
    if name.startswith(("eye", "brow")):
        return "eye" if name.startswith("eye") else "brow"
    return "mouth"


@pytest.mark.parametrize("name", BLENDSHAPE_NAMES)
def test_each_blendshape_moves_only_its_region(name: str) -> None:
    m = moved(name)
    if name in ("eyeLookInLeft", "eyeLookOutLeft", "eyeLookInRight", "eyeLookOutRight"):
        assert not m.any()  # no iris vertices in this topology
        return
    assert m.any(), name
    allowed = REGIONS[region_of(name)]()
    if name == "mouthSmileLeft" or name == "mouthSmileRight" or name.startswith("cheekSquint"):
        allowed = allowed | ((Y > EYE_Y) & (Y < NOSE_Y + 0.5))  # smiles lift the cheeks and lower lids
    assert not (m & ~allowed).any(), f"{name} moves vertices outside its region"
    if name.endswith("Left") and name not in ("mouthLeft", "jawLeft"):
        assert not (m & (X < -0.07)).any(), f"{name} moves the right side"
    if name.endswith("Right") and name not in ("mouthRight", "jawRight"):
        assert not (m & (X > 0.07)).any(), f"{name} moves the left side"


def test_blendshape_directions_follow_facs() -> None:
    assert delta("jawOpen", tp.LIP_LOWER_MID)[1] > 0.2  # lower lip drops with the jaw
    assert abs(delta("jawOpen", tp.LIP_UPPER_MID)[1]) < 1e-6  # the upper lip stays
    assert delta("jawOpen", tp.CHIN)[1] > 0.2
    assert delta("eyeBlinkLeft", tp.EYE_LEFT_TOP)[1] > 0.8 * (
        REF[tp.EYE_LEFT_BOTTOM, 1] - REF[tp.EYE_LEFT_TOP, 1]
    )
    assert delta("eyeBlinkRight", tp.EYE_RIGHT_TOP)[1] > 0.0
    smile = delta("mouthSmileLeft", tp.MOUTH_CORNER_LEFT)
    assert smile[1] < -0.05 and smile[0] > 0.03  # the corner rises and widens
    assert delta("mouthFrownLeft", tp.MOUTH_CORNER_LEFT)[1] > 0.03
    assert delta("browInnerUp", tp.BROW_LEFT_UPPER[0])[1] < -0.05
    assert delta("browInnerUp", tp.BROW_RIGHT_UPPER[-1])[1] < -0.05
    assert delta("browDownLeft", tp.BROW_LEFT_UPPER[2])[1] > 0.02
    assert delta("browOuterUpLeft", tp.BROW_LEFT_UPPER[-1])[1] < -0.04
    for name in ("mouthPucker", "mouthFunnel"):
        assert delta(name, tp.MOUTH_CORNER_LEFT)[0] < -0.03  # corners come in
        assert delta(name, tp.LIP_UPPER_MID)[2] < -0.05  # lips push forward
    assert delta("mouthFunnel", tp.LIP_LOWER_MID)[1] > 0.03  # the funnel opens
    assert delta("mouthUpperUpLeft", 267)[1] < -0.03
    assert delta("mouthLowerDownLeft", 314)[1] > 0.03
    assert delta("mouthLeft", tp.LIP_UPPER_MID)[0] > 0.05


def test_left_right_pairs_are_mirror_images() -> None:
    mirror = RIG.mirror
    assert (mirror[mirror] == np.arange(len(mirror))).all()
    for name in BLENDSHAPE_NAMES:
        if not name.endswith("Left"):
            continue
        right = name[: -len("Left")] + "Right"
        left_d = RIG.deltas[BLENDSHAPE_INDEX[name]]
        mirrored = left_d[mirror] * np.array([-1.0, 1.0, 1.0])
        np.testing.assert_allclose(RIG.deltas[BLENDSHAPE_INDEX[right]], mirrored, atol=1e-6, err_msg=name)


def test_neutral_rig_reproduces_the_photo_landmarks(astronaut_256) -> None:
    rig = Rig(astronaut_256.landmarks)
    out = rig.evaluate(np.zeros((1, 55), np.float32))[0]
    np.testing.assert_allclose(out, astronaut_256.landmarks, atol=1e-3)


def test_head_pose_conventions(astronaut_256) -> None:
    rig = Rig(astronaut_256.landmarks)
    base = rig.evaluate(vec()[None])[0]
    nose = tp.NOSE_TIP
    assert rig.evaluate(vec(yaw=0.3)[None])[0, nose, 0] > base[nose, 0] + 3  # towards image right
    assert rig.evaluate(vec(pitch=0.3)[None])[0, nose, 1] > base[nose, 1] + 3  # nods down
    rolled = rig.evaluate(vec(roll=0.3)[None])[0]
    r_eye, l_eye = rolled[tp.EYE_RIGHT_CORNERS[0]], rolled[tp.EYE_LEFT_CORNERS[1]]
    assert l_eye[1] > r_eye[1] + 3  # clockwise in the image


def test_rotation_and_umeyama_are_exact() -> None:
    r = rotation(np.array([0.3]), np.array([-0.2]), np.array([0.1]))[0]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 3))
    dst = 2.5 * src @ r.T + np.array([1.0, -2.0, 3.0])
    s, rr, _ = umeyama(src, dst)
    assert s == pytest.approx(2.5)
    np.testing.assert_allclose(rr, r, atol=1e-9)


def test_mouth_close_needs_an_open_jaw(astronaut_256) -> None:
    rig = Rig(astronaut_256.landmarks)
    alone = rig.shape(vec(mouthClose=1.0)[None])[0]
    np.testing.assert_allclose(alone, rig.identity, atol=1e-9)  # nothing to close
    up = rig.shape(vec(jawOpen=1.0, mouthClose=1.0)[None])[0]
    lo = rig.shape(vec(jawOpen=1.0)[None])[0]
    assert up[tp.LIP_LOWER_MID, 1] < lo[tp.LIP_LOWER_MID, 1] - 0.1


#: Agreement asked of a rebuilt rig's geometry, in its unit (the outer-eye-corner distance, about
#: 0.4 of the face's width): 1e-4 of the face size, 0.01 px on a 256 px crop. The rig comes from
#: a landmark model's floats, which differ across CPUs (1.8e-5 on an AMD EPYC, issue 18).
RIG_TOL = 1e-4


def test_shipped_rig_is_rebuilt_by_build_rig(tmp_path):
    """`python -m emostream.render.build_rig` reproduces emostream/assets/rig/rig.npz: the mesh
    (triangles, mirror map) exactly, the geometry within RIG_TOL."""
    from emostream.render.build_rig import RIG_PATH, build

    shipped = np.load(RIG_PATH)
    rebuilt = np.load(build(tmp_path / "rig.npz"))
    assert sorted(shipped.files) == sorted(rebuilt.files)
    for k in shipped.files:
        assert rebuilt[k].dtype == shipped[k].dtype and rebuilt[k].shape == shipped[k].shape, k
        if shipped[k].dtype.kind == "f":
            np.testing.assert_allclose(rebuilt[k], shipped[k], rtol=0, atol=RIG_TOL, err_msg=k)
        else:
            np.testing.assert_array_equal(rebuilt[k], shipped[k], err_msg=k)
