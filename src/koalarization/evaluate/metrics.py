"""Per-photo colorization metrics, each with its exact definition and protocol.

The paper judged its model only by a user study; these numbers are an addition of the reproduction. Every
function compares a prediction with its ground truth, both uint8 RGB of the same shape (H, W, 3), and returns a
float for one photo. Aggregation (means, confidence intervals, paired tests) lives in ``stats.py``.

Colour conversions are scikit-image's (``rgb2lab``, sRGB, D65), as everywhere else in the project.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
from scipy.ndimage import uniform_filter
from skimage.color import deltaE_ciede2000
from skimage.metrics import peak_signal_noise_ratio
from skimage.util import crop

from koalarization.color import rgb_to_lab, scale_ab

PSNR_CAP_DB = 100.0  # identical images have an infinite PSNR; a cap keeps means and intervals finite
SSIM_WIN_SIZE = 7  # scikit-image's default: a 7x7 uniform window
AUC_MAX_THRESHOLD = 150.0  # Zhang et al. 2016: thresholds 0..150 on the a*b* error
AUC_STEPS = 151  # thresholds 0, 1, ..., 150


class MetricInfo(NamedTuple):
    """What a report needs to know about one metric."""

    function: Callable[[Pair], float]
    higher_is_better: bool | None  # None: no better direction (the ideal is matching the ground truth)
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


class Truth:
    """A ground truth (uint8 RGB) scored against many predictions: what the metrics need of it alone (its L*a*b*,
    its float copy and SSIM window statistics, colourfulness, a*b* spread, chroma bands), computed once instead of
    once per prediction. The same numbers, bit for bit: the same operations on the same arrays."""

    def __init__(self, truth: np.ndarray, lab: np.ndarray | None = None):
        self.rgb = _check_rgb(truth, "truth")
        self._lab = lab
        self._ssim: dict[int, list[tuple[np.ndarray, ...]]] = {}
        self._bands: dict[tuple, tuple[list[np.ndarray], list[int]]] = {}
        self._colorfulness: float | None = None
        self._spread: float | None = None

    @property
    def lab(self) -> np.ndarray:
        if self._lab is None:
            self._lab = rgb_to_lab(self.rgb)
        return self._lab

    @property
    def colorfulness(self) -> float:
        if self._colorfulness is None:
            self._colorfulness = colorfulness(self.rgb)
        return self._colorfulness

    @property
    def ab_spread(self) -> float:
        """sqrt(var(a*) + var(b*)) over the pixels (the denominator of ab_std_ratio)."""
        if self._spread is None:
            self._spread = _spread(self.lab)
        return self._spread

    def ssim_terms(self, win_size: int) -> list[tuple[np.ndarray, ...]]:
        """Per channel, the truth's side of skimage's SSIM: (x, 2 ux, ux², vx, ux), ux and vx its window's mean and
        variance."""
        if win_size not in self._ssim:
            image = self.rgb.astype(np.float64)
            terms: list[tuple[np.ndarray, ...]] = []
            for channel in range(image.shape[-1]):
                x = image[..., channel]
                ux, uxx = uniform_filter(x, size=win_size), uniform_filter(x * x, size=win_size)
                terms.append((x, 2 * ux, ux**2, _cov_norm(win_size) * (uxx - ux * ux), ux))
            self._ssim[win_size] = terms
        return self._ssim[win_size]

    def bands(self, edges: tuple) -> tuple[list[np.ndarray], list[int]]:
        """The pixels of each true-chroma band (masks) and their counts."""
        if edges not in self._bands:
            band = np.digitize(np.hypot(self.lab[..., 1], self.lab[..., 2]), edges[1:-1])
            masks = [band == k for k in range(len(edges) - 1)]
            self._bands[edges] = masks, [int(np.count_nonzero(mask)) for mask in masks]
        return self._bands[edges]


def _cov_norm(win_size: int) -> float:
    points = win_size**2
    return points / (points - 1)  # sample covariance, as skimage's default


def _spread(lab: np.ndarray) -> float:
    return float(np.sqrt(lab[..., 1:].reshape(-1, 2).var(axis=0).sum()))


class Pair:
    """A prediction and its ground truth (uint8 RGB, same shape), with their L*a*b* and per-pixel CIEDE2000 computed
    once and shared by every metric (each used to convert both images again: 10 conversions per prediction).
    `truth` may be a `Truth`, shared by the predictions of one photo; else `truth_lab` may be given."""

    def __init__(self, pred: np.ndarray, truth: np.ndarray | Truth, truth_lab: np.ndarray | None = None):
        self.reference = truth if isinstance(truth, Truth) else Truth(truth, truth_lab)
        self.pred, self.truth = _check_pair(pred, self.reference.rgb)
        self._pred_lab: np.ndarray | None = None
        self._delta_e: np.ndarray | None = None

    @property
    def truth_lab(self) -> np.ndarray:
        return self.reference.lab

    @property
    def pred_lab(self) -> np.ndarray:
        if self._pred_lab is None:
            self._pred_lab = rgb_to_lab(self.pred)
        return self._pred_lab

    @property
    def delta_e(self) -> np.ndarray:
        """Per-pixel CIEDE2000 (skimage, kL = kC = kH = 1)."""
        if self._delta_e is None:
            self._delta_e = deltaE_ciede2000(self.truth_lab, self.pred_lab)
        return self._delta_e

    def ab_error(self) -> np.ndarray:
        """Per-pixel Euclidean distance between the a*b* of the two images, in Lab units."""
        diff = self.pred_lab[..., 1:] - self.truth_lab[..., 1:]
        return np.sqrt(np.sum(diff**2, axis=-1))


def mse_ab_scaled(pred: np.ndarray, truth: np.ndarray) -> float:
    """The paper's training loss on one photo: mean over pixels and both channels of (a*b*/127 error)^2.

    a*b* come from ``skimage.color.rgb2lab`` of each uint8 image; 0 for identical images.
    """
    return _mse_ab(Pair(pred, truth))


def _mse_ab(pair: Pair) -> float:
    diff = scale_ab(pair.pred_lab[..., 1:] - pair.truth_lab[..., 1:])
    return float(np.mean(diff**2))


def psnr_rgb(pred: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB on the 0..255 RGB values (``skimage.metrics.peak_signal_noise_ratio``, data_range=255).

    Capped at ``PSNR_CAP_DB`` (100 dB): identical images give exactly 100 instead of infinity. Only near-identical
    pairs reach the cap (one value off by one level in a photo of over ~51k pixels); colorizations score 20-35 dB.
    """
    return _psnr(Pair(pred, truth))


def _psnr(pair: Pair) -> float:
    if np.array_equal(pair.pred, pair.truth):
        return PSNR_CAP_DB
    value = peak_signal_noise_ratio(pair.truth, pair.pred, data_range=255)
    return float(min(value, PSNR_CAP_DB))


def ssim_rgb(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean SSIM over the three RGB channels (``skimage.metrics.structural_similarity``).

    data_range=255, channel_axis=-1, a 7x7 uniform window (scikit-image's default, Wang et al. 2004 constants).
    Photos with a side under 7 px use the largest odd window that fits (3 or 5); under 3 px SSIM is undefined
    and a ValueError is raised.
    """
    return _ssim(Pair(pred, truth))


def _ssim(pair: Pair) -> float:
    side = min(pair.pred.shape[:2])
    if side < 3:
        raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {pair.pred.shape[:2]}")
    win_size = min(SSIM_WIN_SIZE, side if side % 2 else side - 1)
    pred = pair.pred.astype(np.float64)
    values = np.empty(3, dtype=np.float64)
    for channel, terms in enumerate(pair.reference.ssim_terms(win_size)):
        values[channel] = _ssim_channel(terms, pred[..., channel], win_size)
    return float(values.mean())


def _ssim_channel(truth_terms: tuple[np.ndarray, ...], y: np.ndarray, win_size: int) -> float:
    """skimage.metrics.structural_similarity of one channel (uniform window, data_range=255), its operations in
    its order, with the truth's half given (`Truth.ssim_terms`)."""
    x, two_ux, ux_squared, vx, ux = truth_terms
    uy = uniform_filter(y, size=win_size)
    uyy = uniform_filter(y * y, size=win_size)
    uxy = uniform_filter(x * y, size=win_size)
    cov_norm = _cov_norm(win_size)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a1, a2, b1, b2 = two_ux * uy + c1, 2 * vxy + c2, ux_squared + uy**2 + c1, vx + vy + c2
    return float(crop((a1 * a2) / (b1 * b2), (win_size - 1) // 2).mean(dtype=np.float64))


def ciede2000_mean(pred: np.ndarray, truth: np.ndarray | Truth) -> float:
    """Mean over pixels of the CIEDE2000 colour difference (``skimage.color.deltaE_ciede2000``, kL=kC=kH=1).

    Both images go through ``rgb2lab``; 0 for identical images, about 1 is a just-noticeable difference. A `Truth`
    scored against many predictions is converted once.
    """
    return _ciede2000(Pair(pred, truth))


def _ciede2000(pair: Pair) -> float:
    return float(np.mean(pair.delta_e))


CHROMA_BANDS = (0.0, 5.0, 10.0, 20.0, 40.0, np.inf)


def ciede2000_by_chroma(pred: np.ndarray, truth: np.ndarray, edges: tuple = CHROMA_BANDS) -> list[dict[str, Any]]:
    """CIEDE2000 summed per band of the *true* chroma (sqrt(a*² + b*²)): shows where an error comes from.

    MSE regression lowers the error on colorful pixels and adds a cast to near-neutral ones (walls, sky, roads);
    the photo's mean ΔE00 hides that trade, this split shows it. One row per band: band, pixels, sum of ΔE00.
    """
    return _by_chroma(Pair(pred, truth), edges)


def _by_chroma(pair: Pair, edges: tuple = CHROMA_BANDS) -> list[dict[str, Any]]:
    error = pair.delta_e
    masks, counts = pair.reference.bands(edges)
    return [{"band": chroma_band_label(edges, k), "pixels": counts[k], "ciede2000_sum": float(error[masks[k]].sum())}
            for k in range(len(edges) - 1)]


def chroma_band_label(edges: tuple, k: int) -> str:
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


def _colorfulness(pair: Pair) -> float:
    return colorfulness(pair.pred)


def colorfulness_gap(pred: np.ndarray, truth: np.ndarray) -> float:
    """ΔCF = colorfulness(pred) - colorfulness(truth): signed, negative when the prediction is duller."""
    return _colorfulness_gap(Pair(pred, truth))


def _colorfulness_gap(pair: Pair) -> float:
    return colorfulness(pair.pred) - pair.reference.colorfulness


def ab_error_auc(pred: np.ndarray, truth: np.ndarray, max_threshold: float = AUC_MAX_THRESHOLD,
                 steps: int = AUC_STEPS) -> float:
    """Zhang et al. (2016) AuC: area under the cumulative curve of per-pixel a*b* error, normalized to [0, 1].

    The error of a pixel is the Euclidean distance between predicted and true (a*, b*) in Lab units (not scaled).
    acc(t) is the share of pixels with error <= t, for ``steps`` evenly spaced thresholds t from 0 to
    ``max_threshold`` (default 0, 1, ..., 150); the result is the trapezoidal area under acc(t) divided by
    ``max_threshold``. Identical images give 1. The continuous limit is mean(clip(1 - error/max_threshold, 0, 1));
    the default grid differs from it by at most 1/(2*150) = 0.0033.
    """
    return _auc(Pair(pred, truth), max_threshold, steps)


def _auc(pair: Pair, max_threshold: float = AUC_MAX_THRESHOLD, steps: int = AUC_STEPS) -> float:
    errors = pair.ab_error().ravel()
    thresholds = np.linspace(0.0, max_threshold, steps)
    if np.array_equal(thresholds, np.arange(steps)):  # whole thresholds: e <= t exactly when ceil(e) <= t
        below = np.bincount(np.minimum(np.ceil(errors), steps).astype(np.int64), minlength=steps + 1)
        accuracy = np.cumsum(below)[:steps] / errors.size  # the counts a sort and a search give, without the sort
    else:
        accuracy = np.searchsorted(np.sort(errors), thresholds, side="right") / errors.size
    return float(np.trapezoid(accuracy, thresholds) / max_threshold)


def ab_std_ratio(pred: np.ndarray, truth: np.ndarray) -> float:
    """Spatial variation of color, prediction over truth: sqrt(var(a*) + var(b*)) over the pixels of the prediction,
    divided by the same for the ground truth. Near 0 for a uniform cast (one color over the whole photo), 1 for the
    truth's variety; undefined (NaN) for a colorless truth."""
    return _ab_std_ratio(Pair(pred, truth))


def _ab_std_ratio(pair: Pair) -> float:
    spread = _spread(pair.pred_lab), pair.reference.ab_spread
    return float(spread[0] / spread[1]) if spread[1] > 1e-6 else float("nan")


MetricName = Literal["mse_ab", "psnr", "ssim", "ciede2000", "auc_ab", "colorfulness", "colorfulness_gap",
                     "ab_std_ratio"]

METRICS: dict[str, MetricInfo] = {
    "mse_ab": MetricInfo(_mse_ab, False, "",
                         "mean squared error on a*b*/127 (the paper's training loss), skimage rgb2lab", "MSE a*b*/127"),
    "psnr": MetricInfo(_psnr, True, "dB",
                       "PSNR on RGB 0..255 (skimage, data_range=255), capped at 100 dB", "PSNR"),
    "ssim": MetricInfo(_ssim, True, "",
                       "SSIM on RGB, mean of channels (skimage, 7x7 uniform window, data_range=255)", "SSIM"),
    "ciede2000": MetricInfo(_ciede2000, False, "ΔE00",
                            "mean CIEDE2000 colour difference over pixels (skimage deltaE_ciede2000)", "CIEDE2000"),
    "auc_ab": MetricInfo(_auc, True, "",
                         "area under the share of pixels with a*b* error <= t, t = 0..150, normalized to [0, 1] "
                         "(Zhang et al. 2016)", "AuC a*b*"),
    "colorfulness": MetricInfo(_colorfulness, None, "",
                               "colourfulness of the prediction (Hasler & Süsstrunk 2003, M3 on RGB 0..255)",
                               "Colourfulness"),
    "colorfulness_gap": MetricInfo(_colorfulness_gap, None, "",
                                   "colourfulness(prediction) - colourfulness(ground truth); 0 is ideal, negative "
                                   "is duller", "ΔCF"),
    "ab_std_ratio": MetricInfo(_ab_std_ratio, None, "",
                               "spatial standard deviation of a*b* over the photo, prediction / ground truth; 0 is a "
                               "uniform cast, 1 the truth's variety of color", "a*b* variation ratio"),
}


def evaluate_pair(pred: np.ndarray, truth: np.ndarray | Truth, truth_lab: np.ndarray | None = None
                  ) -> dict[str, float]:
    """All metrics of one prediction against its ground truth, keyed by the names in ``METRICS``."""
    pair = Pair(pred, truth, truth_lab)
    return {name: info.function(pair) for name, info in METRICS.items()}


def score(pred: np.ndarray, truth: np.ndarray | Truth, truth_lab: np.ndarray | None = None
          ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Every metric and the CIEDE2000 split by true chroma of one prediction, each image converted to L*a*b* once
    (the evaluation's inner loop; the same numbers as `evaluate_pair` and `ciede2000_by_chroma`). `truth`: a
    `Truth` where one photo is scored against many predictions."""
    pair = Pair(pred, truth, truth_lab)
    return {name: info.function(pair) for name, info in METRICS.items()}, _by_chroma(pair)


def higher_is_better(metric: str) -> bool | None:
    """The metric's direction, from ``METRICS`` (None: no better direction, or not a metric of the study)."""
    info = METRICS.get(metric)
    return None if info is None else info.higher_is_better


assert set(get_args(MetricName)) == set(METRICS), "MetricName and METRICS must name the same metrics"
