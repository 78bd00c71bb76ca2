"""Aggregate per-photo metrics: bootstrap confidence intervals and paired model comparisons.

A test split of a few dozen photos gives noisy means, so every mean is reported with a 95% interval, and "is
model A better than model B?" is answered by a paired test over the same photos, with an effect size.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from koalarization.evaluate.metrics import METRICS, higher_is_better


def bootstrap_ci(values: np.ndarray, statistic: Callable[[np.ndarray], float] = np.mean, n_resamples: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(estimate, low, high): ``statistic`` of the values and its bootstrap interval (scipy.stats.bootstrap, BCa).

    NaNs are dropped first. Degenerate cases do not raise: no values gives (nan, nan, nan); one value gives
    (value, nan, nan), since one photo says nothing about spread; constant values give (c, c, c). If BCa is
    undefined (a degenerate resampling distribution) the percentile interval is used instead.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        return np.nan, np.nan, np.nan
    estimate = float(statistic(values))
    if values.size == 1:
        return estimate, np.nan, np.nan
    if np.all(values == values[0]):
        return estimate, estimate, estimate
    low, high = np.nan, np.nan
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.bootstrap((values,), statistic, n_resamples=n_resamples, confidence_level=confidence,
                                     method=method, rng=np.random.default_rng(seed))
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            break
    return estimate, float(low), float(high)


def _metric_columns(per_photo, by, metrics):
    if metrics is not None:
        return list(metrics)
    known = [name for name in METRICS if name in per_photo.columns]
    if known:
        return known
    return [c for c in per_photo.select_dtypes("number").columns if c not in (by, "photo_id")]


def summarize(per_photo: pd.DataFrame, by: str = "model", metrics: list[str] | None = None,
              **bootstrap_kwargs: Any) -> pd.DataFrame:
    """One row per model and metric: model, metric, mean, ci_low, ci_high, n, higher_is_better.

    ``per_photo`` has one row per (model, photo) with a column per metric; ``metrics`` defaults to the columns
    named in ``METRICS``. Intervals come from ``bootstrap_ci`` (extra keyword arguments go to it); n counts the
    non-missing values. Models keep their order of first appearance.
    """
    rows = []
    for model, group in per_photo.groupby(by, sort=False):
        for metric in _metric_columns(per_photo, by, metrics):
            mean, low, high = bootstrap_ci(group[metric].to_numpy(dtype=np.float64), **bootstrap_kwargs)
            rows.append({by: model, "metric": metric, "mean": mean, "ci_low": low, "ci_high": high,
                         "n": int(group[metric].notna().sum()), "higher_is_better": higher_is_better(metric)})
    return pd.DataFrame(rows, columns=[by, "metric", "mean", "ci_low", "ci_high", "n", "higher_is_better"])


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (Kerby 2014): (R+ - R-) / (R+ + R-) over the ranks of |d|.

    Zero differences are dropped, as in the Wilcoxon test's default. +1: every pair favours the first sample.
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def cohens_dz(differences: np.ndarray) -> float:
    """Cohen's d_z: mean difference over the standard deviation of the differences (ddof=1)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2:
        return np.nan
    sd = d.std(ddof=1)
    if sd == 0:
        return 0.0 if d.mean() == 0 else float(np.copysign(np.inf, d.mean()))
    return float(d.mean() / sd)


def _verdict(model_a, model_b, metric, p_value, direction, better, alpha):
    if not np.isfinite(p_value) or p_value >= alpha:
        p_text = "n/a" if not np.isfinite(p_value) else f"{p_value:.3g}"
        return f"no significant difference between {model_a} and {model_b} on {metric} (p={p_text})"
    first, second = (model_a, model_b) if direction > 0 else (model_b, model_a)
    if better is None:
        return f"{first} higher than {second} on {metric} (p={p_value:.3g}; no better direction for this metric)"
    if not better:
        first, second = second, first
    return f"{first} better than {second} on {metric} (p={p_value:.3g})"


def paired_comparison(per_photo: pd.DataFrame, model_a: str, model_b: str, metric: str, *, by: str = "model",
                      alpha: float = 0.05, better: bool | None = None, seed: int = 0) -> dict[str, Any]:
    """Compare two models photo by photo on one metric; reported whatever the answer is.

    Uses the photos present (with a value) for both models. Returns n, both means, the mean difference a - b with
    its bootstrap 95% interval, the two-sided Wilcoxon signed-rank p-value (scipy, zero differences dropped; p = 1
    when all differences are zero), the matched-pairs rank-biserial correlation and Cohen's d_z (both positive
    when a scores higher), and a plain-language verdict at level ``alpha`` that follows the metric's direction
    (``better`` overrides it: True if higher is better, False if lower is).
    """
    better = higher_is_better(metric) if better is None else better
    wide = per_photo[per_photo[by].isin([model_a, model_b])].pivot_table(
        index="photo_id", columns=by, values=metric, aggfunc="mean")
    if model_a in wide and model_b in wide:
        paired = wide[[model_a, model_b]].dropna()
        a, b = paired[model_a].to_numpy(), paired[model_b].to_numpy()
    else:
        a = b = np.array([])
    d = a - b
    diff, diff_low, diff_high = bootstrap_ci(d, seed=seed)
    if d.size == 0:
        statistic, p_value = np.nan, np.nan
    elif np.all(d == 0):
        statistic, p_value = 0.0, 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.wilcoxon(a, b)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    r = rank_biserial(d) if d.size else np.nan
    direction = np.sign(r) if np.isfinite(r) and r != 0 else np.sign(diff)
    verdict = (_verdict(model_a, model_b, metric, p_value, direction, better, alpha) if d.size
               else f"no photos scored by both {model_a} and {model_b} on {metric}")
    return {
        "metric": metric, "model_a": model_a, "model_b": model_b, "n": int(d.size),
        "mean_a": float(a.mean()) if a.size else np.nan, "mean_b": float(b.mean()) if b.size else np.nan,
        "mean_diff": diff, "diff_ci_low": diff_low, "diff_ci_high": diff_high,
        "wilcoxon_statistic": statistic, "p_value": p_value, "rank_biserial": r, "cohens_dz": cohens_dz(d),
        "higher_is_better": better, "alpha": alpha,
        "verdict": verdict,
    }


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (family-wise error control for several metrics or pairs)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p) - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def minimum_detectable_difference(differences: np.ndarray, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference a paired test over these photos would detect with the given power, from
    the spread of the observed paired differences (normal approximation: (z_{1-alpha/2} + z_power) * sd / sqrt(n))."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size < 2:
        return np.nan
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * d.std(ddof=1) / np.sqrt(d.size))


def _agreement(row):
    """Say why a bootstrap interval and the adjusted test can disagree, where they do."""
    excludes_zero = bool(row["diff_ci_low"] > 0 or row["diff_ci_high"] < 0)
    significant = bool(row["p_holm"] < row["alpha"])
    if excludes_zero == significant:
        return ""
    if excludes_zero:
        return ("the 95% interval of the mean difference excludes 0 but the Holm-adjusted test is not significant: "
                "the interval is not adjusted for the other comparisons of the family and is about the mean, while "
                "the test is on signed ranks; the verdict follows the adjusted test")
    return ("the Holm-adjusted test is significant but the 95% interval of the mean difference includes 0: the "
            "test is on signed ranks (most photos move one way) while a few large differences the other way pull "
            "the mean toward 0")


def paired_comparisons(per_photo: pd.DataFrame, pairs: list[tuple[str, str]], metrics: list[str], alpha: float = 0.05,
                       seed: int = 0, by: str = "model") -> pd.DataFrame:
    """Paired comparisons of every (model_a, model_b) pair on every metric, unadjusted (see `adjust_family`), with
    the minimum detectable difference of each."""
    rows = []
    models = set(per_photo[by])
    for a, b in pairs:
        if a not in models or b not in models:
            continue
        for metric in metrics:
            row = paired_comparison(per_photo, a, b, metric, by=by, alpha=alpha, seed=seed)
            wide = per_photo[per_photo[by].isin([a, b])].pivot_table(index="photo_id", columns=by, values=metric)
            row["mdd"] = minimum_detectable_difference((wide[a] - wide[b]).to_numpy()) if len(wide) else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def adjust_family(frame: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Treat every row as one family: Holm-adjust the p-values over all of them, let each verdict follow its
    adjusted p, and say, per row, why the bootstrap interval and the test disagree where they do."""
    frame = frame.copy()
    if frame.empty:
        return frame
    frame["family_size"] = len(frame)
    frame["p_holm"] = holm(frame["p_value"].fillna(1.0).to_numpy())
    effect = frame["rank_biserial"].fillna(0)
    direction = np.where(effect != 0, np.sign(effect), np.sign(frame["mean_diff"].fillna(0)))
    frame["verdict"] = [_verdict(r.model_a, r.model_b, r.metric, r.p_holm, d, r.higher_is_better, alpha)
                        .replace("(p=", "(Holm p=") for r, d in zip(frame.itertuples(), direction)]
    frame["interval_vs_test"] = frame.apply(_agreement, axis=1)
    return frame


def compare_family(per_photo: pd.DataFrame, pairs: list[tuple[str, str]], metrics: list[str], alpha: float = 0.05,
                   seed: int = 0, by: str = "model") -> pd.DataFrame:
    """`paired_comparisons` adjusted as one family (`adjust_family`)."""
    return adjust_family(paired_comparisons(per_photo, pairs, metrics, alpha, seed, by), alpha)
