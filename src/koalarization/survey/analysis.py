"""Answers analysed over people *and* photos: the fooling rate of each condition, the conditions compared photo by
photo, the published figures tested, and the sample sizes a next study needs.

Every verdict here follows the two-way (participants x photos) bootstrap of `inference.py`, with Holm's adjustment
over the family it belongs to; the mixed logistic model of `mixed.py` is reported beside it, and the pooled Wilson
interval (answers independent) is kept as the naive reference.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest, wilcoxon

from .inference import (
    answer_matrices,
    bootstrap_p,
    holm,
    participant_bootstrap,
    percentile_interval,
    two_way_draws,
    wilson_interval,
)
from .mixed import ASSUMED_SD_PARTICIPANT, MixedFit, fit_mixed, power_table, precision_table
from .reference import PAPER, REPLICATION, reference_value

ALPHA = 0.05


def conditions_of(clean: pd.DataFrame, order: list[str] | None = None) -> list[str]:
    """The conditions that showed colorized photos, in the survey's order (`order`, the manifest's `conditions`:
    the first is the reference the others are compared with), else sorted."""
    present = set(clean[clean["kind"] == "colorized"]["condition"].unique())
    known = [c for c in (order or []) if c in present]
    return known + sorted(present - set(known))


def generalization_table(clean: pd.DataFrame, fit: MixedFit | None, seed: int = 0,
                         order: list[str] | None = None) -> pd.DataFrame:
    """Colorized photos judged real, one row per condition: pooled share with the Wilson interval (answers
    independent), the participant bootstrap, the two-way bootstrap (the verdicts' interval) and the mixed model's
    typical-photo estimate with its interval and variance components."""
    fake = clean[clean["kind"] == "colorized"]
    if fake.empty:
        return pd.DataFrame(columns=["condition", "answers", "participants", "photos", "pooled_pct"])
    conditions = conditions_of(clean, order)
    draws = two_way_draws(answer_matrices(fake, conditions), seed=seed)
    rows = []
    for condition in conditions:
        own = fake[fake["condition"] == condition]
        k, n = int(own["judged_real"].sum()), len(own)
        w_low, w_high = wilson_interval(k, n)
        p_low, p_high = participant_bootstrap(own.assign(kind="colorized"), "colorized", seed=seed)
        b_low, b_high = percentile_interval(draws[condition])
        row = {"condition": condition or "(one model)", "answers": n, "participants": own["participant_id"].nunique(),
               "photos": own["photo_id"].nunique(), "pooled_pct": 100 * k / n, "wilson_low_pct": 100 * w_low,
               "wilson_high_pct": 100 * w_high, "participant_boot_low_pct": 100 * p_low,
               "participant_boot_high_pct": 100 * p_high, "two_way_low_pct": 100 * b_low,
               "two_way_high_pct": 100 * b_high}
        row.update(_mixed_columns(fit, condition))
        rows.append(row)
    return pd.DataFrame(rows)


def _mixed_columns(fit: MixedFit | None, condition: str) -> dict[str, float]:
    if fit is None:
        return {"mixed_pct": np.nan, "mixed_low_pct": np.nan, "mixed_high_pct": np.nan,
                "sd_participant_logit": np.nan, "sd_photo_logit": np.nan}
    estimate, low, high = fit.rate(condition)
    return {"mixed_pct": 100 * estimate, "mixed_low_pct": 100 * low, "mixed_high_pct": 100 * high,
            "sd_participant_logit": fit.sd_participant, "sd_photo_logit": fit.sd_photo}


def compare_conditions(clean: pd.DataFrame, fit: MixedFit | None, seed: int = 0,
                       order: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per condition against the first one, one row per photo): differences in the share judged real,
    paired by photo (and by participant, who judged both). Verdict: the two-way bootstrap p, Holm-adjusted over the
    comparisons; Wilcoxon's signed-rank test over photos and the mixed model's odds ratio beside it."""
    fake = clean[clean["kind"] == "colorized"]
    conditions = conditions_of(clean, order)
    if len(conditions) < 2:
        return pd.DataFrame(), pd.DataFrame()
    per_photo = (fake.groupby(["photo_id", "condition"])["judged_real"].mean().unstack("condition") * 100)[conditions]
    draws = two_way_draws(answer_matrices(fake, conditions), seed=seed)
    base = conditions[0]
    rows = []
    for other in conditions[1:]:
        pooled = {c: 100 * fake[fake["condition"] == c]["judged_real"].mean() for c in (other, base)}
        differences = 100 * (draws[other] - draws[base])
        low, high = percentile_interval(differences)
        paired = (per_photo[other] - per_photo[base]).dropna()
        effect, sd = fit.effects.get(other, (np.nan, np.nan)) if fit else (np.nan, np.nan)
        rows.append({"condition": other, "against": base, "photos_paired": len(paired),
                     "difference_points": pooled[other] - pooled[base], "two_way_low": low, "two_way_high": high,
                     "two_way_p": bootstrap_p(differences),
                     "wilcoxon_p": float(wilcoxon(paired).pvalue) if (paired != 0).sum() >= 2 else np.nan,
                     "mixed_odds_ratio": float(np.exp(effect)), "mixed_log_odds_sd": sd})
    table = pd.DataFrame(rows)
    table["holm_p"] = holm(table["two_way_p"].tolist())
    table["verdict"] = [_condition_verdict(r) for _, r in table.iterrows()]
    return table, per_photo.reset_index()


def _condition_verdict(row: pd.Series) -> str:
    if not row["holm_p"] < ALPHA:
        return f"no detectable difference between {row['condition']} and {row['against']}"
    more = "more" if row["difference_points"] > 0 else "less"
    return f"{row['condition']} is judged real {more} often than {row['against']}"


def reference_tests(clean: pd.DataFrame, reference: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Ours against the published shares: the exact binomial test (answers independent; overstates the evidence)
    and the two-way bootstrap p (the verdict), Holm-adjusted over the three."""
    targets = [("colorized", PAPER, "all_colorized", "paper (2017)"),
               ("colorized", REPLICATION, "all_colorized", "PyTorch replication"),
               ("real", REPLICATION, "all_real", "PyTorch replication")]
    rows = []
    for kind, study, image, label in targets:
        published = reference_value(reference, study, image)
        share = clean[clean["kind"] == kind]
        k, n = int(share["judged_real"].sum()), int(len(share))
        ok = n and np.isfinite(published)
        two_way = (bootstrap_p(two_way_draws(answer_matrices(share.assign(condition="")), seed=seed)[""]
                               - published / 100) if ok and share["photo_id"].nunique() > 1 else np.nan)
        rows.append({"photos": kind, "against": label, "published_pct": published, "judged_real": k, "answers": n,
                     "ours_pct": 100.0 * k / n if n else float("nan"),
                     "p_value": float(binomtest(k, n, published / 100).pvalue) if ok else float("nan"),
                     "test": "exact binomial, two-sided; assumes independent answers", "two_way_p": two_way})
    table = pd.DataFrame(rows)
    table["holm_p"] = holm(table["two_way_p"].tolist())
    table["verdict"] = ["differs from the published share" if p < ALPHA else
                        ("no detectable difference" if np.isfinite(p) else "not tested")
                        for p in table["holm_p"]]
    return table


def sample_size_tables(fit: MixedFit | None, sd_photo_published: float,
                       p: float = 0.46) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(precision table, power table, where their variance components come from): this study's own components when
    it has a mixed model, else the published photo SD and an assumed participant SD."""
    if fit is not None:
        sd_p, sd_i = fit.sd_participant, fit.sd_photo
        source = f"this study's mixed model ({fit.participants} participants, {fit.photos} photos)"
    else:
        sd_p, sd_i = ASSUMED_SD_PARTICIPANT, sd_photo_published
        source = (f"the photo SD of the 2022 replication's counts ({sd_i:.2f} on the logit scale) and an assumed "
                  f"participant SD of {sd_p} (published counts do not show participants)")
    basis = {"p": p, "sd_participant": sd_p, "sd_photo": sd_i, "source": source}
    return precision_table(p, sd_p, sd_i), power_table(p, sd_p, sd_i), basis


def fit_for(clean: pd.DataFrame, order: list[str] | None = None) -> MixedFit | None:
    """The mixed model of the colorized answers (None without enough of them); `order`: the conditions, the
    reference first."""
    fake = clean[clean["kind"] == "colorized"]
    return fit_mixed(fake, conditions_of(clean, order)) if len(fake) else None
