"""Read any photo safely: format, mode, EXIF orientation and size limits, with one clear error for bad files."""
from __future__ import annotations

import io
import os
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import KoalaError

MAX_PIXELS = 100_000_000  # above this a file is refused as a possible decompression bomb (12 MP photos are fine)
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}


class PhotoError(KoalaError, ValueError):
    """A photo that cannot be read; names the file and the reason."""

    def __init__(self, source: str | os.PathLike, reason: str):
        self.source, self.reason = str(source), reason
        super().__init__(f"{source}: {reason}")


def is_photo_path(path: str | os.PathLike) -> bool:
    """Whether a file name has a photo suffix: how folders are scanned for photos, without opening any file."""
    return os.path.splitext(str(path))[1].lower() in PHOTO_SUFFIXES


def _to_rgb(image):
    """Any PIL mode -> 8-bit RGB. Transparency is composited on white; 16-bit and float are rescaled, not clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(np.round(array / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_photo(source: str | os.PathLike | bytes | bytearray, name: str | None = None,
               max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Path or bytes -> uint8 RGB array (H, W, 3), upright per EXIF. Raises PhotoError for anything unreadable."""
    label = name or (source if not isinstance(source, (bytes, bytearray)) else "<bytes>")
    try:
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        else:
            with open(source, "rb") as handle:
                data = handle.read()
    except OSError as error:
        raise PhotoError(label, f"cannot open file ({error.strerror or error})") from error
    if not data:
        raise PhotoError(label, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise PhotoError(label, f"image too large ({width}x{height} = {width * height / 1e6:.0f} MP "
                                            f"> {max_pixels / 1e6:.0f} MP limit; possible decompression bomb)")
                image.seek(0)  # first frame of an animation
                image.load()
                image = ImageOps.exif_transpose(image)
                rgb = _to_rgb(image)
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise PhotoError(label, f"image too large (possible decompression bomb): {error}") from error
    except UnidentifiedImageError as error:
        raise PhotoError(label, "not an image (unrecognized format)") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        reason = "truncated or corrupt image data" if "truncated" in str(error).lower() else f"corrupt image ({error})"
        raise PhotoError(label, reason) from error
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 1:
        raise PhotoError(label, f"unexpected image shape {rgb.shape}")
    return rgb


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    """uint8 RGB -> JPEG bytes in memory: how the prepared shards store their photos."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def scaled_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(h, w) of a photo resized so its short side is `short_side`, aspect kept (the one rounding rule used by
    preparation, the input pipelines and colorizing)."""
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_short_side(rgb: np.ndarray, short_side: int) -> np.ndarray:
    """Resize so the short side is `short_side` (aspect kept, Lanczos)."""
    height, width = scaled_size(rgb.shape[0], rgb.shape[1], short_side)
    if (height, width) == rgb.shape[:2]:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


def letterbox(rgb: np.ndarray, size: int, fill: int = 255) -> np.ndarray:
    """The paper's preprocessing: fit inside size x size, pad with white."""
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    size_wh = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(rgb).resize(size_wh, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), (fill,) * 3)
    canvas.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return np.asarray(canvas)


def save_image_atomic(rgb: np.ndarray, path: str | os.PathLike, **kwargs: Any) -> None:
    """Write an image (its folder made where missing) so that a crash never leaves a half-written file behind."""
    path = str(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    fmt = kwargs.pop("format", None) or Image.registered_extensions().get(os.path.splitext(path)[1].lower(), "PNG")
    Image.fromarray(rgb).save(tmp, format=fmt, **kwargs)
    os.replace(tmp, path)
