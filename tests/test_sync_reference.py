"""The yardstick of the browser A/V figures (tests/browser/reference.py) is in sync by
construction: decoded back, its mouth and its sound line up within half a 10 ms block."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from browser.analysis import envelope_correlations
from browser.reference import write_reference
from browser.stub_engine import energy_engine
from test_webrtc_browser import _mouth_crop


def test_reference_webm_is_in_sync(tmp_path: Path) -> None:
    engine = energy_engine(size=256)
    path = tmp_path / "reference.webm"
    seconds = write_reference(engine, path)
    x0, y0, x1, y1 = _mouth_crop(engine)
    vt, dark, at, rms = [], [], [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            rgb = f.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            vt.append(float(f.time))
            dark.append(-float(rgb[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)].mean()))
    with av.open(str(path)) as c:
        for f in c.decode(audio=0):
            x = f.to_ndarray().astype(np.float64).reshape(-1)
            for i in range(len(x) // 480):
                block = x[i * 480 : (i + 1) * 480]
                at.append(float(f.time) + i / 100)
                rms.append(float(np.sqrt(np.mean(block * block))))
    assert len(vt) == round(seconds * engine.fps) and abs(at[-1] - seconds) < 0.05
    v, d, a, e = map(np.asarray, (vt, dark, at, rms))
    lags = np.arange(-0.1, 0.1001, 0.001)
    r = envelope_correlations(v, d, a, e, lags - 1e-6, 0.04)
    top = lags[np.flatnonzero(r >= r.max() - 1e-9)]
    assert r.max() > 0.9
    assert abs(float(top.mean())) <= 0.005, f"the reference's own offset: {1000 * top.mean():+.1f} ms"
