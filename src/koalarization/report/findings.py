"""The study's findings, written from its numbers by code, so they change when the numbers change.

Every sentence comes from `03_evaluate.json` (and `05_user_study.json`): a comparison is described only as strongly
as its Holm-adjusted p-value allows, and where the bootstrap interval and the test disagree the sentence says so.
"""
from __future__ import annotations

import html
from typing import Any

from ..evaluate.run import ensemble_name

ALPHA = 0.05


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}".replace("-", "−")


def _p(value: float) -> str:
    """'= 0.031' or '< 0.001', as HTML."""
    return f"= {value:.2g}" if value >= 0.001 else "&lt; 0.001"


def find(comparisons: list[dict[str, Any]], a: str, b: str, metric: str, split: str = "test") -> dict | None:
    return next((c for c in comparisons if c["model_a"] == a and c["model_b"] == b and c["metric"] == metric
                 and c.get("split", "test") == split), None)


def describe(row: dict[str, Any], labels: dict[str, str], unit: str = "") -> str:
    """One comparison as a sentence fragment: difference [interval], adjusted p, and the verdict it supports."""
    a, b = labels.get(row["model_a"], row["model_a"]), labels.get(row["model_b"], row["model_b"])
    significant = row["p_holm"] < ALPHA
    better = row["higher_is_better"]
    if significant and better is not None:
        a_wins = (row["mean_diff"] > 0) == bool(better)
        verdict = f'<span class="sig">{html.escape(a if a_wins else b)} is better</span>'
    elif significant:
        verdict = '<span class="sig">the difference is significant</span>'
    else:
        verdict = '<span class="ns">not significant</span>'
    text = (f"{html.escape(a)} − {html.escape(b)}: {html.escape(row['label'])} {_fmt(row['mean_diff'])}{unit} "
            f"[{_fmt(row['diff_ci_low'])}, {_fmt(row['diff_ci_high'])}], n = {row['n']} photos, Holm p "
            f"{_p(row['p_holm'])}: {verdict}")
    if row.get("interval_vs_test"):
        excludes_zero = row["diff_ci_low"] > 0 or row["diff_ci_high"] < 0
        text += (" (the unadjusted interval excludes 0, the adjusted test does not: see the statistics note)"
                 if excludes_zero else " (most photos move one way, a few large differences pull the mean toward 0)")
    return text


def fusion_meaning(row: dict[str, Any]) -> str:
    """What the fusion-vs-no-fusion result says about the paper's claim that the classifier's embedding helps."""
    width = row["diff_ci_high"] - row["diff_ci_low"]
    if row["p_holm"] < ALPHA and row["mean_diff"] < 0:
        return (f"At this scale the data support the paper's claim: fusing the classifier's embedding lowers the "
                f"color error (interval width {width:.2f} ΔE00).")
    if row["p_holm"] < ALPHA:
        return ("At this scale the embedding made colors worse, against the paper's claim; with a stand-in "
                "classifier and a few hundred photos this does not refute it at ImageNet scale.")
    bound = max(abs(row["diff_ci_low"]), abs(row["diff_ci_high"]))
    return (f"No evidence either way at this scale: the 95% interval (width {width:.2f} ΔE00) rules out an effect of "
            f"the embedding larger than about {bound:.2f} ΔE00 on these photos, and the test would detect a true "
            f"difference of {row['mdd']:.2f} ΔE00 with 80% power. The paper's claim is neither confirmed nor refuted "
            f"here; it concerns ImageNet-scale training, where the embedding has far more to add.")


def error_split(bands: list[dict[str, Any]], main: str, neutral_below: float = 5.0,
                colorful_from: float = 20.0) -> str:
    """The main model against gray on near-neutral and on colorful pixels (the `error_by_chroma` table)."""
    rows = [row for row in bands if row["true chroma"] != "all pixels"]
    if not rows or main not in rows[0] or "gray" not in rows[0]:
        return ""

    def low(row):
        return float(row["true chroma"].split("–")[0].replace("chroma ≥ ", ""))

    def pooled(selected, model):
        share = sum(row["share of pixels"] for row in selected)
        return share, sum(row["share of pixels"] * row[model] for row in selected) / share

    neutral = [row for row in rows if low(row) < neutral_below]
    colorful = [row for row in rows if low(row) >= colorful_from]
    if not neutral or not colorful:
        return ""
    (n_share, n_main), (_, n_gray) = pooled(neutral, main), pooled(neutral, "gray")
    (c_share, c_main), (_, c_gray) = pooled(colorful, main), pooled(colorful, "gray")
    return (f"on near-neutral test pixels (true chroma below {neutral_below:g}, {n_share:.0%} of pixels) the main "
            f"model's ΔE00 is {n_main:.1f} against {n_gray:.1f} for the gray input; on colorful ones (chroma "
            f"{colorful_from:g} and above, {c_share:.0%} of pixels) {c_main:.1f} against {c_gray:.1f}. "
            + ("The model gains where there is color and loses where there is none: a cast over neutral regions. "
               if n_main > n_gray and c_main < c_gray else "")
            + "Pooled over all pixels, not averaged per photo.")


def seed_ensemble(rows: list[dict[str, Any]], main: str, labels: dict[str, str]) -> str:
    """The main model's seed ensemble against a single network and against the gray input."""
    ensemble = ensemble_name(main)
    parts = []
    for a, b, split, where in ((ensemble, main, "test", "Against one network (scores averaged over its seeds), on "
                                                        "the random test split"),
                               (ensemble, "gray", "test", "Against the gray input, on the random test split"),
                               (ensemble, "gray", "heldout", "Against the gray input, on the held-out source")):
        ciede, psnr = find(rows, a, b, "ciede2000", split), find(rows, a, b, "psnr", split)
        if ciede and psnr:
            parts.append(f"{where}: {describe(ciede, labels)}; {describe(psnr, labels, ' dB')}")
    if not parts:
        return ""
    return (f"<b>The seeds averaged</b> ({html.escape(labels.get(ensemble, ensemble))}: the seeds' a*b* averaged "
            f"photo by photo, as <code>koala colorize --checkpoint A B</code> does). " + ". ".join(parts) + ".")


def findings(evaluation: dict[str, Any], labels: dict[str, str], user_study: dict[str, Any] | None = None
             ) -> list[str]:
    """HTML list items of the findings (escaped; only the verdict markup is ours)."""
    rows = evaluation.get("comparisons", [])
    main = evaluation["main_model"]
    out = []
    for split, where in (("test", "the random test split"), ("heldout", "the held-out source")):
        ciede, psnr = find(rows, main, "gray", "ciede2000", split), find(rows, main, "gray", "psnr", split)
        if ciede and psnr:
            out.append(f"<b>Against the gray input, on {where}:</b> {describe(ciede, labels)}; "
                       f"{describe(psnr, labels, ' dB')}.")
    ensemble = seed_ensemble(rows, main, labels)
    if ensemble:
        out.append(ensemble)
    fusion = find(rows, main, "no_fusion", "ciede2000", "unseen") or find(rows, main, "no_fusion", "ciede2000")
    if fusion:
        where = ("every unseen photo (test split and held-out source)" if fusion.get("split") == "unseen"
                 else "the test split")
        out.append(f"<b>Does the classifier's embedding help?</b> On {where}: {describe(fusion, labels)}. "
                   f"{html.escape(fusion_meaning(fusion))}")
    means = evaluation.get("means", {}).get("test", {})
    if main in means and "ab_std_ratio" in means[main]:
        ratio = means[main]["ab_std_ratio"]
        ablation = means.get("no_fusion", {}).get("ab_std_ratio", float("nan"))
        out.append(f"<b>Casts:</b> within a photo, the main model's colors vary {ratio:.0%} as much as the truth's "
                   f"(the spatial standard deviation of a*b*, averaged over test photos; a uniform cast would be "
                   f"0%, the no-fusion ablation reaches {ablation:.0%}).")
    where = error_split(evaluation.get("error_by_chroma", []), main)
    if where:
        out.append(f"<b>Where the color error is:</b> {html.escape(where)}")
    rebalanced = [m for m in means if evaluation.get("losses", {}).get(m) == "rebalanced"]
    for model in rebalanced:
        gap, ciede = find(rows, model, main, "colorfulness_gap"), find(rows, model, main, "ciede2000")
        if gap and ciede:
            out.append(f"<b>Rarity-weighted loss against the paper's MSE</b> (ΔCF: 0 is the truth's "
                       f"colorfulness; the rebalanced model's is {_fmt(means[model]['colorfulness_gap'], 1)}, the "
                       f"MSE model's {_fmt(means[main]['colorfulness_gap'], 1)}): {describe(gap, labels)}; "
                       f"{describe(ciede, labels)}.")
    if user_study:
        out.append(f"<b>User study:</b> {html.escape(user_study.get('message', ''))}")
    return out


def statistics_note(evaluation: dict[str, Any]) -> str:
    return (f"Statistics: each photo is one unit (a model's seeds averaged per photo first). Intervals are 95% "
            f"percentile-bootstrap intervals of the mean paired difference. Tests are two-sided Wilcoxon "
            f"signed-rank tests over photos, Holm-adjusted over the family of all {evaluation.get('family_size', '?')}"
            f" comparisons in the comparisons table ({evaluation.get('family', '')}); a verdict is stated only "
            f"where the adjusted p is below {ALPHA}. Where an interval excludes 0 but the adjusted test does not "
            f"reject, the two answer different questions: the interval is about the mean and is not adjusted for "
            f"the other comparisons, the test is about signed ranks and is; the verdict follows the test.")
