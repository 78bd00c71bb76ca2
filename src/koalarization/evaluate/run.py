"""Evaluate trained models and baselines on held-out photos, photo by photo.

Every model colorizes the same photos as a user's `koala colorize` would: the network runs at the scale the
checkpoint was trained at, and the predicted a*b* is joined to the photo's own L at the stored resolution (short
side 256 in the demo), with the classifier embedding cached at preparation. A model trained with several seeds is
evaluated once per seed. Baselines need no training: `gray` predicts a*b* = 0; `mean_ab` predicts the training
split's mean a*b* everywhere (a dataset color prior). Per-photo metrics go to a CSV; the colorized images (first
seed) are kept for the figures and the user study.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import write_csv_atomic, write_json_atomic
from ..colorize import Colorizer, join, lightness
from ..images import save_image_atomic
from ..layout import safe_name
from .metrics import ciede2000_by_chroma, evaluate_pair

log = logging.getLogger(__name__)
BASELINES = ("gray", "mean_ab")
ENSEMBLE_SUFFIX = "_ensemble"


def ensemble_name(model: str) -> str:
    """The model id under which a model's seed ensemble is scored."""
    return model + ENSEMBLE_SUFFIX


def ensemble_labels(labels: dict[str, str], seeds: dict[str, int]) -> dict[str, str]:
    """Readable names of the seed ensembles of the models trained with several seeds ({model: seed count})."""
    return {ensemble_name(model): f"{labels.get(model, model)}, {count}-seed ensemble"
            for model, count in seeds.items() if count > 1}


def mean_ab(data_dir: str) -> np.ndarray:
    """Mean a*b* over all pixels of the training split: the `mean_ab` prior."""
    from ..color import rgb_to_lab
    from ..data.batches import iterate_photos

    sums, count = np.zeros(2), 0
    for _photo_id, rgb, _embedding in iterate_photos(data_dir, "train"):
        ab = rgb_to_lab(rgb)[..., 1:].reshape(-1, 2)
        sums += ab.sum(axis=0)
        count += len(ab)
    return sums / max(count, 1)


def evaluate(models: dict[str, dict[str, Any]], out_dir: str, split: str = "test", baselines: bool = True,
             save_images: bool = True, progress: bool = True, image_path=None, ensembles: bool = True
             ) -> pd.DataFrame:
    """Colorize every photo of a split with every model (and seed) and score it.

    models: {name: {"data_dir": prepared dataset, "checkpoints": {seed: checkpoint or run folder}}}; all data dirs
    hold the same photos (they differ only in the cached embedding). `image_path(model, photo_id)` says where a
    colorized image goes (default: out_dir/images/<model>/<photo>.png). Returns the per-photo DataFrame, one row
    per model, seed and photo (baselines and ensembles have seed -1), also written to out_dir/per_photo.csv. The
    error split by the true chroma (`ciede2000_by_chroma`) goes to out_dir/by_chroma.csv. `ensembles`: also score
    each model with several seeds as `<model>_ensemble`, the seeds' a*b* averaged.
    """
    from tqdm.auto import tqdm

    from ..backbones import top_classes
    from ..data.batches import iterate_photos

    image_path = image_path or (lambda model, photo_id: os.path.join(out_dir, "images", model,
                                                                     safe_name(photo_id) + ".png"))
    colorizers = {(name, int(seed)): (Colorizer(path, cached_embeddings=True), spec["data_dir"])
                  for name, spec in models.items() for seed, path in spec["checkpoints"].items()}
    first_seed = {name: min(int(s) for s in spec["checkpoints"]) for name, spec in models.items()}
    several = [name for name, spec in models.items() if len(spec["checkpoints"]) > 1] if ensembles else []
    data_dirs = sorted({spec["data_dir"] for spec in models.values()})
    streams = {d: iterate_photos(d, split) for d in data_dirs}
    prior = mean_ab(data_dirs[0]) if baselines else None
    rows, classes, bands = [], [], []
    for items in tqdm(zip(*streams.values()), desc=f"evaluate {split}", unit="photo", disable=not progress):
        by_dir = dict(zip(streams, items))
        ids = {item[0] for item in items}
        if len(ids) != 1:
            raise ValueError(f"prepared datasets {data_dirs} disagree on the {split} photos: {ids}")
        photo_id, truth, _ = items[0]
        height, width = (side // 8 * 8 for side in truth.shape[:2])
        truth = np.ascontiguousarray(truth[:height, :width])
        l_full = lightness(truth)
        predictions = {}
        if baselines:
            predictions[("gray", -1)] = join(l_full, np.zeros(l_full.shape + (2,), np.float32))
            predictions[("mean_ab", -1)] = join(l_full, np.broadcast_to(prior.astype(np.float32),
                                                                        l_full.shape + (2,)))
        small, predicted = {}, {}
        for (name, seed), (colorizer, data) in colorizers.items():
            if colorizer.short_side not in small:
                small[colorizer.short_side] = colorizer.lightness_planes(truth)[1]
            predicted[(name, seed)] = colorizer.predict_ab(small[colorizer.short_side], by_dir[data][2])
            predictions[(name, seed)] = join(l_full, predicted[(name, seed)])
        for name in several:
            members = [ab for (model, _seed), ab in predicted.items() if model == name]
            predictions[(ensemble_name(name), -1)] = join(l_full, np.mean(members, axis=0))
        for data, item in by_dir.items():
            row = {"photo_id": photo_id, "data_dir": data}
            for k, (class_name, probability) in enumerate(top_classes(item[2], 3), start=1):
                row.update({f"class_{k}": class_name, f"prob_{k}": probability})
            classes.append(row)
        for (name, seed), prediction in predictions.items():
            scores = evaluate_pair(prediction, truth)
            rows.append({"model": name, "seed": seed, "photo_id": photo_id, **scores})
            bands += [{"model": name, "seed": seed, "photo_id": photo_id, **band}
                      for band in ciede2000_by_chroma(prediction, truth)]
            if save_images and (seed == -1 or seed == first_seed[name]):
                path = image_path(name, photo_id)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                save_image_atomic(prediction, path)
        if save_images:
            path = image_path("truth", photo_id)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            save_image_atomic(truth, path)
    if not rows:
        raise ValueError(f"the {split} split is empty")
    per_photo = pd.DataFrame(rows)
    os.makedirs(out_dir, exist_ok=True)
    write_csv_atomic(per_photo, os.path.join(out_dir, "per_photo.csv"))
    write_csv_atomic(pd.DataFrame(classes), os.path.join(out_dir, "classes.csv"))
    write_csv_atomic(pd.DataFrame(bands), os.path.join(out_dir, "by_chroma.csv"))
    if prior is not None:
        write_json_atomic(os.path.join(out_dir, "prior.json"), {"mean_ab": prior.tolist()})
    return per_photo


def average_seeds(per_photo: pd.DataFrame, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per model and photo: each metric averaged over the model's seeds (the unit of the paired tests)."""
    metrics = list(metrics) if metrics is not None else [c for c in per_photo.select_dtypes("number").columns
                                                         if c != "seed"]
    averaged = per_photo.groupby(["model", "photo_id"], sort=False)[metrics].mean().reset_index()
    counts = per_photo.groupby(["model", "photo_id"], sort=False)["seed"].nunique().reset_index(name="seeds")
    return averaged.merge(counts, on=["model", "photo_id"])


def seed_spread(per_photo: pd.DataFrame, metrics: Iterable[str]) -> pd.DataFrame:
    """Per model and metric: the mean over photos for each seed, and the spread of those means across seeds."""
    rows = []
    trained = per_photo[per_photo["seed"] >= 0]
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
    share = first[first["seed"] == first["seed"].min()].groupby("band", sort=False)["pixels"].sum().reindex(band_order)
    table = table[models]
    table.insert(0, "share of pixels", share / share.sum())
    every_pixel = totals.groupby("model", sort=False)[["pixels", "ciede2000_sum"]].sum()
    table.loc["all pixels"] = [1.0] + [every_pixel.loc[m, "ciede2000_sum"] / every_pixel.loc[m, "pixels"]
                                      for m in models]
    return table.rename_axis(index="true chroma", columns=None).reset_index()


def survey_candidates(per_photo: pd.DataFrame, model: str, image_path) -> pd.DataFrame:
    """The table the survey builder reads: one row per photo with the model's output and the original."""
    ours = average_seeds(per_photo[per_photo["model"] == model])
    ours["colorized_path"] = [str(image_path(model, p)) for p in ours["photo_id"]]
    ours["real_path"] = [str(image_path("truth", p)) for p in ours["photo_id"]]
    return ours
