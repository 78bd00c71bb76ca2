"""CIE L*a*b* conversions and the paper's scalings.

The numpy functions wrap scikit-image (the reference). The tensor functions do the same maths with TensorFlow ops
so that the input pipeline never leaves the graph; tests hold them to scikit-image.
"""
import numpy as np
from skimage import color

L_SCALE, AB_SCALE = 50.0, 127.0

# sRGB (D65) -> XYZ, the matrix scikit-image uses, and the D65 white point.
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def to_float_rgb(rgb):
    """uint8 (0..255) or float (0..1) RGB -> float64 in [0, 1]."""
    rgb = np.asarray(rgb)
    return rgb.astype(np.float64) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float64)


def rgb_to_lab(rgb):
    """RGB (uint8 or float in [0, 1]) -> L*a*b* float (L in [0, 100])."""
    return color.rgb2lab(to_float_rgb(rgb))


def lab_to_rgb(lab):
    """L*a*b* -> float RGB clipped to [0, 1]."""
    return np.clip(color.lab2rgb(lab), 0.0, 1.0)


def lab_to_uint8(lab):
    return np.round(lab_to_rgb(lab) * 255).astype(np.uint8)


def scale_l(lightness):
    """L in [0, 100] -> the encoder input in [-1, 1] (paper: L/50 - 1)."""
    return lightness / L_SCALE - 1.0


def scale_ab(ab):
    """a*b* -> the regression target (paper: ab/127)."""
    return ab / AB_SCALE


def unscale_ab(target):
    """Network output (tanh, in [-1, 1]) -> a*b*."""
    return target * AB_SCALE


def gray_rgb_from_l(lightness):
    """The colorless RGB image of a lightness channel (L with a* = b* = 0): what the classifier sees."""
    lab = np.stack([lightness, np.zeros_like(lightness), np.zeros_like(lightness)], axis=-1)
    return lab_to_rgb(lab)


def desaturate(rgb):
    """Any RGB photo -> its own L and the colorless RGB made from that L (float in [0, 1])."""
    lightness = rgb_to_lab(rgb)[..., 0]
    return lightness, gray_rgb_from_l(lightness)


def join_l_ab(lightness, ab):
    """Full-resolution L plus predicted a*b* -> uint8 RGB."""
    return lab_to_uint8(np.concatenate([lightness[..., None], ab], axis=-1))


# ---- TensorFlow versions, for tf.data -------------------------------------------------------------------------


def tf_rgb_to_lab(rgb):
    """float RGB in [0, 1] (..., 3) tensor -> L*a*b* tensor; matches skimage.color.rgb2lab."""
    import tensorflow as tf

    rgb = tf.convert_to_tensor(rgb, tf.float32)
    linear = tf.where(rgb > 0.04045, tf.pow((rgb + 0.055) / 1.055, 2.4), rgb / 12.92)
    xyz = tf.tensordot(linear, tf.constant(_RGB_TO_XYZ.T, tf.float32), axes=1)
    xyz = xyz / tf.constant(_WHITE_D65, tf.float32)
    f = tf.where(xyz > 0.008856, tf.pow(tf.maximum(xyz, 1e-12), 1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = tf.unstack(f, axis=-1)
    lightness = tf.where(xyz[..., 1] > 0.008856, 116.0 * fy - 16.0, 903.3 * xyz[..., 1])
    return tf.stack([lightness, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def tf_gray_rgb_from_l(lightness):
    """L tensor (...) -> colorless RGB tensor (..., 3) in [0, 1]; matches gray_rgb_from_l.

    With a* = b* = 0 the XYZ of a pixel is the white point times Y, so its linear RGB is (Y, Y, Y).
    """
    import tensorflow as tf

    lightness = tf.convert_to_tensor(lightness, tf.float32)
    fy = (lightness + 16.0) / 116.0
    y = tf.where(fy > 0.2068966, fy ** 3, (fy - 16.0 / 116.0) / 7.787)
    srgb = tf.where(y > 0.0031308, 1.055 * tf.pow(tf.maximum(y, 1e-12), 1.0 / 2.4) - 0.055, 12.92 * y)
    return tf.repeat(tf.clip_by_value(srgb, 0.0, 1.0)[..., None], 3, axis=-1)
