"""The user study's figures: colorized photos per photo beside the paper's bars, the published studies re-read
with photo-level intervals, and several conditions compared photo by photo."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..report.figures import PALETTE, use_style
from .inference import wilson_interval
from .published import PublishedReanalysis
from .reference import PAPER, REPLICATION, paper_per_photo, reference_source, reference_value

# ours in the study's first colour, published figures in neutral greys
OURS, OURS_REAL, PUBLISHED, PUBLISHED_LIGHT = PALETTE[0], PALETTE[2], "#9a9a9a", "#c9c9c9"


def pooled_colorized(per_photo: pd.DataFrame) -> pd.DataFrame:
    """Colorized photos with every condition's answers pooled, most convincing first, with Wilson intervals."""
    fake = per_photo[per_photo["kind"] == "colorized"]
    pooled = fake.groupby("photo_id")[["judged_real", "answers"]].sum().reset_index()
    pooled["judged_real_pct"] = 100.0 * pooled["judged_real"] / pooled["answers"]
    bounds = [wilson_interval(k, n) for k, n in zip(pooled["judged_real"], pooled["answers"])]
    pooled["wilson_low_pct"] = [100 * b[0] for b in bounds]
    pooled["wilson_high_pct"] = [100 * b[1] for b in bounds]
    return pooled.sort_values(["judged_real_pct", "photo_id"], ascending=[False, True]).reset_index(drop=True)


def per_photo_figure(per_photo: pd.DataFrame, reference: pd.DataFrame, title: str | None = None) -> Figure:
    """Bars like the paper's: colorized photos sorted by % judged real, ours (with Wilson intervals) beside the
    paper's nine (read off its chart, so approximate); a small panel for real photos judged real (ours beside the
    PyTorch replication's). Without answers, the published bars alone, saying so."""
    paper = paper_per_photo(reference)
    ours = pooled_colorized(per_photo)
    real = per_photo[per_photo["kind"] == "real"]
    count = max(len(paper), len(ours), 1)
    with use_style():
        figure = Figure(figsize=(max(7.0, 0.6 * count + 3.5), 4.4), layout="constrained")
        axes, side = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [count, 2.2]})
        x = np.arange(1, count + 1)
        width = 0.4 if len(ours) else 0.6
        offset = width / 2 if len(ours) else 0.0
        participants = reference_value(reference, PAPER, "all_colorized", "participants")
        approximate = " (read off its chart)" if reference_source(reference, PAPER).endswith("approximate") else ""
        axes.bar(x[:len(paper)] - offset, paper, width, color=PUBLISHED,
                 label=f"paper (2017){approximate}, ~{participants:.0f} participants")
        paper_overall = reference_value(reference, PAPER, "all_colorized")
        axes.axhline(paper_overall, color="#6a6a6a", linestyle="--", linewidth=1,
                     label=f"paper overall {paper_overall:.2f}%")
        if len(ours):
            pct = ours["judged_real_pct"].to_numpy(float)
            errors = np.vstack([pct - ours["wilson_low_pct"].to_numpy(float),
                                ours["wilson_high_pct"].to_numpy(float) - pct])
            axes.bar(x[:len(ours)] + offset, pct, width, yerr=errors, capsize=3, color=OURS,
                     error_kw={"ecolor": "#333333", "elinewidth": 1},
                     label=f"ours, {int(ours['answers'].max())} answers per photo at most (Wilson 95% CI)")
            overall = 100.0 * ours["judged_real"].sum() / ours["answers"].sum()
            axes.axhline(overall, color=OURS, linestyle="--", linewidth=1, label=f"ours overall {overall:.1f}%")
        else:
            axes.text(0.98, 0.96, "no responses yet: published figures only", transform=axes.transAxes, ha="right",
                      va="top", color=PALETTE[3])
        axes.set_xticks(x)
        axes.set_xlabel("colorized photo, sorted by share judged real")
        axes.set_ylabel("judged real (%)")
        axes.set_ylim(0, 100)
        axes.set_title(title or "Colorized photos judged real, per photo")
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)

        replication = reference_value(reference, REPLICATION, "all_real")
        side.bar([0], [replication], 0.6, color=PUBLISHED_LIGHT, label="PyTorch replication")
        if len(real):
            k, n = int(real["judged_real"].sum()), int(real["answers"].sum())
            low, high = wilson_interval(k, n)
            share = 100.0 * k / n
            side.bar([1], [share], 0.6, yerr=[[share - 100 * low], [100 * high - share]], capsize=3,
                     color=OURS_REAL, error_kw={"ecolor": "#333333", "elinewidth": 1})
        side.set_xticks([0, 1], ["replication", "ours" if len(real) else "ours\n(none yet)"])
        side.set_xlim(-0.6, 1.6)
        side.set_title("Real photos judged real")
    return figure


def reanalysis_figure(result: PublishedReanalysis) -> Figure:
    """Each published study's photos as dots, with two 95% intervals on its share judged real: the pooled Wilson
    interval (answers independent, narrow) and the photo-level interval (photos as the unit, what a claim about
    the model's photos needs)."""
    studies = result.studies
    with use_style():
        figure = Figure(figsize=(7.6, 4.2), layout="constrained")
        axes = figure.subplots()
        for y, (_, row) in enumerate(studies.iterrows()):
            dots = result.per_photo[(result.per_photo["study"] == row["study"])
                                    & (result.per_photo["photos"] == row["photos"])]["judged_real_pct"]
            colour = PALETTE[0] if row["photos"] == "colorized" else PALETTE[2]
            axes.scatter(dots, np.full(len(dots), y + 0.22), s=22, color=colour, alpha=0.75, zorder=3,
                         label="one photo" if y == 0 else None)
            axes.plot([row["photo_low_pct"], row["photo_high_pct"]], [y] * 2, color=colour, linewidth=4,
                      solid_capstyle="butt", label="95% interval over photos (clipped to 0-100)" if y == 0 else None)
            axes.plot([row["wilson_low_pct"], row["wilson_high_pct"]], [y - 0.22] * 2, color="#555555",
                      linewidth=2, label="95% Wilson interval, answers independent" if y == 0 else None)
            axes.plot([row["pooled_pct"]], [y - 0.22], marker="|", color="#222222", markersize=10)
            axes.plot([row["photo_mean_pct"]], [y], marker="o", color="white", markeredgecolor=colour)
        labels = [f"{r['study']}\n{r['photos']} photos ({r['n_photos']:.0f})" for _, r in studies.iterrows()]
        axes.set_yticks(range(len(studies)), labels)
        axes.invert_yaxis()
        axes.set_xlim(0, 100)
        axes.set_xlabel("judged real (%)")
        axes.set_title("The published studies with photos as a source of variance")
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    return figure


def conditions_figure(per_photo: pd.DataFrame, conditions: list[str]) -> Figure:
    """Share judged real per photo under each condition, a line joining one photo's conditions (paired by photo)."""
    with use_style():
        figure = Figure(figsize=(5.2, 4.2), layout="constrained")
        axes = figure.subplots()
        x = np.arange(len(conditions))
        for _, row in per_photo.iterrows():
            axes.plot(x, [row[c] for c in conditions], color="#9a9a9a", linewidth=1, marker="o", markersize=4)
        means = [per_photo[c].mean() for c in conditions]
        axes.plot(x, means, color=PALETTE[0], linewidth=3, marker="o", label="mean over photos")
        axes.set_xticks(x, conditions)
        axes.set_xlim(-0.4, len(conditions) - 0.6)
        axes.set_ylim(0, 100)
        axes.set_ylabel("judged real (%)")
        axes.set_title("Each photo under each model")
        axes.legend(frameon=False)
    return figure
