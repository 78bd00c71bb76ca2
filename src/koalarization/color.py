"""CIE L*a*b* conversions and the paper's scalings.

The numpy functions wrap scikit-image (the reference). The tensor functions do the same maths with TensorFlow ops
so that the input pipeline never leaves the graph; tests hold them to scikit-image.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from skimage import color

L_SCALE, AB_SCALE = 50.0, 127.0

# sRGB (D65) -> XYZ, the matrix scikit-image uses, and the D65 white point.
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def to_float_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 (0..255) or float (0..1) RGB -> float64 in [0, 1]."""
    rgb = np.asarray(rgb)
    return rgb.astype(np.float64) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float64)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """RGB (uint8 or float in [0, 1]) -> L*a*b* float (L in [0, 100])."""
    return color.rgb2lab(to_float_rgb(rgb))


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """L*a*b* -> float RGB clipped to [0, 1]."""
    return np.clip(color.lab2rgb(lab), 0.0, 1.0)


def lab_to_uint8(lab: np.ndarray) -> np.ndarray:
    """L*a*b* -> uint8 RGB (rounded), the form photos are saved and shown in."""
    return np.round(lab_to_rgb(lab) * 255).astype(np.uint8)


def scale_l(lightness: Any) -> Any:
    """L in [0, 100] -> the encoder input in [-1, 1] (paper: L/50 - 1). Arrays or tensors of any backend."""
    return lightness / L_SCALE - 1.0


def scale_ab(ab: Any) -> Any:
    """a*b* -> the regression target (paper: ab/127)."""
    return ab / AB_SCALE


def unscale_ab(target: Any) -> Any:
    """Network output (tanh, in [-1, 1]) -> a*b*."""
    return target * AB_SCALE


def gray_rgb_from_l(lightness: np.ndarray) -> np.ndarray:
    """The colorless RGB image of a lightness channel (L with a* = b* = 0): what the classifier sees."""
    lab = np.stack([lightness, np.zeros_like(lightness), np.zeros_like(lightness)], axis=-1)
    return lab_to_rgb(lab)


def gray_from_l(lightness: np.ndarray) -> np.ndarray:
    """The value (R = G = B, float64 in [0, 1]) of `gray_rgb_from_l`'s colorless image, one channel: with a* = b* = 0
    the three channels differ only in the last bits, and the classifier reads one. A few array operations where
    scikit-image's lab2rgb converts three channels with masks (tests hold the two together)."""
    f = (np.asarray(lightness, np.float64) + 16.0) / 116.0
    g = np.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / 7.787)
    linear = g * float(np.linalg.inv(_RGB_TO_XYZ)[0] @ _WHITE_D65)
    return np.clip(np.where(linear > 0.0031308, 1.055 * np.power(np.maximum(linear, 0.0031308), 1 / 2.4) - 0.055,
                            linear * 12.92), 0.0, 1.0)


def desaturate(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Any RGB photo -> its own L and the colorless RGB made from that L (float in [0, 1])."""
    lightness = rgb_to_lab(rgb)[..., 0]
    return lightness, gray_rgb_from_l(lightness)


def join_l_ab(lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Full-resolution L plus predicted a*b* -> uint8 RGB."""
    return lab_to_uint8(np.concatenate([lightness[..., None], ab], axis=-1))


# ---- tensor versions (keras.ops): the input pipelines, on any backend and on the accelerator ----------------------


def ops_rgb_to_lab(rgb: Any) -> Any:
    """Float RGB tensor (..., 3) in [0, 1] -> float32 L*a*b*; the maths of skimage.color.rgb2lab.

    Written with keras.ops, so it runs inside tf.data (TensorFlow backend) and on the GPU under JAX or PyTorch,
    where the conversion of a batch costs far less than on the input threads. Tests hold it to scikit-image.
    """
    from keras import ops

    return _lab_from_float(ops.cast(rgb, "float32"))


def ops_uint8_to_lab(rgb_uint8: Any) -> Any:
    """uint8 RGB tensor (..., 3) -> float32 L*a*b* (see ops_rgb_to_lab)."""
    from keras import ops

    return _lab_from_float(ops.cast(rgb_uint8, "float32") / 255.0)


def ops_uint8_to_lightness(rgb_uint8: Any) -> Any:
    """uint8 RGB tensor (..., 3) -> float32 L (...,): the L of ops_uint8_to_lab, without computing a* and b*."""
    from keras import ops

    rgb = ops.cast(rgb_uint8, "float32") / 255.0
    linear = ops.where(rgb > 0.04045, ops.power((ops.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4), rgb / 12.92)
    y = ops.matmul(linear, ops.convert_to_tensor(_RGB_TO_XYZ[1].astype(np.float32)))  # Y / white Y (= 1)
    f = ops.where(y > 0.008856, ops.power(ops.maximum(y, 0.008856), 1.0 / 3.0), 7.787 * y + 16.0 / 116.0)
    return 116.0 * f - 16.0


def _lab_from_float(rgb):
    from keras import ops

    linear = ops.where(rgb > 0.04045, ops.power((ops.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4), rgb / 12.92)
    matrix = ops.convert_to_tensor((_RGB_TO_XYZ.T / _WHITE_D65[None, :]).astype(np.float32))
    xyz = ops.matmul(linear, matrix)
    f = ops.where(xyz > 0.008856, ops.power(ops.maximum(xyz, 0.008856), 1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return ops.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def ops_lab_to_rgb(lab: Any) -> Any:
    """Float L*a*b* tensor (..., 3) -> float32 RGB in [0, 1]; the maths of skimage.color.lab2rgb (z clipped at 0 as
    it does, then clipped to [0, 1] as `lab_to_rgb`). The inverse of ops_rgb_to_lab, for joining a full-resolution L
    to predicted a*b* where the network runs; tests hold it to scikit-image."""
    from keras import ops

    lab = ops.cast(lab, "float32")
    fy = (lab[..., 0] + 16.0) / 116.0
    f = ops.stack([lab[..., 1] / 500.0 + fy, fy, ops.maximum(fy - lab[..., 2] / 200.0, 0.0)], axis=-1)
    xyz = ops.where(f > 0.2068966, f * f * f, (f - 16.0 / 116.0) / 7.787)
    matrix = ops.convert_to_tensor((np.linalg.inv(_RGB_TO_XYZ) * _WHITE_D65[None, :]).T.astype(np.float32))
    linear = ops.matmul(xyz, matrix)
    rgb = ops.where(linear > 0.0031308, 1.055 * ops.power(ops.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055,
                    linear * 12.92)
    return ops.clip(rgb, 0.0, 1.0)


def ops_lab_to_uint8(lab: Any) -> Any:
    """Float L*a*b* tensor (..., 3) -> uint8 RGB, rounded as `lab_to_uint8` does."""
    from keras import ops

    return ops.cast(ops.round(ops_lab_to_rgb(lab) * 255.0), "uint8")
