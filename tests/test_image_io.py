"""Portrait image loading: alpha, CMYK, greyscale, 16-bit, EXIF orientation, and bad files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emostream.errors import ImageError
from emostream.streaming.image_io import describe_image, load_image_rgb


def test_rgba_is_composited_on_white_with_a_warning(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    info = describe_image(data_dir / "rgba.png")
    assert (info.mode, info.has_alpha, info.width, info.height) == ("RGBA", True, 8, 8)
    assert info.conversion == "RGBA → RGB, alpha composited on white"
    with caplog.at_level(logging.WARNING):
        rgb = load_image_rgb(data_dir / "rgba.png")
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert (rgb[:, :4] == [200, 0, 0]).all()  # opaque half keeps its colour
    assert (rgb[:, 4:] == 255).all()  # transparent half becomes white
    assert "alpha composited on white" in caplog.text


def test_cmyk_and_greyscale(data_dir: Path) -> None:
    cmyk = describe_image(data_dir / "cmyk.jpg")
    assert (cmyk.mode, cmyk.format, cmyk.conversion) == ("CMYK", "JPEG", "CMYK → RGB")
    red = load_image_rgb(data_dir / "cmyk.jpg")
    assert red.shape == (8, 8, 3)
    assert red[..., 0].min() > 230 and red[..., 1:].max() < 25
    grey = describe_image(data_dir / "grey.png")
    assert (grey.mode, grey.has_alpha, grey.conversion) == ("L", False, "greyscale L → RGB (replicated)")
    assert (load_image_rgb(data_dir / "grey.png") == 77).all()


def test_16bit_greyscale_and_exif_rotation(tmp_path: Path) -> None:
    g16 = np.full((4, 6), 65535, np.uint16)
    g16[:, :3] = 0
    Image.fromarray(g16).save(tmp_path / "g16.png")
    rgb = load_image_rgb(tmp_path / "g16.png")
    assert rgb.shape == (4, 6, 3) and (rgb[:, :3] == 0).all() and (rgb[:, 3:] == 255).all()

    im = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image_rgb(tmp_path / "rot.jpg").shape == (40, 20, 3)


def test_bad_images(tmp_path: Path, data_dir: Path) -> None:
    b = (data_dir / "rgba.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(b[: len(b) // 2])
    Image.new("RGB", (100, 50)).save(tmp_path / "big.png")
    cases = {
        tmp_path / "nope.png": "file not found",
        tmp_path: "is a directory, not an image",
        data_dir / "empty.wav": "file is empty (0 bytes)",
        data_dir / "text.wav": "not an image file (Pillow cannot identify it)",
        tmp_path / "trunc.png": "truncated or corrupt image data",
    }
    for path, message in cases.items():
        with pytest.raises(ImageError) as e:
            load_image_rgb(path)
        assert str(e.value) == f"{path}: {message}"
    with pytest.raises(ImageError) as e:
        load_image_rgb(tmp_path / "big.png", max_pixels=4000)
    assert (
        str(e.value) == f"{tmp_path / 'big.png'}: image is 100×50 = 5,000 pixels; the limit is 4,000 pixels"
    )
