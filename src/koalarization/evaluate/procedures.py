"""Comparing training procedures: the seed is a random factor beside the photo.

A network trained once is one draw from its training procedure; on a few hundred photos, two seeds of one
procedure can differ as much as two procedures do (notebook 3's seed-to-seed table). A claim about a *procedure*
("fusing the classifier's feature maps lowers the color error") must therefore generalize over seeds as well as over
photos (Bouthillier et al. 2021, "Accounting for Variance in Machine Learning Benchmarks").

The test: procedure A trained with seeds S_A, B with S_B (at least two each; the seeds are not paired), both scored
on the same photos. The estimate is the mean over photos of (A's seeds averaged) - (B's seeds averaged). Its variance
has two parts:
- the seeds: the variance of each procedure's per-seed means (each seed's mean over all photos), over its number
  of seeds, summed over A and B (what a rerun with other seeds would move);
- the photos: the variance over photos of the seed-averaged difference, over the number of photos (what other
  photos would move).
The estimate over its standard error is referred to a t distribution with Welch-Satterthwaite degrees of freedom
(few seeds give few degrees of freedom: the test is strict when the seeds disagree). Both parts contain the
photo-by-seed noise once, so the error is slightly overstated: the test errs on the side of "no evidence".
A one-seed procedure gets no test at all.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..stages import ProcedureComparison, Verdict
from .metrics import METRICS, higher_is_better
from .stats import holm

ALPHA = 0.05


def scores_by_seed(per_photo: pd.DataFrame, model: str, metric: str) -> pd.DataFrame:
    """photo x seed table of one network's scores."""
    rows = per_photo[(per_photo["model"] == model) & per_photo["seed"].notna()]
    return rows.pivot_table(index="photo_id", columns="seed", values=metric, aggfunc="mean")


def seed_aware_difference(a: pd.DataFrame, b: pd.DataFrame, alpha: float = ALPHA) -> dict[str, float]:
    """photo x seed tables of two procedures (same photos) -> the mean difference a - b, its two-part standard error,
    degrees of freedom, two-sided p and (1 - alpha) interval (see the module docstring)."""
    photos = a.index.intersection(b.index)
    a, b = a.loc[photos].dropna(), b.loc[photos].dropna()
    photos = a.index.intersection(b.index)
    a, b = a.loc[photos], b.loc[photos]
    n_a, n_b, n_p = a.shape[1], b.shape[1], len(photos)
    difference = (a.mean(axis=1) - b.mean(axis=1)).to_numpy()
    estimate = float(difference.mean()) if n_p else np.nan
    out = {"n_photos": n_p, "mean_a": float(a.to_numpy().mean()) if n_p else np.nan,
           "mean_b": float(b.to_numpy().mean()) if n_p else np.nan, "mean_diff": estimate}
    if n_a < 2 or n_b < 2 or n_p < 2:
        return {**out, "se": np.nan, "se_seed": np.nan, "se_photo": np.nan, "df": np.nan, "p_value": np.nan,
                "diff_ci_low": np.nan, "diff_ci_high": np.nan}
    parts = [a.mean(axis=0).var(ddof=1) / n_a, b.mean(axis=0).var(ddof=1) / n_b, difference.var(ddof=1) / n_p]
    test = welch_test(np.array(estimate), [np.array(part) for part in parts], [n_a - 1, n_b - 1, n_p - 1], alpha)
    return {**out, **{key: float(value) for key, value in test.items()},
            "se_seed": float(np.sqrt(parts[0] + parts[1])), "se_photo": float(np.sqrt(parts[2]))}


def welch_test(estimate: np.ndarray, parts: list[np.ndarray], dofs: list[int], alpha: float = ALPHA
               ) -> dict[str, np.ndarray]:
    """The estimate over the square root of its summed variance parts, referred to a t distribution with
    Welch-Satterthwaite degrees of freedom: standard error, df, two-sided p and (1 - alpha) interval. Works on
    arrays (one test per element), so `evaluate.stability` can run the study's test on thousands of simulated runs."""
    total = sum(parts)
    se = np.sqrt(total)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(se > 0, total ** 2 / sum(np.where(p > 0, p ** 2 / d, 0.0) for p, d in zip(parts, dofs)), np.inf)
        t = np.where(se > 0, estimate / se, np.where(estimate == 0, 0.0, np.copysign(np.inf, estimate)))
        half = np.where(se > 0, stats.t.ppf(1 - alpha / 2, df) * se, 0.0)
    return {"se": se, "df": df, "p_value": 2 * stats.t.sf(np.abs(t), df), "diff_ci_low": estimate - half,
            "diff_ci_high": estimate + half}


def verdict_class(mean_diff: float, p_holm: float, metric: str, alpha: float = ALPHA) -> Verdict:
    """What a comparison a - b allows, in a word: which is better (or higher, for a metric with no better
    direction), no evidence, or not tested (NaN p: a procedure with one seed)."""
    if not np.isfinite(p_holm):
        return "not tested"
    if p_holm >= alpha:
        return "no evidence"
    better = higher_is_better(metric)
    a_higher = mean_diff > 0
    if better is None:
        return "a higher" if a_higher else "b higher"
    return "a better" if a_higher == better else "b better"


def _verdict(model_a: str, model_b: str, metric: str, row: dict, alpha: float) -> str:
    verdict = verdict_class(row["mean_diff"], row["p_holm"], metric, alpha)
    if verdict == "not tested":
        return f"not tested: {model_a} or {model_b} has fewer than two seeds"
    if verdict == "no evidence":
        return f"no evidence either way between the procedures of {model_a} and {model_b} on {metric} " \
               f"(Holm p={row['p_holm']:.3g})"
    first, second = (model_a, model_b) if verdict.startswith("a") else (model_b, model_a)
    if verdict.endswith("higher"):
        return f"{first}'s procedure gives higher {metric} than {second}'s (Holm p={row['p_holm']:.3g})"
    return f"{first}'s procedure is better than {second}'s on {metric} (Holm p={row['p_holm']:.3g})"


def procedure_family(per_photo: pd.DataFrame, pairs: list[tuple[str, str, list[str]]], split: str,
                     alpha: float = ALPHA) -> list[ProcedureComparison]:
    """Every (procedure a, procedure b, metrics) question, seed-aware, Holm-adjusted as one family over the
    comparisons that could be tested (both procedures with two or more seeds)."""
    rows: list[dict[str, Any]] = []
    for model_a, model_b, metrics in pairs:
        for metric in metrics:
            a, b = scores_by_seed(per_photo, model_a, metric), scores_by_seed(per_photo, model_b, metric)
            rows.append({"split": split, "metric": metric, "label": METRICS[metric].label, "model_a": model_a,
                         "model_b": model_b, "seeds_a": sorted(int(s) for s in a.columns),
                         "seeds_b": sorted(int(s) for s in b.columns), "higher_is_better": higher_is_better(metric),
                         "alpha": alpha, **seed_aware_difference(a, b, alpha)})
    tested = [r for r in rows if np.isfinite(r["p_value"])]
    for row, adjusted in zip(tested, holm(np.array([r["p_value"] for r in tested]))):
        row["p_holm"] = float(adjusted)
    for row in rows:
        row.setdefault("p_holm", np.nan)
        row["family_size"] = len(tested)
        row["verdict"] = _verdict(row["model_a"], row["model_b"], row["metric"], row, alpha)
        excludes_zero = row["diff_ci_low"] > 0 or row["diff_ci_high"] < 0
        if excludes_zero and not row["p_holm"] < alpha:
            row["interval_vs_test"] = ("the 95% interval excludes 0 but the Holm-adjusted test does not reject: the "
                                       "interval is not adjusted for the other comparisons of the family; the "
                                       "verdict follows the adjusted test")
    return [ProcedureComparison(**row) for row in rows]
