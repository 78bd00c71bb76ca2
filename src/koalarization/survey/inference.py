"""Intervals and tests for shares of answers, from the naive to the one the verdicts follow.

- `wilson_interval`: the pooled share treating every answer as independent (too narrow: answers of one person, and
  answers on one photo, go together).
- `participant_bootstrap`: participants resampled (covers people, not photos).
- `two_way_bootstrap`: participants *and* photos resampled independently (Owen's pigeonhole bootstrap, 2007): the
  claim "the model fools X% of people" generalizes over both, and with 9 photos the photos dominate. It is slightly
  conservative (it counts the participant-by-photo noise twice), and **the study's verdicts follow it**.
- `photo_t_interval`: a Student-t interval over photos' shares, for published studies that give per-photo figures
  only (participants unknown); photos are the unit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from scipy.stats import t as student_t

from ..evaluate.stats import bootstrap_ci
from ..evaluate.stats import holm as stats_holm

N_BOOT = 4000


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (NaN, NaN for n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    interval = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def participant_bootstrap(clean: pd.DataFrame, kind: str, n_boot: int = 2000, seed: int = 0,
                          confidence: float = 0.95) -> tuple[float, float]:
    """Interval of the pooled share judged real when participants (not answers) are resampled, BCa via
    `koalarization.evaluate.stats.bootstrap_ci` on participant indices. One participant gives (NaN, NaN)."""
    rows = clean[clean["kind"] == kind]
    if rows.empty:
        return float("nan"), float("nan")
    per = rows.groupby("participant_id")["judged_real"].agg(["sum", "count"])
    k, n = per["sum"].to_numpy(float), per["count"].to_numpy(float)

    def pooled_share(indices: np.ndarray) -> float:
        picked = np.asarray(indices, dtype=np.int64)
        return float(k[picked].sum() / n[picked].sum())

    _, low, high = bootstrap_ci(np.arange(len(per)), statistic=pooled_share, n_resamples=n_boot,
                                confidence=confidence, seed=seed)
    return float(low), float(high)


@dataclass(frozen=True)
class Matrices:
    """Answers as participant x photo matrices of "real" counts and answer counts, one pair per condition."""

    participants: list[str]
    photos: list[str]
    real: dict[str, np.ndarray]
    answers: dict[str, np.ndarray]


def answer_matrices(rows: pd.DataFrame, conditions: list[str] | None = None) -> Matrices:
    """`rows` (participant_id, photo_id, judged_real, condition) as matrices over all their participants and
    photos; a photo is one scene, whichever condition showed it."""
    conditions = conditions or sorted(rows["condition"].unique())
    people = sorted(rows["participant_id"].unique())
    photos = sorted(rows["photo_id"].unique())
    p_index = {p: i for i, p in enumerate(people)}
    i_index = {p: i for i, p in enumerate(photos)}
    real, answers = {}, {}
    for condition in conditions:
        own = rows[rows["condition"] == condition]
        r, n = np.zeros((len(people), len(photos))), np.zeros((len(people), len(photos)))
        np.add.at(n, (own["participant_id"].map(p_index), own["photo_id"].map(i_index)), 1)
        np.add.at(r, (own["participant_id"].map(p_index), own["photo_id"].map(i_index)), own["judged_real"])
        real[condition], answers[condition] = r, n
    return Matrices(people, photos, real, answers)


def two_way_draws(matrices: Matrices, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, np.ndarray]:
    """Each condition's pooled share in `n_boot` resamples of participants and photos (the same resamples for every
    condition, so differences are paired by participant and by photo)."""
    rng = np.random.default_rng(seed)
    n_p, n_i = len(matrices.participants), len(matrices.photos)
    wp = rng.multinomial(n_p, np.full(n_p, 1 / n_p), size=n_boot).astype(float)
    wi = rng.multinomial(n_i, np.full(n_i, 1 / n_i), size=n_boot).astype(float)
    draws = {}
    for condition, real in matrices.real.items():
        numerator = np.einsum("bp,pi,bi->b", wp, real, wi)
        denominator = np.einsum("bp,pi,bi->b", wp, matrices.answers[condition], wi)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws[condition] = numerator / denominator
    return draws


def percentile_interval(draws: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap draws (draws without answers, NaN, left out)."""
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_p(differences: np.ndarray, null: float = 0.0) -> float:
    """Two-sided bootstrap p-value of `null` for a difference: twice the smaller tail, at least 1/draws."""
    finite = differences[np.isfinite(differences)]
    if finite.size == 0:
        return float("nan")
    tail = min(np.mean(finite <= null), np.mean(finite >= null))
    return float(min(1.0, max(2 * tail, 1 / finite.size)))


def photo_t_interval(shares: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of photos' shares with a Student-t interval: photos as the random unit."""
    shares = np.asarray(shares, dtype=float)
    mean = float(shares.mean())
    if shares.size < 2:
        return mean, float("nan"), float("nan")
    half = student_t.ppf(0.5 + confidence / 2, shares.size - 1) * shares.std(ddof=1) / np.sqrt(shares.size)
    return mean, mean - float(half), mean + float(half)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment, by the package's one implementation (`evaluate.stats.holm`)."""
    return [float(v) for v in stats_holm(np.asarray(p_values, dtype=float))]
