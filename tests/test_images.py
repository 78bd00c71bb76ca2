import io

import numpy as np
import pytest
from PIL import Image

from koalarization.images import PhotoError, letterbox, read_photo, resize_short_side


def _save(path, image, **kwargs):
    image.save(path, **kwargs)
    return path


@pytest.fixture
def rgb(gradient_photo):
    return gradient_photo


@pytest.mark.parametrize("fmt,suffix", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif"),
                                        ("BMP", "bmp"), ("GIF", "gif")])
def test_formats(tmp_path, rgb, fmt, suffix):
    path = _save(tmp_path / f"x.{suffix}", Image.fromarray(rgb), format=fmt)
    out = read_photo(path)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    if fmt in ("PNG", "TIFF", "BMP"):
        assert np.array_equal(out, rgb)


def test_modes(tmp_path, rgb):
    gray = read_photo(_save(tmp_path / "g.png", Image.fromarray(rgb).convert("L")))
    assert gray.shape == rgb.shape and np.array_equal(gray[..., 0], gray[..., 1])
    palette = read_photo(_save(tmp_path / "p.png", Image.fromarray(rgb).convert("P")))
    assert palette.shape == rgb.shape
    cmyk = read_photo(_save(tmp_path / "c.jpg", Image.fromarray(rgb).convert("CMYK"), format="JPEG"))
    assert cmyk.shape == rgb.shape
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])  # fully transparent -> white
    assert (read_photo(_save(tmp_path / "a.png", Image.fromarray(rgba))) == 255).all()


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 32).reshape(32, 64)).astype(np.uint16)
    out = read_photo(_save(tmp_path / "16.png", Image.fromarray(ramp)))
    assert out[..., 0].min() == 0 and out[..., 0].max() == 255
    assert 120 < out[..., 0].mean() < 135


def test_exif_orientation_is_applied(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _save(tmp_path / "o.jpg", Image.fromarray(rgb), format="JPEG", exif=exif)
    assert read_photo(path).shape == (rgb.shape[1], rgb.shape[0], 3)


def test_bad_files_raise_one_error_naming_file_and_reason(tmp_path, rgb):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    expected = {empty: "empty", text: "not an image", truncated: "truncated", tmp_path / "missing.jpg": "cannot open"}
    for path, reason in expected.items():
        with pytest.raises(PhotoError) as info:
            read_photo(path)
        assert str(path) in str(info.value) and reason in info.value.reason


def test_decompression_bomb_is_refused(tmp_path):
    path = _save(tmp_path / "bomb.png", Image.new("1", (12000, 10000)))  # 120 MP, a few KB on disk
    with pytest.raises(PhotoError, match="too large"):
        read_photo(path)


def test_resizing_helpers(rgb):
    assert resize_short_side(rgb, 24).shape == (24, 32, 3)
    boxed = letterbox(rgb, 32)
    assert boxed.shape == (32, 32, 3) and (boxed[0] == 255).all()  # white bars above the 4:3 photo
