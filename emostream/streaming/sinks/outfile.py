"""Output files that appear whole or not at all.

``check_writable(path)`` answers, before any work is done, whether a file can be created at
``path`` (not a directory, the folder exists or can be made, writable, not on a read-only file
system) by creating and removing a temporary file there: the only check that is right for
root, ACLs and read-only mounts alike. ``PartFile`` is that temporary file, hidden beside the
target; ``commit()`` renames it into place (atomic on one file system), ``discard()`` removes
it, so a failed or interrupted write (a full disk, Ctrl-C, SIGTERM) never leaves a partial
file under the user's name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from emostream.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def check_writable(path: str | Path) -> Path:
    """``path`` as a Path, or InputError (one line) saying why no file can be written there."""
    p = Path(path)
    if p.is_dir():
        raise InputError("is a directory; give a file name", p)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output folder: {_reason(e)}", p) from e
    part = PartFile(p)
    part.discard()
    return p


class PartFile:
    """A hidden temporary file beside ``path`` (same folder, so the rename is atomic)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part")
        except OSError as e:
            raise InputError(f"cannot write the output: {_reason(e)}", self.path) from e
        os.close(fd)
        self.tmp = Path(tmp)
        os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would have made

    def commit(self) -> Path:
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            raise InputError(f"cannot write the output: {_reason(e)}", self.path) from e
        return self.path

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)
