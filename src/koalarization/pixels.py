"""A photo's full-resolution colour maths, compiled once: its L from uint8 RGB, and uint8 RGB from L and a*b*.

Colorizing a photo runs the network at a small working resolution, but the photo's own L is read and joined to the
predicted a*b* at full resolution. Done with scikit-image (float64, one pass per operation) that per-pixel work cost
more than the networks from a quarter megapixel up. Here it is `color`'s keras.ops maths (held to scikit-image by
tests) compiled by the backend (XLA under TensorFlow and JAX), on the accelerator where there is one.

A compiled function is specialised to its input's shape, and photos come in every size: the pixels are processed as
flat chunks of a few fixed lengths, so a handful of compilations per process serve every photo. Results are
float32 where scikit-image works in float64: L agrees to about 2e-5, and an output value differs from
`color.lab_to_uint8`'s by at most one level, in about one in 100,000 (tests/test_speed_equivalence.py).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from .color import ops_lab_to_uint8, ops_uint8_to_lightness

CHUNKS = (1 << 14, 1 << 16, 1 << 18)  # pixels per compiled call: the smallest that holds a photo, else the largest


def _compile(function: Callable[..., Any]) -> Callable[..., Any]:
    """The backend's compiler for a function of fixed-shape tensors (XLA), or the function itself (eager)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=True)
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(function)
    return function


@lru_cache(maxsize=1)
def _kernels() -> tuple[Callable[..., Any], Callable[..., Any]]:
    from keras import ops

    def lightness(rgb):  # (n, 3) uint8 -> (n,) float32
        return ops_uint8_to_lightness(rgb)

    def join(l_plane, a_plane, b_plane):  # (n,) float32 each -> (n, 3) uint8
        return ops_lab_to_uint8(ops.stack([l_plane, a_plane, b_plane], axis=-1))

    return _compile(lightness), _compile(join)


def _chunked(function: Callable[..., Any], inputs: list[np.ndarray], out: np.ndarray) -> np.ndarray:
    """Apply a compiled per-pixel function to flat inputs of n pixels, chunk by chunk, into `out` (n, ...)."""
    from keras import ops

    count = len(inputs[0])
    size = next((c for c in CHUNKS if c >= count), CHUNKS[-1])
    for start in range(0, count, size):
        part = [x[start:start + size] for x in inputs]
        short = size - len(part[0])
        if short:  # the last chunk, padded to the compiled length
            part = [np.concatenate([x, np.zeros((short,) + x.shape[1:], x.dtype)]) for x in part]
        result = ops.convert_to_numpy(function(*part))
        out[start:start + size] = result[:size - short]
    return out


def lightness(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> L (H, W) float32, as `skimage.color.rgb2lab(rgb)[..., 0]`."""
    height, width = rgb.shape[:2]
    flat = np.ascontiguousarray(rgb).reshape(-1, 3)
    return _chunked(_kernels()[0], [flat], np.empty(height * width, np.float32)).reshape(height, width)


def join(l_plane: np.ndarray, a_plane: np.ndarray, b_plane: np.ndarray) -> np.ndarray:
    """L, a* and b* planes (H, W) -> uint8 RGB (H, W, 3), as `color.lab_to_uint8` (clipped to sRGB, rounded)."""
    height, width = l_plane.shape
    flat = [np.ascontiguousarray(p, np.float32).reshape(-1) for p in (l_plane, a_plane, b_plane)]
    return _chunked(_kernels()[1], flat, np.empty((height * width, 3), np.uint8)).reshape(height, width, 3)
