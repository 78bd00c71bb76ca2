"""Training losses: the paper's MSE on a*b*/127, a rarity-weighted MSE and a colour-distance loss beside it.

MSE regression averages the plausible colors of a pixel into their mean, a brownish gray: the field's main
complaint about this paper. Zhang et al. (2016, "Colorful Image Colorization", section 2.2) counter it with class
rebalancing: each pixel's loss is weighted by the inverse of how common its true color is in the training set,
w ∝ ((1 - λ) p̃ + λ / Q)^-1 with p̃ the a*b* prior smoothed by a Gaussian (σ = 5) over Q in-gamut bins, normalized
so that E_p̃[w] = 1. `RebalancedMSE` applies those weights to the paper's regression loss (the network stays the
paper's); the prior comes from the training split alone.

`ABDistance` asks a different question of the same network: the study scores colour by CIEDE2000, a distance, but
MSE minimizes the *squared* distance, whose best guess for an uncertain pixel is the mean of its plausible colours,
a cast even where most of them are neutral. The loss that matches a distance is the distance itself (its best guess
is the geometric median): the Euclidean length of the a*b* error, made smooth at zero as the Charbonnier loss
(Charbonnier et al. 1994; Lai et al. 2017), sqrt(|e|^2 + eps^2) - eps.
"""
from __future__ import annotations

import json
import os
from typing import Any

import keras
import numpy as np
from keras import ops

from .color import unscale_ab

BIN = 10.0  # a*b* bin width, as Zhang et al.
EDGE = 130.0  # bins cover a*, b* in [-130, 130)
BINS = int(2 * EDGE / BIN)  # 26 x 26 bins


def ab_bins(ab: np.ndarray) -> np.ndarray:
    """a*b* (..., 2) in Lab units -> flat bin index (...)."""
    index = np.clip(((np.asarray(ab) + EDGE) // BIN).astype(np.int64), 0, BINS - 1)
    return index[..., 0] * BINS + index[..., 1]


def rebalancing_weights(histogram: np.ndarray, lam: float = 0.5, sigma: float = 5.0) -> np.ndarray:
    """Counts per a*b* bin (BINS*BINS,) -> per-bin loss weights (Zhang et al. 2016, eq. 4)."""
    from scipy.ndimage import gaussian_filter

    counts = np.asarray(histogram, np.float64).reshape(BINS, BINS)
    in_gamut = counts > 0
    prior = gaussian_filter(counts / counts.sum(), sigma / BIN, mode="constant")
    prior = np.where(in_gamut, prior, 0.0)
    prior /= prior.sum()
    q = in_gamut.sum()
    weights = np.where(in_gamut, 1.0 / ((1 - lam) * prior + lam / q), 0.0)
    weights /= (prior * weights).sum()  # E_prior[w] = 1, so the loss keeps the MSE's scale
    return weights.ravel().astype(np.float32)


def ab_histogram(data_dir: str, scale: int) -> np.ndarray:
    """Counts of the training split's a*b* per bin, at the training scale."""
    from .color import rgb_to_lab
    from .data.batches import decode, load_split, to_scale

    counts = np.zeros(BINS * BINS, np.int64)
    for example in load_split(data_dir, "train"):
        lab = rgb_to_lab(to_scale(decode(example.jpeg), scale))
        counts += np.bincount(ab_bins(lab[..., 1:]).ravel(), minlength=BINS * BINS)
    return counts


@keras.saving.register_keras_serializable(package="koalarization")
class RebalancedMSE(keras.losses.Loss):
    """Squared error on a*b*/127, each pixel weighted by the rarity of its true a*b* (see the module docstring)."""

    def __init__(self, weights: Any, name: str = "rebalanced_mse", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.weights = [float(w) for w in np.asarray(weights).ravel()]
        if len(self.weights) != BINS * BINS:
            raise ValueError(f"expected {BINS * BINS} bin weights, got {len(self.weights)}")

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ab = unscale_ab(ops.cast(y_true, "float32"))
        index = ops.cast(ops.clip(ops.floor((ab + EDGE) / BIN), 0, BINS - 1), "int32")
        flat = index[..., 0] * BINS + index[..., 1]
        weight = ops.take(ops.convert_to_tensor(self.weights, "float32"), flat)
        error = ops.mean(ops.square(ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")), axis=-1)
        return ops.mean(weight * error, axis=(1, 2))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weights": self.weights}


@keras.saving.register_keras_serializable(package="koalarization")
class ABDistance(keras.losses.Loss):
    """Mean Euclidean length of the a*b*/127 error per pixel, smooth at zero (see the module docstring)."""

    def __init__(self, epsilon: float = 1e-3, name: str = "ab_distance", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.epsilon = float(epsilon)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        squared = ops.sum(ops.square(ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")), axis=-1)
        return ops.mean(ops.sqrt(squared + self.epsilon ** 2) - self.epsilon, axis=(1, 2))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


def make_loss(kind: str, data_dir: str, training: dict[str, Any], lam: float = 0.5) -> Any:
    """The Keras loss of a run: "mse" (the paper's), "distance" (ABDistance) or a RebalancedMSE with weights from
    the training split (cached beside the prepared data, so seeds and resumes share them)."""
    if kind == "mse":
        return "mse"
    if kind == "distance":
        return ABDistance()
    if kind != "rebalanced":
        raise ValueError(f"unknown loss {kind!r}")
    cache = os.path.join(data_dir, f"ab_histogram_{training['train_scale']}.json")
    if os.path.exists(cache):
        with open(cache) as handle:
            counts = np.asarray(json.load(handle))
    else:
        from .atomic import write_json_atomic

        counts = ab_histogram(data_dir, training["train_scale"])
        write_json_atomic(cache, counts.tolist())
    return RebalancedMSE(rebalancing_weights(counts, lam))
