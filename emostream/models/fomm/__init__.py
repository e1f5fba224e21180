"""First Order Motion Model (Siarohin et al., 2019), re-implemented from ../shared/specs/fomm.md.

Official checkpoints (``vox-cpk.pth.tar`` + ``vox-256.yaml``) load with ``strict=True`` through
:func:`emostream.models.fomm.checkpoint.load_fomm`; the fast inference path lives in
:mod:`emostream.models.fomm.fast` and the backend factory in :mod:`emostream.models.fomm.backends`.
"""

from emostream.models.fomm.config import FommConfig, load_config
from emostream.models.fomm.keypoints import Keypoints, normalize_kp

__all__ = ["FommConfig", "Keypoints", "load_config", "normalize_kp"]
