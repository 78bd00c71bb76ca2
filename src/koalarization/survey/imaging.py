"""How every survey image is made: placed on one canvas, encoded one way, padded to one byte length; and the
catch images of the attention checks.

Nothing but the pixels may tell real from colorized, so all images go through the same steps (build.py), whichever
kind or condition they are. A catch image keeps a real photo's lightness and gets an absurd colouring (bands of
saturated hues across the frame, unrelated to what is in the photo): anyone who looks at it can tell it is fake,
which is what an attention check needs.
"""
from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from .files import SurveyDataError

JPEG_QUALITY = 92
JPEG_SUBSAMPLING = "4:2:0"
CANVAS_COLOUR = (221, 221, 221)  # the page's photo frame (#ddd), so a canvas margin looks like the frame
COM_MAX_PAYLOAD = 65533  # a JPEG segment's length field counts itself (2 bytes) and is at most 65535
CATCH_CHROMA = 70.0  # a*b* radius of the catch images' colours: far more saturated than most natural scenes
CATCH_BANDS = 3  # hue cycles across the frame


def place_on_canvas(rgb: np.ndarray, canvas: tuple) -> np.ndarray:
    """The photo centred on a (width, height) canvas of the page frame's colour. Where every photo has the same
    aspect ratio the canvas is the photos' own size and there is no margin at all."""
    height, width = rgb.shape[:2]
    out = np.empty((canvas[1], canvas[0], 3), np.uint8)
    out[...] = CANVAS_COLOUR
    top, left = (canvas[1] - height) // 2, (canvas[0] - width) // 2
    out[top:top + height, left:left + width] = rgb
    return out


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """A fresh baseline JPEG that carries pixels only (no EXIF, ICC profile or comment), encoded the one way every
    survey image is encoded."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(
        buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING, optimize=False, progressive=False)
    return buffer.getvalue()


def pad_jpeg(data: bytes, length: int) -> bytes:
    """`data` grown to exactly `length` bytes with JPEG comment (COM) segments of zero bytes, inserted after the
    JFIF header. Decoders skip COM segments, so the image and its pixels are unchanged. Needs `length` to be the
    same as `len(data)` or at least 4 bytes more (a COM segment is at least 4 bytes)."""
    extra = length - len(data)
    if extra == 0:
        return data
    if extra < 4:
        raise SurveyDataError(f"cannot pad a JPEG by {extra} bytes: a comment segment takes at least 4")
    if data[:2] != b"\xff\xd8":
        raise SurveyDataError("not a JPEG (no start-of-image marker)")
    at = 2
    if data[2:4] == b"\xff\xe0":  # JFIF must stay the first segment
        at = 4 + struct.unpack(">H", data[4:6])[0]
    segments = []
    while extra:
        payload = min(extra - 4, COM_MAX_PAYLOAD)
        if 0 < extra - (payload + 4) < 4:  # never leave a remainder too small for one more segment
            payload -= 4
        segments.append(b"\xff\xfe" + struct.pack(">H", payload + 2) + bytes(payload))
        extra -= payload + 4
    return data[:at] + b"".join(segments) + data[at:]


def absurd_colouring(rgb: np.ndarray) -> np.ndarray:
    """The photo's own lightness (L*) with colours that ignore its content: the hue turns `CATCH_BANDS` times
    across the frame, diagonally, at chroma `CATCH_CHROMA` (skies, faces and grass all take turns at purple,
    green and orange). The attention checks' catch images."""
    lab = rgb2lab(np.asarray(rgb, dtype=np.uint8))
    height, width = lab.shape[:2]
    y, x = np.mgrid[0:height, 0:width]
    hue = 2 * np.pi * CATCH_BANDS * (x / width + 0.5 * y / height)
    lab[..., 1], lab[..., 2] = CATCH_CHROMA * np.cos(hue), CATCH_CHROMA * np.sin(hue)
    with warnings.catch_warnings():  # colours outside sRGB are clipped, as intended for an absurd colouring
        warnings.simplefilter("ignore")
        rgb_out = lab2rgb(lab)
    return np.clip(np.round(rgb_out * 255), 0, 255).astype(np.uint8)
