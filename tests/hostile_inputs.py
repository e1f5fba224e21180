"""Hostile inputs shared by the input-limit tests and the soak benchmark (benchmarks/soak.py)."""

from __future__ import annotations

import struct
import zlib


def png_bomb(side: int = 30000) -> bytes:
    """A valid 1-bit PNG of side×side black pixels: ~110 KB that decode to side²×3 bytes of RGB
    (2.7 GB at 30000)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    rows = bytes(1 + side // 8) * 1000
    idat = b"".join([comp.compress(rows) for _ in range(side // 1000)] + [comp.flush()])
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
