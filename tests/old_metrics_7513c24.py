# ruff: noqa
# evaluate/metrics.py as of commit 7513c24 (before the metrics rework), verbatim below this header: the reference
# the evaluation is held to, number for number (tests/test_speed_equivalence.py, benchmarks/evaluation.py).
"""Per-photo colorization metrics, each with its exact definition and protocol.

The paper judged its model only by a user study; these numbers are an addition of the reproduction. Every
function compares a prediction with its ground truth, both uint8 RGB of the same shape (H, W, 3), and returns a
float for one photo. Aggregation (means, confidence intervals, paired tests) lives in ``stats.py``.

Colour conversions are scikit-image's (``rgb2lab``, sRGB, D65), as everywhere else in the project.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import numpy as np
from skimage.color import deltaE_ciede2000
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from koalarization.color import rgb_to_lab, scale_ab

PSNR_CAP_DB = 100.0  # identical images have an infinite PSNR; a cap keeps means and intervals finite
SSIM_WIN_SIZE = 7  # scikit-image's default: a 7x7 uniform window
AUC_MAX_THRESHOLD = 150.0  # Zhang et al. 2016: thresholds 0..150 on the a*b* error
AUC_STEPS = 151  # thresholds 0, 1, ..., 150


class MetricInfo(NamedTuple):
    """What a report needs to know about one metric."""

    function: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: Optional[bool]  # None: no better direction (the ideal is matching the ground truth)
    unit: str
    definition: str
    label: str = ""


def _check_rgb(image, name):
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{name} must be uint8 RGB of shape (H, W, 3), got {image.dtype} {image.shape}")
    return image


def _check_pair(pred, truth):
    pred, truth = _check_rgb(pred, "pred"), _check_rgb(truth, "truth")
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth differ in shape: {pred.shape} vs {truth.shape}")
    return pred, truth


def _ab_error(pred, truth):
    """Per-pixel Euclidean distance between the a*b* of two images, in Lab units."""
    diff = rgb_to_lab(pred)[..., 1:] - rgb_to_lab(truth)[..., 1:]
    return np.sqrt(np.sum(diff**2, axis=-1))


def mse_ab_scaled(pred: np.ndarray, truth: np.ndarray) -> float:
    """The paper's training loss on one photo: mean over pixels and both channels of (a*b*/127 error)^2.

    a*b* come from ``skimage.color.rgb2lab`` of each uint8 image; 0 for identical images.
    """
    pred, truth = _check_pair(pred, truth)
    diff = scale_ab(rgb_to_lab(pred)[..., 1:] - rgb_to_lab(truth)[..., 1:])
    return float(np.mean(diff**2))


def psnr_rgb(pred: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB on the 0..255 RGB values (``skimage.metrics.peak_signal_noise_ratio``, data_range=255).

    Capped at ``PSNR_CAP_DB`` (100 dB): identical images give exactly 100 instead of infinity. Only near-identical
    pairs reach the cap (one value off by one level in a photo of over ~51k pixels); colorizations score 20-35 dB.
    """
    pred, truth = _check_pair(pred, truth)
    if np.array_equal(pred, truth):
        return PSNR_CAP_DB
    value = peak_signal_noise_ratio(truth, pred, data_range=255)
    return float(min(value, PSNR_CAP_DB))


def ssim_rgb(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean SSIM over the three RGB channels (``skimage.metrics.structural_similarity``).

    data_range=255, channel_axis=-1, a 7x7 uniform window (scikit-image's default, Wang et al. 2004 constants).
    Photos with a side under 7 px use the largest odd window that fits (3 or 5); under 3 px SSIM is undefined
    and a ValueError is raised.
    """
    pred, truth = _check_pair(pred, truth)
    side = min(pred.shape[:2])
    if side < 3:
        raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {pred.shape[:2]}")
    win_size = min(SSIM_WIN_SIZE, side if side % 2 else side - 1)
    value = structural_similarity(truth.astype(np.float64), pred.astype(np.float64), win_size=win_size,
                                  data_range=255, channel_axis=-1)
    return float(value)


def ciede2000_mean(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over pixels of the CIEDE2000 colour difference (``skimage.color.deltaE_ciede2000``, kL=kC=kH=1).

    Both images go through ``rgb2lab``; 0 for identical images, about 1 is a just-noticeable difference.
    """
    pred, truth = _check_pair(pred, truth)
    return float(np.mean(deltaE_ciede2000(rgb_to_lab(truth), rgb_to_lab(pred))))


CHROMA_BANDS = (0.0, 5.0, 10.0, 20.0, 40.0, np.inf)


def ciede2000_by_chroma(pred: np.ndarray, truth: np.ndarray, edges=CHROMA_BANDS) -> list[dict[str, float]]:
    """CIEDE2000 summed per band of the *true* chroma (sqrt(a*² + b*²)): shows where an error comes from.

    MSE regression lowers the error on colorful pixels and adds a cast to near-neutral ones (walls, sky, roads);
    the photo's mean ΔE00 hides that trade, this split shows it. One row per band: band, pixels, sum of ΔE00.
    """
    pred, truth = _check_pair(pred, truth)
    lab_truth = rgb_to_lab(truth)
    error = deltaE_ciede2000(lab_truth, rgb_to_lab(pred))
    band = np.digitize(np.hypot(lab_truth[..., 1], lab_truth[..., 2]), edges[1:-1])
    return [{"band": chroma_band_label(edges, k), "pixels": int(np.count_nonzero(band == k)),
             "ciede2000_sum": float(error[band == k].sum())} for k in range(len(edges) - 1)]


def chroma_band_label(edges, k: int) -> str:
    low, high = edges[k], edges[k + 1]
    return f"chroma ≥ {low:g}" if np.isinf(high) else f"{low:g}–{high:g}"


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness M^(3) of one image, on its 0..255 (gamma-encoded) values.

    rg = R - G, yb = (R + G)/2 - B; M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2), with
    population standard deviations over all pixels. A gray image (R = G = B) scores 0.
    """
    rgb = _check_rgb(rgb, "rgb").astype(np.float64)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = np.hypot(np.std(rg), np.std(yb))
    offset = np.hypot(np.mean(rg), np.mean(yb))
    return float(spread + 0.3 * offset)


def prediction_colorfulness(pred: np.ndarray, truth: np.ndarray) -> float:
    """colorfulness(pred); takes the pair so that every entry of ``METRICS`` has the same signature."""
    pred, truth = _check_pair(pred, truth)
    return colorfulness(pred)


def colorfulness_gap(pred: np.ndarray, truth: np.ndarray) -> float:
    """ΔCF = colorfulness(pred) - colorfulness(truth): signed, negative when the prediction is duller."""
    pred, truth = _check_pair(pred, truth)
    return colorfulness(pred) - colorfulness(truth)


def ab_error_auc(pred: np.ndarray, truth: np.ndarray, max_threshold: float = AUC_MAX_THRESHOLD,
                 steps: int = AUC_STEPS) -> float:
    """Zhang et al. (2016) AuC: area under the cumulative curve of per-pixel a*b* error, normalized to [0, 1].

    The error of a pixel is the Euclidean distance between predicted and true (a*, b*) in Lab units (not scaled).
    acc(t) is the share of pixels with error <= t, for ``steps`` evenly spaced thresholds t from 0 to
    ``max_threshold`` (default 0, 1, ..., 150); the result is the trapezoidal area under acc(t) divided by
    ``max_threshold``. Identical images give 1. The continuous limit is mean(clip(1 - error/max_threshold, 0, 1));
    the default grid differs from it by at most 1/(2*150) = 0.0033.
    """
    pred, truth = _check_pair(pred, truth)
    errors = np.sort(_ab_error(pred, truth).ravel())
    thresholds = np.linspace(0.0, max_threshold, steps)
    accuracy = np.searchsorted(errors, thresholds, side="right") / errors.size
    return float(np.trapezoid(accuracy, thresholds) / max_threshold)


def ab_std_ratio(pred: np.ndarray, truth: np.ndarray) -> float:
    """Spatial variation of color, prediction over truth: sqrt(var(a*) + var(b*)) over the pixels of the prediction,
    divided by the same for the ground truth. Near 0 for a uniform cast (one color over the whole photo), 1 for the
    truth's variety; undefined (NaN) for a colorless truth."""
    pred, truth = _check_pair(pred, truth)
    spread = [np.sqrt(rgb_to_lab(image)[..., 1:].reshape(-1, 2).var(axis=0).sum()) for image in (pred, truth)]
    return float(spread[0] / spread[1]) if spread[1] > 1e-6 else float("nan")


METRICS = {
    "mse_ab": MetricInfo(mse_ab_scaled, False, "",
                         "mean squared error on a*b*/127 (the paper's training loss), skimage rgb2lab", "MSE a*b*/127"),
    "psnr": MetricInfo(psnr_rgb, True, "dB",
                       "PSNR on RGB 0..255 (skimage, data_range=255), capped at 100 dB", "PSNR"),
    "ssim": MetricInfo(ssim_rgb, True, "",
                       "SSIM on RGB, mean of channels (skimage, 7x7 uniform window, data_range=255)", "SSIM"),
    "ciede2000": MetricInfo(ciede2000_mean, False, "ΔE00",
                            "mean CIEDE2000 colour difference over pixels (skimage deltaE_ciede2000)", "CIEDE2000"),
    "auc_ab": MetricInfo(ab_error_auc, True, "",
                         "area under the share of pixels with a*b* error <= t, t = 0..150, normalized to [0, 1] "
                         "(Zhang et al. 2016)", "AuC a*b*"),
    "colorfulness": MetricInfo(prediction_colorfulness, None, "",
                               "colourfulness of the prediction (Hasler & Süsstrunk 2003, M3 on RGB 0..255)",
                               "Colourfulness"),
    "colorfulness_gap": MetricInfo(colorfulness_gap, None, "",
                                   "colourfulness(prediction) - colourfulness(ground truth); 0 is ideal, negative "
                                   "is duller", "ΔCF"),
    "ab_std_ratio": MetricInfo(ab_std_ratio, None, "",
                               "spatial standard deviation of a*b* over the photo, prediction / ground truth; 0 is a "
                               "uniform cast, 1 the truth's variety of color", "a*b* variation ratio"),
}


def evaluate_pair(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """All metrics of one prediction against its ground truth, keyed by the names in ``METRICS``."""
    pred, truth = _check_pair(pred, truth)
    return {name: info.function(pred, truth) for name, info in METRICS.items()}
