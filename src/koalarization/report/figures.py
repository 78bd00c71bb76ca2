"""The study's figures, in one style; every function takes data and returns a matplotlib Figure.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so no global state is touched and no
backend is needed; ``save_figure`` writes the PNG and PDF for results/.
"""
import contextlib
import os
import tempfile
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from koalarization.report.tables import metric_header

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
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "image.interpolation": "antialiased",
    "pdf.fonttype": 42,  # embed TrueType: text stays text in the PDF
    "svg.fonttype": "none",
}

DPI = 150
IMAGE_WIDTH_IN = 1.6  # width of one photo panel, inches


@contextlib.contextmanager
def use_style():
    """The study's rc settings, for building one figure."""
    with mpl.rc_context(STYLE):
        yield


def model_colors(models):
    """A fixed colour per model, in the order given."""
    return {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(models)}


def save_figure(fig, path_without_suffix, dpi=DPI):
    """Write ``<path>.png`` (150 dpi) and ``<path>.pdf``, each through a temporary file and a rename.

    The PDF carries no creation date, so rebuilding a figure from the same data gives the same file.
    """
    base = Path(path_without_suffix)
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, metadata in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
        path = base.with_name(f"{base.name}.{fmt}")
        fd, tmp = tempfile.mkstemp(dir=base.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            with use_style():
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(path)
    return paths


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


def comparison_grid(rows, columns, titles=None):
    """The paper's comparison grid: one row per photo, one column per image (gray | baselines | ours | truth).

    ``rows``: dicts with "photo_id" and one image per name in ``columns``; ``titles`` (optional) head the columns.
    """
    titles = list(columns) if titles is None else list(titles)
    aspects = [max(_aspect(row.get(c)) for c in columns) for row in rows]
    with use_style():
        fig = Figure(figsize=(IMAGE_WIDTH_IN * len(columns), IMAGE_WIDTH_IN * sum(aspects) + 0.3),
                     layout="constrained")
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


def labelled_cases(cases, title, ncols=4):
    """Best or worst cases: each photo with its caption above and the backbone's top-3 classes below.

    ``cases``: dicts with "image", "caption" (e.g. photo id and metric) and "classes" [(name, probability), ...].
    """
    ncols = max(1, min(ncols, len(cases)))
    nrows = int(np.ceil(len(cases) / ncols))
    aspect = max((_aspect(c["image"]) for c in cases), default=1.0)
    with use_style():
        width = max(IMAGE_WIDTH_IN * 1.2 * ncols, 0.09 * len(title))  # room for the title with one case
        fig = Figure(figsize=(width, (IMAGE_WIDTH_IN * 1.2 * aspect + 0.9) * nrows + 0.4), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, case in zip(axes.flat, cases):
            _show(ax, case["image"])
            ax.set_title(case.get("caption", ""))
            lines = [f"{_shorten(str(name))}  {prob:.0%}" for name, prob in case.get("classes", [])[:3]]
            ax.set_xlabel("\n".join(lines), fontsize=7, linespacing=1.3)
        for ax in list(axes.flat)[len(cases):]:
            ax.set_visible(False)
        fig.suptitle(title)
    return fig


def training_curves(history, logy=False):
    """Training loss (solid) and validation loss (dashed, only where measured) against step, one colour per model."""
    history = history.copy()
    if "model" not in history:
        history["model"] = ""
    models = list(dict.fromkeys(history["model"]))
    colors = model_colors(models)
    with use_style():
        fig = Figure(figsize=(4.5, 3.0), layout="constrained")
        ax = fig.subplots()
        for model, group in history.groupby("model", sort=False):
            group = group.sort_values("step")
            prefix = f"{model} " if model else ""
            ax.plot(group["step"], group["loss"], color=colors[model], lw=1.2, label=f"{prefix}train")
            if "val_loss" in group:
                val = group.dropna(subset=["val_loss"])
                if len(val):
                    ax.plot(val["step"], val["val_loss"], color=colors[model], lw=1.2, ls="--", marker="o",
                            ms=2.5, label=f"{prefix}validation")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (MSE on a*b*/127)")
        if logy:
            ax.set_yscale("log")
        ax.legend(frameon=False)
    return fig


def _metric_axes(fig, metrics, ncols=3):
    ncols = max(1, min(ncols, len(metrics)))
    nrows = int(np.ceil(len(metrics) / ncols))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    return list(axes.flat)[: len(metrics)]


def _grid_size(metrics, n_models, ncols=3):
    ncols = max(1, min(ncols, len(metrics)))
    nrows = int(np.ceil(len(metrics) / ncols))
    return (max(2.2, 0.45 * n_models + 0.8) * ncols, 2.4 * nrows)


def metric_distributions(per_photo, metrics, by="model"):
    """Per metric, a box plot per model with every photo as a jittered dot (jitter is seeded: same data, same figure)."""
    models = list(dict.fromkeys(per_photo[by]))
    colors = model_colors(models)
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
            ax.set_xticks(range(len(models)), [str(m) for m in models], rotation=30, ha="right")
            ax.set_title(metric_header(metric))
            ax.grid(axis="x", visible=False)
    return fig


def summary_bars(summary, metrics, by="model"):
    """Per metric, the mean of each model as a bar with its 95% bootstrap interval (from ``stats.summarize``)."""
    models = list(dict.fromkeys(summary[by]))
    colors = model_colors(models)
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
            ax.set_xticks(range(len(models)), [str(m) for m in models], rotation=30, ha="right")
            ax.set_title(metric_header(metric))
            ax.grid(axis="x", visible=False)
    return fig


def photo_strip(images, title=None):
    """A row of titled photos, e.g. a historical photo's gray input and its colorization."""
    aspect = max((_aspect(image) for _, image in images), default=1.0)
    with use_style():
        fig = Figure(figsize=(IMAGE_WIDTH_IN * 1.5 * len(images), IMAGE_WIDTH_IN * 1.5 * aspect + 0.5),
                     layout="constrained")
        axes = fig.subplots(1, len(images), squeeze=False)[0]
        for ax, (name, image) in zip(axes, images):
            _show(ax, image)
            ax.set_title(name)
        if title:
            fig.suptitle(title)
    return fig


__all__ = ["use_style", "save_figure", "model_colors", "comparison_grid", "labelled_cases", "training_curves",
           "metric_distributions", "summary_bars", "photo_strip"]
