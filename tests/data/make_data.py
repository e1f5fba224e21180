"""Regenerate the small malformed inputs in this folder: ``python tests/data/make_data.py``.
Larger inputs (96 kHz stereo, a 3-hour file, encoded formats) are generated on the fly."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))

from emostream.livelink import LIVELINK_COLUMNS  # noqa: E402


def wav_bytes(
    frames: bytes, *, rate: int, channels: int, bits: int, fmt_tag: int = 1, declared: int | None = None
) -> bytes:
    block = channels * bits // 8
    size = len(frames) if declared is None else declared
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    return (
        b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + size) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", size) + frames
    )  # fmt: skip


def main() -> None:
    t = np.arange(8000) / 8000.0
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    pcm16 = (tone * 32767).astype("<i2").tobytes()
    # Header declares 1.0 s (8 kHz mono 16-bit); only the first 0.25 s is in the file.
    (HERE / "truncated.wav").write_bytes(
        wav_bytes(pcm16[: 2 * 2000], rate=8000, channels=1, bits=16, declared=len(pcm16))
    )
    (HERE / "text.wav").write_text("This is a text file, not audio.\nIt only has a .wav name.\n")
    (HERE / "empty.wav").write_bytes(b"")
    # IEEE float WAV of 0.1 s whose samples from 0.05 s on are NaN.
    nan = tone[:800].copy()
    nan[400:] = np.nan
    (HERE / "nan_float.wav").write_bytes(
        wav_bytes(nan.astype("<f4").tobytes(), rate=8000, channels=1, bits=32, fmt_tag=3)
    )
    # 8-bit unsigned and 24-bit PCM, 0.25 s of the 440 Hz tone at 8 kHz: these must decode.
    (HERE / "pcm8.wav").write_bytes(
        wav_bytes(np.round(tone[:2000] * 127 + 128).astype(np.uint8).tobytes(), rate=8000, channels=1, bits=8)
    )
    i24 = np.round(tone[:2000] * (2**23 - 1)).astype("<i4")
    b24 = np.frombuffer(i24.tobytes(), dtype=np.uint8).reshape(-1, 4)[:, :3].tobytes()
    (HERE / "pcm24.wav").write_bytes(wav_bytes(b24, rate=8000, channels=1, bits=24))

    # Live Link Face CSVs: 70 rows at 60 fps with a 30 fps timecode (sub-frame .500 on odd rows)
    # starting at 10:00:00:20, JawOpen ramping 0 → 1, everything else 0.25; then broken variants.
    header = list(LIVELINK_COLUMNS)
    jaw = header.index("JawOpen")
    rows = []
    for i in range(70):
        f30 = 20 + i // 2
        row = [
            f"10:00:{f30 // 30:02d}:{f30 % 30:02d}.{500 * (i % 2):03d}",
            "61",
            *(["0.25"] * (len(header) - 2)),
        ]
        row[jaw] = f"{i / 69:.6f}"
        rows.append(row)

    def csv(h: list[str], rs: list[list[str]]) -> str:
        return "\n".join(",".join(r) for r in [h, *rs]) + "\n"

    (HERE / "livelink_ok.csv").write_text(csv(header, rows))
    miss = [c for c in header if c not in ("MouthLeft", "TongueOut")]
    (HERE / "livelink_missing_columns.csv").write_text(csv(miss, [r[: len(miss)] for r in rows[:3]]))
    rows = rows[:3]
    (HERE / "livelink_extra_column.csv").write_text(csv([*header, "Confidence"], [[*r, "1"] for r in rows]))
    dup = [*header[:-1], "JawOpen"]
    (HERE / "livelink_duplicate_column.csv").write_text(csv(dup, rows))
    bad = [r.copy() for r in rows]
    bad[1][header.index("JawOpen")] = "abc"
    (HERE / "livelink_bad_number.csv").write_text(csv(header, bad))
    badtc = [r.copy() for r in rows]
    badtc[2][0] = "10:00:00.05"
    (HERE / "livelink_bad_timecode.csv").write_text(csv(header, badtc))
    (HERE / "livelink_empty.csv").write_bytes(b"")
    (HERE / "livelink_header_only.csv").write_text(csv(header, []))

    # Images: RGBA with a transparent half, CMYK JPEG, 8-bit greyscale.
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :4, 3] = 255
    Image.fromarray(rgba, "RGBA").save(HERE / "rgba.png")
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(HERE / "cmyk.jpg", quality=95)
    Image.fromarray(np.full((8, 8), 77, np.uint8), "L").save(HERE / "grey.png")


if __name__ == "__main__":
    main()
