"""Evaluate trained models and baselines on held-out photos, photo by photo.

Every model colorizes the same photos as a user's `koala colorize` would: the network runs at the scale the
checkpoint was trained at, and the predicted a*b* is joined to the photo's own L at the stored resolution (short
side 256 in the demo), with what the classifier saw of the photo (embedding, feature maps) cached at preparation. A
model trained with several seeds is evaluated once per seed, and as a seed ensemble (its seeds' a*b* averaged,
`colorize.average_ab`). Baselines need no training: `gray` predicts a*b* = 0; `mean_ab` predicts the training split's
mean a*b* everywhere (a dataset color prior). Per-photo metrics go to a CSV (`stages.PerPhotoRow`); the colorized
images (first seed) are kept for the figures and the user study.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import write_csv_atomic, write_json_atomic
from ..colorize import Colorizer, Seen, average_ab, lightness
from ..layout import EvalFiles
from ..stages import ClassesRow, PerPhotoRow, RunsIndex, read_rows, write_rows
from .metrics import rgb_to_lab
from .scoring import join_and_score

log = logging.getLogger(__name__)
BASELINES = ("gray", "mean_ab")


def ensemble_id(model: str) -> str:
    """The id under which a model's seed ensemble is scored (as `stages.roles_of` names it)."""
    return f"{model}_ensemble"


def mean_ab(data_dir: str) -> np.ndarray:
    """Mean a*b* over all pixels of the training split: the `mean_ab` prior."""
    from ..data.batches import iterate_photos

    sums, count = np.zeros(2), 0
    for photo in iterate_photos(data_dir, "train"):
        ab = rgb_to_lab(photo.rgb)[..., 1:].reshape(-1, 2)
        sums += ab.sum(axis=0)
        count += len(ab)
    return sums / max(count, 1)


@dataclass
class EvalPhoto:
    """One photo under evaluation: its truth (sides cut to multiples of 8), L, and what each classifier saw."""

    photo_id: str
    truth: np.ndarray
    l_full: np.ndarray
    seen: dict[str, Seen]  # by prepared dataset


def split_photos(runs: RunsIndex, split: str) -> Iterator[EvalPhoto]:
    """The split's photos, read from every prepared dataset the models use (they differ only in what the
    classifier saw), in order."""
    from ..data.batches import iterate_photos

    data_dirs = sorted({entry.data_dir for entry in runs.models.values()})
    for items in zip(*(iterate_photos(d, split) for d in data_dirs)):
        ids = {item.photo_id for item in items}
        if len(ids) != 1:
            raise ValueError(f"prepared datasets {data_dirs} disagree on the {split} photos: {ids}")
        height, width = (side // 8 * 8 for side in items[0].rgb.shape[:2])
        truth = np.ascontiguousarray(items[0].rgb[:height, :width])
        yield EvalPhoto(items[0].photo_id, truth, lightness(truth),
                     {d: Seen(item.embedding, item.maps) for d, item in zip(data_dirs, items)})


def network_colorizers(runs: RunsIndex) -> dict[str, dict[int, Colorizer]]:
    """Every checkpoint of the runs, by model and seed, loaded for cached classifier outputs (`predict_all`)."""
    return {name: {seed: Colorizer(path, cached_embeddings=True) for seed, path in entry.checkpoints.items()}
            for name, entry in runs.models.items()}


def predict_all(photo: EvalPhoto, runs: RunsIndex, colorizers: dict, prior: np.ndarray | None,
                ensembles: bool) -> dict[tuple[str, int | None], np.ndarray]:
    """Every model's (and seed's) a*b* of one photo, in the table's order: the baselines (one a*b* for the whole
    photo), then each network's seeds and its seed ensemble. Each network runs compiled on the photo alone: batching
    photos would change its output's last bits under TensorFlow, and the numbers must not move."""
    out: dict[tuple[str, int | None], np.ndarray] = {}
    if prior is not None:
        out[("gray", None)] = np.zeros(2, np.float32)
        out[("mean_ab", None)] = prior.astype(np.float32)
    small: dict[int, np.ndarray] = {}
    for name, entry in runs.models.items():
        members = []
        for seed, colorizer in colorizers[name].items():
            if colorizer.short_side not in small:
                small[colorizer.short_side] = colorizer.lightness_planes(photo.truth)[1]
            ab = colorizer.predict_ab(small[colorizer.short_side], photo.seen[entry.data_dir])
            out[(name, seed)] = ab
            members.append(ab)
        if ensembles and len(members) > 1:
            out[(ensemble_id(name), None)] = average_ab(members)
    return out


def _classes_rows(photo: EvalPhoto) -> list[ClassesRow]:
    from ..backbones import top_classes

    rows = []
    for data_dir, seen in photo.seen.items():
        top = top_classes(seen.embedding, 3)
        rows.append(ClassesRow(photo_id=photo.photo_id, data_dir=data_dir, class_1=top[0][0], prob_1=top[0][1],
                               class_2=top[1][0], prob_2=top[1][1], class_3=top[2][0], prob_3=top[2][1]))
    return rows


def _images_to_save(files: EvalFiles, photo: EvalPhoto, keys: Iterable[tuple[str, int | None]],
                    first_seed: dict[str, int]) -> dict[tuple[str, int | None], str]:
    """The truth aside, every baseline and ensemble, and each network's first seed (figures, survey)."""
    return {(model, seed): str(files.image(model, photo.photo_id)) for model, seed in keys
            if seed is None or seed == first_seed.get(model)}


def scoring_workers() -> int:
    """Processes that score while the networks run: one per usable core, at most 8. Scoring (CIEDE2000, SSIM and the
    color conversions, about 0.8 s per photo of the demo's 18 predictions) costs more than running the networks (0.4
    s), so on 2 cores two workers beat one: the demo's held-out split in 50 s instead of 64 s (AMD EPYC,
    benchmarks/evaluation.py measures it). The numbers do not depend on it."""
    from ..machine import usable_cores

    return max(1, min(8, usable_cores()))


def evaluate(runs: RunsIndex, files: EvalFiles, split: str = "test", baselines: bool = True,
             save_images: bool = True, progress: bool = True, ensembles: bool = True, workers: int = 0
             ) -> pd.DataFrame:
    """Colorize every photo of a split with every model (and seed) and score it; -> the per-photo table, one row per
    model, seed and photo (baselines and ensembles: seed <NA>), also written to `files.per_photo`. The error split by
    the true chroma goes to `files.by_chroma`, the classifier's top classes to `files.classes`. `ensembles`: also
    score each model with several seeds as `<model>_ensemble`. `workers`: processes that join, write and score
    (`scoring.join_and_score`) while the networks run on the next photos (0: all in this process); the numbers do
    not depend on it."""
    from tqdm.auto import tqdm

    colorizers = network_colorizers(runs)
    first_seed = {name: min(entry.checkpoints) for name, entry in runs.models.items()}
    prior = mean_ab(sorted({e.data_dir for e in runs.models.values()})[0]) if baselines else None
    classes: list[ClassesRow] = []
    scored = _Scoring(workers)
    with scored:
        for photo in tqdm(split_photos(runs, split), desc=f"evaluate {split}", unit="photo", disable=not progress):
            predicted = predict_all(photo, runs, colorizers, prior, ensembles)
            classes += _classes_rows(photo)
            save = _images_to_save(files, photo, predicted, first_seed) if save_images else {}
            scored.submit(photo.photo_id, photo.truth, photo.l_full, predicted, save,
                          str(files.image("truth", photo.photo_id)) if save_images else None)
    if not scored.rows:
        raise ValueError(f"the {split} split is empty")
    return _write(files, scored.rows, scored.bands, classes, prior)


class _Scoring:
    """`scoring.join_and_score` for each photo, here or in `workers` processes (a few photos ahead at most, so
    memory stays small), its rows kept in the photos' order."""

    def __init__(self, workers: int):
        self.rows: list[PerPhotoRow] = []
        self.bands: list[dict] = []
        self.workers = workers
        self.pool = (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
                     if workers else None)
        self.pending: deque[Future] = deque()

    def submit(self, *task: Any) -> None:
        if self.pool is None:
            self._add(join_and_score(*task))
            return
        self.pending.append(self.pool.submit(join_and_score, *task))
        while len(self.pending) > 2 * self.workers:
            self._add(self.pending.popleft().result())

    def _add(self, result: tuple[list[PerPhotoRow], list[dict]]) -> None:
        self.rows += result[0]
        self.bands += result[1]

    def __enter__(self) -> _Scoring:
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            while self.pending and exc[0] is None:
                self._add(self.pending.popleft().result())
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)


def _write(files: EvalFiles, rows: list[PerPhotoRow], bands: list[dict], classes: list[ClassesRow],
           prior: np.ndarray | None) -> pd.DataFrame:
    per_photo = write_rows(files.per_photo, rows)
    write_rows(files.classes, classes)
    by_chroma = pd.DataFrame(bands)
    by_chroma["seed"] = by_chroma["seed"].astype("Int64")
    write_csv_atomic(by_chroma, files.by_chroma)
    if prior is not None:
        write_json_atomic(files.prior, {"mean_ab": prior.tolist()})
    return per_photo


def read_per_photo(files: EvalFiles) -> pd.DataFrame:
    """The per-photo table of an evaluation, checked (`stages.PerPhotoRow`)."""
    return read_rows(files.per_photo, PerPhotoRow)


def read_classes(files: EvalFiles) -> pd.DataFrame:
    return read_rows(files.classes, ClassesRow)


def read_prior(files: EvalFiles) -> list[float]:
    with open(files.prior) as handle:
        return json.load(handle)["mean_ab"]


def average_seeds(per_photo: pd.DataFrame, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per model and photo: each metric averaged over the model's seeds (the unit of the paired tests)."""
    metrics = list(metrics) if metrics is not None else [c for c in per_photo.select_dtypes("number").columns
                                                         if c != "seed"]
    averaged = per_photo.groupby(["model", "photo_id"], sort=False)[metrics].mean().reset_index()
    counts = per_photo.groupby(["model", "photo_id"], sort=False)["seed"].nunique().reset_index(name="seeds")
    return averaged.merge(counts, on=["model", "photo_id"])


def seed_spread(per_photo: pd.DataFrame, metrics: Iterable[str]) -> pd.DataFrame:
    """Per trained model and metric: the mean over photos for each seed, and the spread of those means."""
    rows = []
    trained = per_photo[per_photo["seed"].notna()]
    for model, group in trained.groupby("model", sort=False):
        by_seed = group.groupby("seed")[list(metrics)].mean()
        for metric in metrics:
            values = by_seed[metric].to_numpy()
            rows.append({"model": model, "metric": metric, "seeds": len(values),
                         "per_seed_means": ", ".join(f"{v:.4g}" for v in values),
                         "seed_range": float(values.max() - values.min()) if len(values) else np.nan,
                         "seed_sd": float(values.std(ddof=1)) if len(values) > 1 else np.nan})
    return pd.DataFrame(rows)


def error_by_chroma(bands: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Mean CIEDE2000 per model over all pixels of each true-chroma band (seeds pooled), with the band's share of
    the pixels: rows are bands, columns models, so a reader sees where each model gains or loses against gray."""
    band_order = list(dict.fromkeys(bands["band"]))
    totals = bands.groupby(["band", "model"], sort=False)[["pixels", "ciede2000_sum"]].sum().reset_index()
    totals["ciede2000"] = totals["ciede2000_sum"] / totals["pixels"].clip(lower=1)
    table = totals.pivot(index="band", columns="model", values="ciede2000").reindex(band_order)
    models = [m for m in (order or list(dict.fromkeys(bands["model"]))) if m in table.columns]
    first = bands[bands["model"] == models[0]]
    first = first[first["seed"].isna()] if first["seed"].isna().any() else first[first["seed"] == first["seed"].min()]
    share = first.groupby("band", sort=False)["pixels"].sum().reindex(band_order)
    table = table[models]
    table.insert(0, "share of pixels", share / share.sum())
    every_pixel = totals.groupby("model", sort=False)[["pixels", "ciede2000_sum"]].sum()
    table.loc["all pixels"] = [1.0] + [every_pixel.loc[m, "ciede2000_sum"] / every_pixel.loc[m, "pixels"]
                                      for m in models]
    return table.rename_axis(index="true chroma", columns=None).reset_index()


def read_by_chroma(files: EvalFiles) -> pd.DataFrame:
    frame = pd.read_csv(files.by_chroma)
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def survey_candidates(per_photo: pd.DataFrame, model: str, files: EvalFiles) -> pd.DataFrame:
    """The table the survey builder reads: one row per photo with the model's output and the original."""
    ours = average_seeds(per_photo[per_photo["model"] == model])
    ours["colorized_path"] = [str(files.image(model, p)) for p in ours["photo_id"]]
    ours["real_path"] = [str(files.image("truth", p)) for p in ours["photo_id"]]
    return ours


def gains_over(averaged: pd.DataFrame, model: str, baseline: str, metric: str) -> pd.Series:
    """Per photo, how much better `model` is than `baseline` on `metric` (positive: better), in the metric's own
    direction (`metrics.higher_is_better`), sorted from the largest gain to the largest loss."""
    from .metrics import higher_is_better

    better = higher_is_better(metric)
    if better is None:
        raise ValueError(f"{metric} has no better direction: photos cannot be ranked by it")
    wide = averaged.pivot(index="photo_id", columns="model", values=metric)
    gain = wide[model] - wide[baseline] if better else wide[baseline] - wide[model]
    return gain.sort_values(ascending=False)


def write_summary(files: EvalFiles, summary: pd.DataFrame) -> None:
    """Means and intervals of every model and metric (`stats.summarize`), for the figures of stage 4."""
    write_csv_atomic(summary, files.summary)


def read_summary(files: EvalFiles) -> pd.DataFrame:
    return pd.read_csv(files.summary)


def summary_mean(summary: pd.DataFrame, model: str, metric: str) -> float:
    """One model's mean of one metric in a `stats.summarize` table."""
    row = summary[(summary["model"] == model) & (summary["metric"] == metric)]
    if row.empty:
        raise KeyError(f"no mean of {metric} for {model}")
    return float(row["mean"].iloc[0])


def evaluate_checkpoints(name: str, checkpoints: dict[int, str], data_dir: str, folder: str | os.PathLike,
                         split: str = "validation") -> pd.DataFrame:
    """One model's seeds (their checkpoints, on their prepared dataset) and the baselines on one split, without
    images: what the recipe searches score their runs with. The fusion level is read from the checkpoints."""
    from .. import checkpoint
    from ..stages import RunEntry

    config = checkpoint.read_config(checkpoint.resolve(next(iter(checkpoints.values())), "chosen"))
    entry = RunEntry(backbone=config["backbone"], fusion=checkpoint.fusion_of(config),
                     loss=config.get("training", {}).get("loss", "mse"), label=name, data_dir=data_dir,
                     checkpoints=checkpoints)
    return evaluate(RunsIndex(models={name: entry}), EvalFiles(Path(folder)), split=split, save_images=False,
                    progress=False)
