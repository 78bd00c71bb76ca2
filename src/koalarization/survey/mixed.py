"""A mixed logistic model with participants and photos as crossed random effects (Baayen, Davidson & Bates 2008),
and the sample sizes its variance components call for.

The model: P(answer "real") = expit(b0 + b_condition + u_participant + v_photo), u ~ N(0, s_p^2), v ~ N(0, s_i^2),
fitted with statsmodels' `BinomialBayesMixedGLM` (variational Bayes). Its estimate, expit(b0 + b_condition), is the
share judged real for a typical participant on a typical photo. The variational posterior's own standard deviation
of b0 is far too small (it ignores how few photos pin it down: 17 of 30 simulated 95% intervals covered the truth),
so the interval here is computed from the fitted variance components instead,
se(b0)^2 = s_p^2 / P + s_i^2 / I + 1 / (p (1 - p) N), with a Student t on I - 1 degrees of freedom (photos are the
scarcer unit); simulations in tests/test_survey_crowd.py check its coverage. The study's verdicts follow the
two-way bootstrap (`inference.two_way_bootstrap`); this model is reported beside it, and its variance components
size future studies (`precision_table`, `power_table`).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm
from scipy.stats import t as student_t

log = logging.getLogger(__name__)

ASSUMED_SD_PARTICIPANT = 0.5  # logit scale; used where no participant-level answers exist (published counts)
INTERACTION = 0.5  # photo-by-condition and participant-by-condition SDs, as a share of the main effects' SDs
PER_PARTICIPANT = 9  # colorized photos each participant judges (the paper's design)


@dataclass(frozen=True)
class MixedFit:
    """A fitted model: logit-scale fixed effects, variance components (SDs, logit scale), sizes."""

    intercept: float
    effects: dict[str, tuple[float, float]]  # condition -> (effect vs the first condition, its posterior SD)
    sd_participant: float
    sd_photo: float
    participants: int
    photos: int
    answers: dict[str, int] = field(default_factory=dict)  # per condition

    def rate(self, condition: str, confidence: float = 0.95) -> tuple[float, float, float]:
        """(estimate, low, high): the share judged real for a typical participant and photo in `condition`."""
        effect = self.effects.get(condition, (0.0, 0.0))[0]
        logit = self.intercept + effect
        p = float(expit(logit))
        n = max(1, self.answers.get(condition, 1))
        se = np.sqrt(self.sd_participant ** 2 / self.participants + self.sd_photo ** 2 / self.photos
                     + 1 / (p * (1 - p) * n))
        q = student_t.ppf(0.5 + confidence / 2, max(1, self.photos - 1))
        return p, float(expit(logit - q * se)), float(expit(logit + q * se))


def fit_mixed(rows: pd.DataFrame, conditions: list[str] | None = None) -> MixedFit | None:
    """Fit the model to answers on colorized photos (participant_id, photo_id, condition, judged_real). None when
    statsmodels is missing or there are too few participants or photos (fewer than 3 of either)."""
    try:
        from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
    except ImportError:
        log.warning("statsmodels is not installed: no mixed model (pip install koalarization[survey])")
        return None
    conditions = conditions or sorted(rows["condition"].unique())
    data = rows[rows["condition"].isin(conditions)].copy()
    if data["participant_id"].nunique() < 3 or data["photo_id"].nunique() < 3:
        return None
    data["y"] = data["judged_real"].astype(float)
    data["condition"] = pd.Categorical(data["condition"], categories=conditions)
    formula = "y ~ C(condition)" if len(conditions) > 1 else "y ~ 1"
    model = BinomialBayesMixedGLM.from_formula(
        formula, {"participant": "0 + C(participant_id)", "photo": "0 + C(photo_id)"}, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit_vb()
    means, sds = np.asarray(result.fe_mean), np.asarray(result.fe_sd)
    effects = {conditions[0]: (0.0, 0.0)}
    effects.update({c: (float(means[k]), float(sds[k])) for k, c in enumerate(conditions[1:], start=1)})
    sd_p, sd_i = (float(v) for v in np.exp(result.vcp_mean))
    return MixedFit(float(means[0]), effects, sd_p, sd_i, int(data["participant_id"].nunique()),
                    int(data["photo_id"].nunique()), data.groupby("condition", observed=True).size().to_dict())


def photo_sd_from_counts(judged_real: np.ndarray, answers: np.ndarray) -> float:
    """The photos' SD on the logit scale from per-photo counts alone (participants unknown): the same model with a
    photo effect only, fitted to the answers the counts stand for (without statsmodels, the method of moments:
    the spread of the photos' logits less their binomial noise)."""
    try:
        from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
    except ImportError:
        share = np.clip(np.asarray(judged_real, float) / np.asarray(answers, float), 0.01, 0.99)
        logits = np.log(share / (1 - share))
        noise = np.mean(1 / (np.asarray(answers, float) * share * (1 - share)))
        return float(np.sqrt(max(0.0, logits.var(ddof=1) - noise)))

    ys = np.concatenate([np.r_[np.ones(int(k)), np.zeros(int(n - k))] for k, n in zip(judged_real, answers)])
    photo = np.concatenate([np.full(int(n), i) for i, n in enumerate(answers)])
    data = pd.DataFrame({"y": ys, "photo": photo})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = BinomialBayesMixedGLM.from_formula("y ~ 1", {"photo": "0 + C(photo)"}, data).fit_vb()
    return float(np.exp(result.vcp_mean[0]))


def half_width(p: float, sd_participant: float, sd_photo: float, participants: int, photos: int,
               per_participant: int = PER_PARTICIPANT) -> float:
    """Half-width (points) of the 95% interval on a share near `p`, for `participants` people who each judge
    `per_participant` colorized photos drawn from a pool of `photos` (delta method on the logit-normal model)."""
    slope = p * (1 - p)
    variance = slope ** 2 * (sd_participant ** 2 / participants + sd_photo ** 2 / photos) + slope / (
        participants * min(per_participant, photos))
    return float(100 * 1.96 * np.sqrt(variance))


def difference_power(p: float, sd_participant: float, sd_photo: float, participants: int, photos: int,
                     difference: float = 0.10, per_participant: int = PER_PARTICIPANT,
                     interaction: float = INTERACTION) -> float:
    """Power of a two-sided 5% test to detect `difference` between two conditions judged by the same people, photo
    by photo (the survey's Latin square: each participant sees half the photos in each condition). The photo and
    participant effects cancel in the paired difference except for their interactions with the condition, taken as
    `interaction` times the main effects' SDs (an assumption, stated with the table)."""
    slope = p * (1 - p)
    variance = slope ** 2 * 2 * interaction ** 2 * (sd_participant ** 2 / participants + sd_photo ** 2 / photos) \
        + 2 * slope / (participants * min(per_participant, photos) / 2)
    z = difference / np.sqrt(variance)
    return float(norm.cdf(z - 1.96) + norm.cdf(-z - 1.96))


PARTICIPANTS = (20, 40, 60, 100, 200, 400, 1000)
PHOTOS = (9, 18, 36, 72, 144)


def precision_table(p: float, sd_participant: float, sd_photo: float) -> pd.DataFrame:
    """Half-width of the 95% interval on the fooling rate (points): one row per number of participants, one column
    per number of photos in the pool."""
    rows = [{"participants": n, **{f"{i} photos": half_width(p, sd_participant, sd_photo, n, i) for i in PHOTOS}}
            for n in PARTICIPANTS]
    return pd.DataFrame(rows)


def power_table(p: float, sd_participant: float, sd_photo: float, difference: float = 0.10) -> pd.DataFrame:
    """Power (%) to detect `difference` between two conditions, same layout as `precision_table`."""
    rows = [{"participants": n, **{f"{i} photos": 100 * difference_power(p, sd_participant, sd_photo, n, i,
                                                                           difference) for i in PHOTOS}}
            for n in PARTICIPANTS]
    return pd.DataFrame(rows)


def photos_needed(p: float, sd_photo: float, target_points: float = 5.0) -> int:
    """The fewest photos for which even infinitely many participants give a 95% half-width of `target_points`:
    the photos alone contribute 1.96 p (1 - p) s_i / sqrt(I)."""
    return int(np.ceil((1.96 * p * (1 - p) * sd_photo / (target_points / 100)) ** 2))
