"""The published studies re-read with photos as a source of variance: real answers that no one here collected.

- The paper (2017): nine per-photo shares judged real, read off its bar chart (approximate), about 41 participants.
- The PyTorch replication (2022): per-image counts from its notebook, 60 participants, 9 colorized and 3 real
  images, one answer missing on image 4406.

Both report a pooled share. A pooled share's Wilson interval treats every answer as independent, but "the model
fools X% of people" is a claim about photos too, so each study also gets a photo-level interval: a Student-t
interval over its photos' shares (photos are the unit; the participants of these studies are not known one by
one). Whether the two studies differ is tested the same way (Welch's t over photos), beside a test that treats
answers as independent, which overstates the evidence. The replication's 48.5% is 262/540: its notebook divided
every image's "real" count by 60, so the one missing answer counts as "fake"; among the answers given it is
262/539.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, ttest_ind

from .inference import photo_t_interval, wilson_interval
from .reference import PAPER, load_reference, load_replication_counts, paper_per_photo, reference_source


@dataclass
class PublishedReanalysis:
    """Tables of the re-analysis (see the module docstring)."""

    studies: pd.DataFrame  # one row per study and kind of photo
    per_photo: pd.DataFrame  # every photo of both studies
    missing: pd.DataFrame  # the replication's colorized share, both ways of counting the missing answer
    difference: pd.DataFrame  # whether the two studies differ: photo level (the verdict) and answer level


def _study_row(study: str, kind: str, shares: np.ndarray, k: float, n: float, source: str,
               note: str) -> dict[str, Any]:
    mean, low, high = photo_t_interval(shares)
    low, high = max(0.0, low), min(1.0, high)  # a share cannot leave 0-100%: the t interval is clipped there
    w_low, w_high = wilson_interval(int(round(k)), int(round(n)))
    return {"study": study, "photos": kind, "n_photos": len(shares), "answers": n, "judged_real": k,
            "pooled_pct": 100 * k / n, "wilson_low_pct": 100 * w_low, "wilson_high_pct": 100 * w_high,
            "photo_mean_pct": 100 * mean, "photo_low_pct": 100 * low, "photo_high_pct": 100 * high,
            "data": note, "source": source}


def reanalyse(reference: pd.DataFrame | None = None, counts: pd.DataFrame | None = None) -> PublishedReanalysis:
    """The re-analysis of the paper's nine read-off shares and the replication's counts."""
    reference = load_reference(reference)
    counts = load_replication_counts() if counts is None else counts
    paper = paper_per_photo(reference).to_numpy(float) / 100
    participants = float(reference[(reference["study"] == PAPER) & (reference["image"] == "all_colorized")]
                         ["participants"].iloc[0])
    paper_n = participants * len(paper)
    rows = [_study_row("paper (2017)", "colorized", paper, paper.sum() * participants, paper_n,
                       reference_source(reference, PAPER), "shares read off its chart (approximate)")]
    photos = [{"study": "paper (2017)", "photos": "colorized", "image": f"fake_{i + 1}", "judged_real": np.nan,
               "answers": np.nan, "judged_real_pct": 100 * share} for i, share in enumerate(paper)]
    for kind in ("colorized", "real"):
        own = counts[counts["kind"] == kind]
        shares = (own["judged_real"] / own["answers"]).to_numpy(float)
        note = "counts from its notebook" + (", the blank answer left out" if kind == "colorized" else "")
        rows.append(_study_row("PyTorch replication (2022)", kind, shares, own["judged_real"].sum(),
                               own["answers"].sum(), str(own["source"].iloc[0]), note))
        photos += [{"study": "PyTorch replication (2022)", "photos": kind, "image": image, "judged_real": k,
                    "answers": n, "judged_real_pct": 100 * k / n}
                   for image, k, n in zip(own["image"], own["judged_real"], own["answers"])]
    per_photo = pd.DataFrame(photos)
    return PublishedReanalysis(pd.DataFrame(rows), per_photo, missing_answer_table(counts),
                               difference_table(paper, counts, participants))


def missing_answer_table(counts: pd.DataFrame) -> pd.DataFrame:
    """The replication's colorized share counted both ways: the missing answer as "fake" (its notebook, 48.5%)
    and left out (among the answers given)."""
    own = counts[counts["kind"] == "colorized"]
    k, given = int(own["judged_real"].sum()), int(own["answers"].sum())
    asked = int(own["participants"].sum()) if "participants" in own.columns else int(60 * len(own))
    rows = []
    for how, n in (("missing answer counted as fake (the replication's own figure)", asked),
                   ("among the answers given (missing answer left out)", given)):
        low, high = wilson_interval(k, n)
        rows.append({"counting": how, "judged_real": k, "answers": n, "judged_real_pct": 100 * k / n,
                     "wilson_low_pct": 100 * low, "wilson_high_pct": 100 * high})
    return pd.DataFrame(rows)


def difference_table(paper: np.ndarray, counts: pd.DataFrame, participants: float) -> pd.DataFrame:
    """Paper against replication, colorized photos: Welch's t over photos (the verdict) and a chi-square test on
    pooled answers (treats answers as independent; the paper's counts are approximate)."""
    own = counts[counts["kind"] == "colorized"]
    replication = (own["judged_real"] / own["answers"]).to_numpy(float)
    welch = ttest_ind(replication, paper, equal_var=False)
    paper_k = int(round(paper.sum() * participants))
    paper_n = int(round(participants * len(paper)))
    table = [[int(own["judged_real"].sum()), int(own["answers"].sum() - own["judged_real"].sum())],
             [paper_k, paper_n - paper_k]]
    chi = chi2_contingency(table, correction=False)
    difference = 100 * (replication.mean() - paper.mean())
    return pd.DataFrame([
        {"test": "Welch's t over photos (photos as the unit; the verdict)", "difference_points": difference,
         "statistic": float(welch.statistic), "p_value": float(welch.pvalue), "verdict": _verdict(welch.pvalue)},
        {"test": "chi-square on pooled answers (answers independent; paper's counts approximate)",
         "difference_points": 100 * (table[0][0] / sum(table[0]) - paper_k / paper_n),
         "statistic": float(chi.statistic), "p_value": float(chi.pvalue), "verdict": _verdict(chi.pvalue)},
    ])


def _verdict(p_value: float, alpha: float = 0.05) -> str:
    return "differ" if p_value < alpha else "no evidence of a difference"


def reanalysis_sentences(result: PublishedReanalysis) -> list[str]:
    """Plain sentences about the published studies, written from the numbers (for the record and the page)."""
    studies = result.studies.set_index(["study", "photos"])
    paper = studies.loc[("paper (2017)", "colorized")]
    rep = studies.loc[("PyTorch replication (2022)", "colorized")]
    real = studies.loc[("PyTorch replication (2022)", "real")]
    welch = result.difference.iloc[0]
    asked, given = result.missing.iloc[0], result.missing.iloc[1]
    return [
        "Re-read with photos as the unit, the paper's colorized photos were judged real "
        f"{paper['photo_mean_pct']:.1f}% of the time, 95% interval {paper['photo_low_pct']:.1f} to "
        f"{paper['photo_high_pct']:.1f}% over its "
        f"{paper['n_photos']:.0f} photos (read off its chart), not the ±{_half(paper, 'wilson')} points that "
        "treating its answers as independent gives.",
        f"The 2022 replication's colorized photos: {rep['photo_mean_pct']:.1f}% over photos, 95% interval "
        f"{rep['photo_low_pct']:.1f} to {rep['photo_high_pct']:.1f}%; its real photos {real['pooled_pct']:.1f}% "
        f"(interval over its only {real['n_photos']:.0f} real photos {real['photo_low_pct']:.0f} to "
        f"{real['photo_high_pct']:.0f}%).",
        f"The two studies do not differ detectably: {welch['difference_points']:+.1f} points, Welch's t over "
        f"photos p = {welch['p_value']:.2f}." if welch["p_value"] >= 0.05 else
        f"The two studies differ by {welch['difference_points']:+.1f} points (Welch's t over photos, "
        f"p = {welch['p_value']:.3f}).",
        f"The replication's {asked['judged_real_pct']:.1f}% is {asked['judged_real']}/{asked['answers']}: its notebook "
        f"divided by 60 for every image, so one missing answer counts as \"fake\"; among the answers given it is "
        f"{given['judged_real']}/{given['answers']} = {given['judged_real_pct']:.1f}%.",
    ]


def _half(row: pd.Series, name: str) -> str:
    return f"{(row[f'{name}_high_pct'] - row[f'{name}_low_pct']) / 2:.0f}"
