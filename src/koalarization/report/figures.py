"""The study's figures, in one style; every function takes data and returns a matplotlib Figure.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so no global state is touched and no
backend is needed; ``save_figure`` writes the PNG and PDF for results/.
"""
from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
from cycler import cycler
from matplotlib.figure import Figure

from koalarization.atomic import write_bytes_atomic
from koalarization.evaluate.stability import EVERY_QUESTION
from koalarization.report.tables import metric_header
from koalarization.stages import ModelRole, Roles

if TYPE_CHECKING:
    import pandas as pd

# Okabe & Ito's colour-blind-safe palette: models keep one colour across figures.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "axes.prop_cycle": cycler(color=PALETTE),
    "image.interpolation": "antialiased",
    "pdf.fonttype": 42,  # embed TrueType: text stays text in the PDF
    "svg.fonttype": "none",
}

DPI = 150
IMAGE_WIDTH_IN = 1.6  # width of one photo panel in small multiples, inches
PANEL_IN = 2.0  # width of one photo panel where color must be judged: 300 px at 150 dpi


@contextlib.contextmanager
def use_style() -> Iterator[None]:
    """The study's rc settings, for building one figure."""
    with mpl.rc_context(STYLE):  # type: ignore[arg-type]  # matplotlib types the rc keys as one long Literal
        yield


# One colour per role in every figure of the report, so that a model keeps its colour whatever it is called: the
# baselines, and each fusion level of the main classifier and loss; other networks take the remaining colours.
GRAY_COLOR, TRUTH_COLOR, MAIN_COLOR = "#7F7F7F", "#000000", "#0072B2"
BASELINE_COLORS = {"gray": GRAY_COLOR, "mean_ab": "#56B4E9"}
FUSION_COLORS = {"none": "#E69F00", "global": MAIN_COLOR, "spatial": "#009E73", "hypercolumn": "#D55E00"}
SPARE_COLORS = ["#CC79A7", "#F0E442", "#8C564B", "#17BECF", "#BCBD22"]


def _role_color(role: ModelRole, main: ModelRole, spare: list[str]) -> str:
    if role.kind == "baseline" and role.baseline:
        return BASELINE_COLORS[role.baseline]
    if role.loss == main.loss and role.backbone == main.backbone and role.fusion in FUSION_COLORS:
        return FUSION_COLORS[role.fusion]
    return spare.pop(0) if spare else "#444444"


def role_colors(roles: Roles) -> dict[str, str]:
    """A fixed colour per model, by its role: the same model has the same colour in every figure, and a seed
    ensemble a darker shade of its network's."""
    from matplotlib.colors import to_hex, to_rgb

    main, spare = roles.main(), list(SPARE_COLORS)
    colors = {"truth": TRUTH_COLOR}
    for role in roles.models:
        if role.kind != "ensemble":
            colors[role.id] = _role_color(role, main, spare)
    for role in roles.models:
        if role.kind == "ensemble" and role.of in colors:
            r, g, b = to_rgb(colors[role.of])
            colors[role.id] = to_hex((0.55 * r, 0.55 * g, 0.55 * b))
    return colors


def model_colors(models: Iterable[str], colors: dict[str, str] | None = None) -> dict[str, str]:
    """Each model's colour: from `colors` (`role_colors`) where given, else the palette in order."""
    known = colors or {}
    spare = iter([c for c in PALETTE if c not in known.values()] + PALETTE * 4)
    return {m: known[m] if m in known else next(spare) for m in models}


def _label(labels, model):
    return (labels or {}).get(model, str(model))


def save_figure(fig: Figure, path_without_suffix: str | os.PathLike, dpi: int = DPI) -> list[Path]:
    """Write ``<path>.png`` (150 dpi) and ``<path>.pdf``, each through a temporary file and a rename.

    The PDF carries no creation date, so rebuilding a figure from the same data gives the same file.
    """
    base = Path(path_without_suffix)
    base.parent.mkdir(parents=True, exist_ok=True)
    return [write_bytes_atomic(base.with_name(f"{base.name}.{fmt}"), figure_bytes(fig, fmt, dpi))
            for fmt in ("png", "pdf")]


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = DPI) -> bytes:
    """The figure as a PNG (or PDF) file's bytes, without the date or software name that would make two renderings
    of the same data differ."""
    metadata = {"Software": None} if fmt == "png" else {"CreationDate": None}
    buffer = io.BytesIO()
    with use_style():
        fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def _show(ax, image):
    """Draw a photo (uint8 RGB, or 2-D gray) without axes decorations; a missing one leaves a blank panel."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if image is None:
        ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes, color="0.5")
        return
    image = np.asarray(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
        ax.imshow(image.squeeze(), cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
    else:
        ax.imshow(image)


def _aspect(image):
    """Height over width of a photo (1 when missing)."""
    return 1.0 if image is None else np.asarray(image).shape[0] / np.asarray(image).shape[1]


def comparison_grid(rows: list[dict[str, Any]], columns: list[str], titles: list[str] | None = None) -> Figure:
    """The paper's comparison grid: one row per photo, one column per image (gray | baselines | ours | truth).

    ``rows``: dicts with "photo_id" and one image per name in ``columns``; ``titles`` (optional) head the columns.
    """
    titles = list(columns) if titles is None else list(titles)
    aspects = [max(_aspect(row.get(c)) for c in columns) for row in rows]
    with use_style():
        fig = Figure(figsize=(PANEL_IN * len(columns), PANEL_IN * sum(aspects) + 0.4), layout="constrained")
        axes = fig.subplots(len(rows), len(columns), squeeze=False, gridspec_kw={"height_ratios": aspects})
        for i, row in enumerate(rows):
            for j, column in enumerate(columns):
                ax = axes[i, j]
                _show(ax, row.get(column))
                if i == 0:
                    ax.set_title(titles[j])
                if j == 0:
                    ax.set_ylabel(str(row.get("photo_id", "")))
    return fig


def _shorten(text, width=26):
    return text if len(text) <= width else text[: width - 1] + "…"


def case_triplets(cases: list[dict[str, Any]], title: str) -> Figure:
    """Best or worst cases, one row each: gray input | prediction | ground truth, with a caption (e.g. the photo and
    its improvement over the gray input) and the classifier's top-3 classes of the gray photo under the input.

    ``cases``: dicts with "gray", "prediction", "truth" (images), "caption" and "classes" [(name, probability)].
    """
    aspect = max((_aspect(c["truth"]) for c in cases), default=1.0)
    with use_style():
        fig = Figure(figsize=(3 * PANEL_IN + 0.2, (PANEL_IN * aspect + 0.75) * len(cases) + 0.4),
                     layout="constrained")
        axes = fig.subplots(len(cases), 3, squeeze=False)
        for row, case in zip(axes, cases):
            for ax, key, heading in zip(row, ("gray", "prediction", "truth"),
                                        ("gray input", "prediction", "ground truth")):
                _show(ax, case[key])
                ax.set_title(heading if key != "prediction" else case.get("caption", heading), fontsize=7)
            lines = [f"{_shorten(str(name))}  {prob:.0%}" for name, prob in case.get("classes", [])[:3]]
            row[0].set_xlabel("\n".join(lines), fontsize=6.5, linespacing=1.2)
        fig.suptitle(title)
    return fig


def training_curves(history: pd.DataFrame, gray_loss: float | None = None, labels: dict[str, str] | None = None,
                    logy: bool = False, colors: dict[str, str] | None = None) -> Figure:
    """Training loss (solid) and validation loss (dashed, where measured) against step, one colour per model; runs
    of one model with several seeds share its colour (`colors` overrides it). `gray_loss`: the validation loss of
    predicting no color."""
    history = history.copy()
    if "model" not in history:
        history["model"] = ""
    if "seed" not in history:
        history["seed"] = 0
    models = list(dict.fromkeys(history["model"]))
    colors = model_colors(models, colors)
    with use_style():
        fig = Figure(figsize=(6.0, 3.4), layout="constrained")
        ax = fig.subplots()
        for (model, seed), group in history.groupby(["model", "seed"], sort=False):
            group = group.sort_values("step")
            first = seed == history.loc[history["model"] == model, "seed"].min()
            name = _label(labels, model)
            ax.plot(group["step"], group["loss"], color=colors[model], lw=1.0, alpha=0.9,
                    label=f"{name}: train" if first else None)
            val = group.dropna(subset=["val_loss"]) if "val_loss" in group else group.iloc[:0]
            if len(val):
                ax.plot(val["step"], val["val_loss"], color=colors[model], lw=1.0, ls="--", marker="o", ms=2.5,
                        label=f"{name}: validation" if first else None)
        if gray_loss is not None:
            ax.axhline(gray_loss, color=GRAY_COLOR, lw=1.0, ls=":", label="gray input (validation)")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (a*b*/127)")
        if logy:
            ax.set_yscale("log")
        ax.legend(frameon=False, fontsize=6.5, ncol=2)
    return fig


def _grid_shape(metrics, ncols=3):
    """(rows, columns) of the grid of one panel per metric, at most `ncols` wide."""
    ncols = max(1, min(ncols, len(metrics)))
    return int(np.ceil(len(metrics) / ncols)), ncols


def _metric_axes(fig, metrics, ncols=3):
    nrows, ncols = _grid_shape(metrics, ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    return list(axes.flat)[: len(metrics)]


def _finish_model_axis(ax, models, labels, metric):
    """The model names under a metric's panel, its header above, no vertical grid lines."""
    ax.set_xticks(range(len(models)), [_label(labels, m) for m in models], rotation=30, ha="right")
    ax.set_title(metric_header(metric))
    ax.grid(axis="x", visible=False)


def _grid_size(metrics, n_models, ncols=3):
    nrows, ncols = _grid_shape(metrics, ncols)
    return (max(2.2, 0.45 * n_models + 0.8) * ncols, 2.4 * nrows)


def metric_distributions(per_photo: pd.DataFrame, metrics: list[str], by: str = "model",
                         labels: dict[str, str] | None = None, colors: dict[str, str] | None = None) -> Figure:
    """Per metric, a box plot per model with every photo as a jittered dot (jitter is seeded: same data, same
    figure)."""
    models = list(dict.fromkeys(per_photo[by]))
    colors = model_colors(models, colors)
    rng = np.random.default_rng(0)
    with use_style():
        fig = Figure(figsize=_grid_size(metrics, len(models)), layout="constrained")
        for ax, metric in zip(_metric_axes(fig, metrics), metrics):
            data = [per_photo.loc[per_photo[by] == m, metric].dropna().to_numpy() for m in models]
            ax.boxplot(data, positions=range(len(models)), widths=0.6, showfliers=False,
                       medianprops={"color": "black"}, boxprops={"color": "0.4"}, whiskerprops={"color": "0.4"},
                       capprops={"color": "0.4"})
            for k, (model, values) in enumerate(zip(models, data)):
                ax.scatter(k + rng.uniform(-0.18, 0.18, values.size), values, s=6, color=colors[model], alpha=0.7,
                           linewidths=0, zorder=3)
            _finish_model_axis(ax, models, labels, metric)
    return fig


def summary_bars(summary: pd.DataFrame, metrics: list[str], by: str = "model",
                 labels: dict[str, str] | None = None, colors: dict[str, str] | None = None) -> Figure:
    """Per metric, the mean of each model as a bar with its 95% bootstrap interval (from ``stats.summarize``)."""
    models = list(dict.fromkeys(summary[by]))
    colors = model_colors(models, colors)
    with use_style():
        fig = Figure(figsize=_grid_size(metrics, len(models)), layout="constrained")
        for ax, metric in zip(_metric_axes(fig, metrics), metrics):
            rows = summary[summary["metric"] == metric].set_index(by).reindex(models)
            means = rows["mean"].to_numpy(dtype=float)
            low = np.nan_to_num(means - rows["ci_low"].to_numpy(dtype=float), nan=0.0)
            high = np.nan_to_num(rows["ci_high"].to_numpy(dtype=float) - means, nan=0.0)
            ax.bar(range(len(models)), means, color=[colors[m] for m in models], width=0.65)
            ax.errorbar(range(len(models)), means, yerr=[low, high], fmt="none", ecolor="black", capsize=3, lw=0.8)
            ax.axhline(0, color="0.3", lw=0.6)
            _finish_model_axis(ax, models, labels, metric)
    return fig


def photos_with_crops(items: list[tuple[str, np.ndarray, list[tuple[int, int, int]]]],
                      title: str | None = None) -> Figure:
    """Photos with rectangles where the network's training crops lie. ``items``: (name, image, [(y, x, side)])
    with the boxes in the image's own pixels."""
    from matplotlib.patches import Rectangle

    aspect = max((_aspect(image) for _, image, _ in items), default=1.0)
    with use_style():
        fig = Figure(figsize=(PANEL_IN * len(items), PANEL_IN * aspect + 0.5), layout="constrained")
        axes = fig.subplots(1, len(items), squeeze=False)[0]
        for ax, (name, image, boxes) in zip(axes, items):
            _show(ax, image)
            ax.set_title(name, fontsize=7)
            for k, (y, x, side) in enumerate(boxes):
                ax.add_patch(Rectangle((x, y), side, side, fill=False, lw=1.0, ls="--",
                                       edgecolor=PALETTE[k % len(PALETTE)]))
        if title:
            fig.suptitle(title)
    return fig


def recipe_comparison(recipes: pd.DataFrame) -> Figure:
    """The recipe search: validation CIEDE2000 (against the gray input's) and a*b* variation for each recipe."""
    with use_style():
        fig = Figure(figsize=(7.0, 2.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        names = recipes["recipe"].tolist()
        positions = np.arange(len(names))
        left.barh(positions, recipes["ciede2000"], color=MAIN_COLOR, height=0.6)
        left.scatter(recipes["ciede2000_gray"], positions, color=GRAY_COLOR, marker="|", s=200,
                     label="gray input", zorder=3)
        left.set_yticks(positions, names)
        left.set_xlabel("validation CIEDE2000 (lower is better)")
        left.legend(frameon=False, loc="lower right")
        right.barh(positions, recipes["ab_std_ratio"], color=MAIN_COLOR, height=0.6)
        right.set_yticks(positions, [])
        right.axvline(1.0, color="black", lw=0.8)
        right.set_xlabel("a*b* variation / truth's (1 is ideal)")
        for ax in (left, right):
            ax.grid(axis="y", visible=False)
    return fig


def photo_strip(images: list[tuple[str, np.ndarray | None]], title: str | None = None,
                columns: int | None = None) -> Figure:
    """Titled photos in rows of `columns` (default: one row), e.g. each historical photo's gray input followed by
    its colorizations."""
    columns = columns or len(images)
    rows = -(-len(images) // columns)
    aspects = [max((_aspect(image) for _, image in images[r * columns:(r + 1) * columns]), default=1.0)
               for r in range(rows)]
    with use_style():
        fig = Figure(figsize=(PANEL_IN * columns, PANEL_IN * sum(aspects) + 0.3 * rows + 0.4), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False, gridspec_kw={"height_ratios": aspects})
        for ax, (name, image) in zip(axes.flat, images):
            _show(ax, image)
            ax.set_title(name)
        for ax in list(axes.flat)[len(images):]:
            ax.set_visible(False)
        if title:
            fig.suptitle(title)
    return fig


__all__ = ["use_style", "save_figure", "model_colors", "comparison_grid", "case_triplets", "training_curves",
           "metric_distributions", "summary_bars", "photo_strip", "photos_with_crops", "recipe_comparison",
           "role_colors", "GRAY_COLOR", "MAIN_COLOR"]


def data_scaling(runs: pd.DataFrame) -> Figure:
    """Validation CIEDE2000 and PSNR gain over gray against the number of training photos: each run a dot, the
    mean over seeds a line, the gray input's level dashed. The x axis is logarithmic, so equal steps are doublings."""
    means = runs.groupby("train_photos")[["ciede2000", "psnr_gain_over_gray"]].mean()
    color = MAIN_COLOR
    with use_style():
        fig = Figure(figsize=(7.0, 2.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        for ax, column, label, title in ((left, "ciede2000", "validation CIEDE2000", "lower is better"),
                                         (right, "psnr_gain_over_gray", "PSNR gain over gray (dB)",
                                          "higher is better")):
            ax.set_title(title, fontsize=8)
            ax.scatter(runs["train_photos"], runs[column], color=color, s=12, alpha=0.7, label="one run (seed)")
            ax.plot(means.index, means[column], color=color, lw=1.2, marker="o", ms=4, label="mean over seeds")
            ax.set_xscale("log", base=2)
            ax.set_xticks(means.index, [str(n) for n in means.index])
            ax.minorticks_off()
            ax.set_xlabel("training photos")
            ax.set_ylabel(label)
        left.axhline(runs["ciede2000_gray"].iloc[0], color=GRAY_COLOR, lw=1.0, ls="--", label="gray input")
        right.axhline(0.0, color=GRAY_COLOR, lw=1.0, ls="--", label="gray input")
        left.legend(frameon=False, fontsize=6.5)
    return fig


SPLIT_STYLES = {"validation": ("validation", "#009E73", ":"), "test": ("test split", "#0072B2", "-"),
                "heldout": ("held-out source", "#D55E00", "--")}


def ensemble_size(table: pd.DataFrame) -> Figure:
    """CIEDE2000 and PSNR gain over gray against the number of seeds averaged, per split (`tables.ensemble_size`):
    the single seeds as dots at k = 1, the ensembles of the first k seeds as a line that starts at the first seed,
    the gray input's level as a thin line in the split's colour."""
    with use_style():
        fig = Figure(figsize=(7.0, 2.8), layout="constrained")
        left, right = fig.subplots(1, 2)
        for split, (name, color, style) in SPLIT_STYLES.items():
            rows = table[table["split"] == split]
            if rows.empty:
                continue
            seeds, ensembles = rows[rows["model"] == "seed"], rows[rows["model"] == "ensemble"]
            first = seeds[seeds["k"] == 1]
            ks = np.concatenate([first["k"], ensembles["k"]])
            for ax, column in ((left, "ciede2000"), (right, "psnr_gain_over_gray")):
                ax.scatter(np.ones(len(seeds)), seeds[column], color=color, s=10, alpha=0.6)
                ax.plot(ks, np.concatenate([first[column], ensembles[column]]), color=color, ls=style, lw=1.3,
                        marker="o", ms=3, label=name)
            left.axhline(rows["ciede2000_gray"].iloc[0], color=color, lw=0.8, alpha=0.6, ls=style)
        right.axhline(0.0, color=GRAY_COLOR, lw=1.0, ls="-", label="gray input")
        for ax, label, title in ((left, "CIEDE2000 (thin lines: gray input)", "lower is better"),
                                 (right, "PSNR gain over gray (dB)", "higher is better")):
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("seeds averaged (dots: each seed alone)")
            ax.set_ylabel(label)
            ax.set_xticks(sorted(table["k"].unique()))
        right.legend(frameon=False, fontsize=6.5)
    return fig


def verdict_stability(table: pd.DataFrame, questions: dict[tuple[str, str, str], str], own_seeds: int | None
                      ) -> Figure:
    """The simulated chance that a rerun gives the same verdict, against the seeds per procedure (the designs with
    equal seeds, from `evaluate.stability.stability_table`): one thin line per question (`questions` names them by
    (model a, model b, metric)), a colour per pair of procedures and a line style per metric; every verdict at once
    in black; the profile's own seeds marked (None: its procedures have different numbers of seeds)."""
    equal = table[table["design"].map(lambda d: len(set(d.split("/"))) == 1)].copy()
    equal["k"] = equal["design"].map(lambda d: int(d.split("/")[0]))
    equal = equal.sort_values("k", kind="stable")
    pairs = list(dict.fromkeys((a, b) for a, b, _ in questions))
    styles = dict(zip(dict.fromkeys(metric for _, _, metric in questions), ["-", "--", ":", "-."]))
    with use_style():
        fig = Figure(figsize=(7.0, 3.0), layout="constrained")
        ax = fig.subplots()
        for (a, b, metric), name in questions.items():
            rows = equal[(equal["model_a"] == a) & (equal["model_b"] == b) & (equal["metric"] == metric)]
            ax.plot(rows["k"], rows["p_same"], color=PALETTE[pairs.index((a, b)) % (len(PALETTE) - 1)],
                    ls=styles[metric], lw=1.1, marker="o", ms=2.5, label=name)
        every = equal[equal["model_a"] == EVERY_QUESTION]
        ax.plot(every["k"], every["p_same"], color="black", lw=2.0, marker="o", ms=3.5, label="every verdict at once")
        if own_seeds is not None:
            ax.axvline(own_seeds, color=GRAY_COLOR, lw=1.0, ls="--")
            ax.annotate("this profile", (own_seeds, 0.02), xytext=(3, 0), textcoords="offset points", fontsize=7,
                        color=GRAY_COLOR)
        ax.set_ylim(0, 1.02)
        ax.set_xticks(sorted(equal["k"].unique()))
        ax.set_xlabel("seeds per procedure")
        ax.set_ylabel("chance that a rerun gives the same verdict")
        ax.legend(frameon=False, fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def _seeds_and_mean(ax, position: float, values: np.ndarray, color: str) -> None:
    """One setting's seeds as dots and their mean as a short line: honest on an axis that does not start at 0."""
    ax.scatter(np.full(values.size, position), values, color=color, s=16, zorder=3, alpha=0.85)
    ax.hlines(values.mean(), position - 0.25, position + 0.25, color=color, lw=2.0, zorder=2)


def dose_response(seed_means: pd.DataFrame, gray: dict[str, float], colors: dict[str, str],
                  metric: str = "ciede2000") -> Figure:
    """Where the classifier's knowledge enters, rung by rung: per split, each seed's mean over the photos as a dot
    and the mean over seeds as a line across them, from no classifier to spatial fusion; the gray input's level as a
    dashed line.
    `seed_means`: columns split, model, label, seed, value (`tables.seed_means`)."""
    splits = list(dict.fromkeys(seed_means["split"]))
    with use_style():
        fig = Figure(figsize=(3.3 * len(splits), 2.8), layout="constrained")
        axes = fig.subplots(1, len(splits), squeeze=False)[0]
        for ax, split in zip(axes, splits):
            rows = seed_means[seed_means["split"] == split]
            models = list(dict.fromkeys(rows["model"]))
            for k, model in enumerate(models):
                values = rows.loc[rows["model"] == model, "value"].to_numpy()
                _seeds_and_mean(ax, k, values, colors.get(model, MAIN_COLOR))
            if split in gray:
                ax.axhline(gray[split], color=GRAY_COLOR, lw=1.0, ls="--", label="gray input")
            labels = [rows.loc[rows["model"] == m, "label"].iloc[0] for m in models]
            ax.set_xticks(range(len(models)), labels, rotation=20, ha="right")
            low = min(rows["value"].min(), gray.get(split, np.inf))
            ax.set_ylim(low * 0.9, None)
            ax.set_title({"test": "test split", "heldout": "held-out source"}.get(split, split))
            ax.set_ylabel(metric_header(metric) + " (dots: one seed each)")
            ax.grid(axis="x", visible=False)
            ax.legend(frameon=False, fontsize=6.5, loc="best")
    return fig


def fusion_designs(designs: pd.DataFrame, by: str = "design", colors: dict[str, str] | None = None) -> Figure:
    """The fusion-design search: validation CIEDE2000 and PSNR gain over gray per design (or per `by`, colored by
    `colors`), each seed a dot and the mean a line across them (no bars: the axis does not start at 0); the gray
    input dashed."""
    names = list(dict.fromkeys(designs[by]))
    colors = colors or {"global": MAIN_COLOR, "spatial": FUSION_COLORS["spatial"],
                        "hypercolumn": FUSION_COLORS["hypercolumn"]}
    with use_style():
        fig = Figure(figsize=(7.0, 2.6), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, column, title in ((axes[0], "ciede2000", "validation CIEDE2000 (lower is better)"),
                                  (axes[1], "psnr_gain_over_gray", "PSNR gain over gray, dB (higher is better)")):
            for k, name in enumerate(names):
                values = designs.loc[designs[by] == name, column].to_numpy()
                _seeds_and_mean(ax, k, values, colors.get(name, MAIN_COLOR))
            ax.set_xticks(range(len(names)), names)
            ax.set_title(title, fontsize=8)
            ax.grid(axis="x", visible=False)
        axes[0].axhline(designs["ciede2000_gray"].iloc[0], color=GRAY_COLOR, ls="--", lw=1.0, label="gray input")
        axes[0].set_ylim(designs["ciede2000"].min() * 0.9, None)
        axes[1].axhline(0.0, color=GRAY_COLOR, ls="--", lw=1.0)
        axes[0].legend(frameon=False, fontsize=6.5, loc="lower left")
    return fig


def grid_columns(roles: Roles) -> list[str]:
    """The comparison grid's columns, by role: the gray input, each rung of the dose-response ladder (no classifier,
    the paper's network, the spatial one) followed by its seed ensemble, the other networks, and the truth. The
    mean-a*b* prior and the no-classifier ensemble (its seeds agree closely) are left to the tables."""
    columns = [r.id for r in roles.models if r.baseline == "gray"]
    ladder = roles.ladder()
    for rung in ladder:
        columns.append(rung.id)
        ensemble = roles.ensemble_of(rung.id)
        if ensemble is not None and rung.fusion != "none":
            columns.append(ensemble.id)
    columns += [r.id for r in roles.networks() if r not in ladder]
    return columns + ["truth"]
