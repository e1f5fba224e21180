"""Keep native libraries' log lines off the terminal unless ``--debug`` is given.

TensorFlow Lite (``ai_edge_litert``) prints "INFO: Created TensorFlow Lite XNNPACK delegate for
CPU." from C++ straight to file descriptor 2 when an interpreter allocates its tensors; no
environment variable silences it (``TF_CPP_MIN_LOG_LEVEL`` only reaches TensorFlow's own logger).
:func:`quiet_stderr` points fd 2 at /dev/null around such calls. ONNX Runtime's default logger is
set to errors only by :func:`quiet_onnxruntime`. Debug logging (``--debug``, or the ``emostream``
logger at DEBUG) turns both off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()
#: ONNX Runtime's severity for "errors and fatal only".
_ORT_ERROR = 3


def debugging() -> bool:
    return logging.getLogger("emostream").isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence what native code writes to fd 2 inside the block (Python's own ``sys.stderr`` is
    flushed first). Other threads' stderr output during the block is lost too, so keep it short:
    around an interpreter's creation, not around work."""
    if debugging():
        yield
        return
    with _LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 2)
            finally:
                os.close(devnull)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quiet_onnxruntime() -> None:
    """ONNX Runtime's process-wide default logger: errors only (warnings too with ``--debug``)."""
    # deferred: onnxruntime (heavy), only for the callers that create sessions
    import onnxruntime as ort

    ort.set_default_logger_severity(0 if debugging() else _ORT_ERROR)
