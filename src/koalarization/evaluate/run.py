"""Evaluate trained models and baselines on the held-out test split, photo by photo.

Every model colorizes the same test photos (the prepared images, at their own resolution, with the classifier
embedding cached at preparation). Baselines need no training: `gray` predicts a*b* = 0; `mean_ab` predicts the
training split's mean a*b* everywhere (a dataset color prior). Outputs per photo go to a CSV; the colorized images
are kept for the figures and the user study.
"""
import argparse
import os
import re

import numpy as np
import pandas as pd

from ..atomic import write_csv_atomic, write_json_atomic
from ..colorize import Colorizer, join, lightness
from ..images import save_image_atomic
from .metrics import evaluate_pair


def safe_name(photo_id):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", photo_id)[-120:]


def mean_ab(data_dir):
    """Mean a*b* over all pixels of the training split: the `mean_ab` prior."""
    from ..color import rgb_to_lab
    from ..data.pipeline import iterate_photos

    sums, count = np.zeros(2), 0
    for _photo_id, rgb, _embedding in iterate_photos(data_dir, "train"):
        ab = rgb_to_lab(rgb)[..., 1:].reshape(-1, 2)
        sums += ab.sum(axis=0)
        count += len(ab)
    return sums / max(count, 1)


def evaluate(models, out_dir, split="test", baselines=True, save_images=True, progress=True):
    """models: {name: (checkpoint path, prepared data dir)}. Returns the per-photo DataFrame (also written).

    All data dirs must hold the same photos in `split` (they differ only in the cached backbone embedding).
    """
    from tqdm.auto import tqdm

    from ..backbones import top_classes
    from ..data.pipeline import iterate_photos

    colorizers = {name: (Colorizer(ckpt, cached_embeddings=True), data) for name, (ckpt, data) in models.items()}
    data_dirs = sorted({data for _, data in colorizers.values()})
    streams = {d: iterate_photos(d, split) for d in data_dirs}
    prior = mean_ab(data_dirs[0]) if baselines else None
    rows, classes = [], []
    for items in tqdm(zip(*streams.values()), desc=f"evaluate {split}", unit="photo", disable=not progress):
        by_dir = dict(zip(streams, items))
        ids = {item[0] for item in items}
        if len(ids) != 1:
            raise ValueError(f"prepared datasets {data_dirs} disagree on the {split} photos: {ids}")
        photo_id, truth, _ = items[0]
        height, width = (side // 8 * 8 for side in truth.shape[:2])
        truth = truth[:height, :width]
        l_full = lightness(truth)
        predictions = {}
        if baselines:
            predictions["gray"] = join(l_full, np.zeros(l_full.shape + (2,), np.float32))
            predictions["mean_ab"] = join(l_full, np.broadcast_to(prior.astype(np.float32), l_full.shape + (2,)))
        for name, (colorizer, data) in colorizers.items():
            embedding = by_dir[data][2]
            predictions[name] = join(l_full, colorizer.predict_ab(l_full, embedding))
        for data, item in by_dir.items():
            top = top_classes(item[2], 3)
            row = {"photo_id": photo_id, "data_dir": data}
            for k, (class_name, probability) in enumerate(top, start=1):
                row.update({f"class_{k}": class_name, f"prob_{k}": probability})
            classes.append(row)
        for name, prediction in predictions.items():
            rows.append({"model": name, "photo_id": photo_id, **evaluate_pair(prediction, truth)})
            if save_images:
                path = os.path.join(out_dir, "images", name, safe_name(photo_id) + ".png")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                save_image_atomic(prediction, path)
        if save_images:
            os.makedirs(os.path.join(out_dir, "images", "truth"), exist_ok=True)
            save_image_atomic(truth, os.path.join(out_dir, "images", "truth", safe_name(photo_id) + ".png"))
    if not rows:
        raise ValueError(f"the {split} split is empty")
    per_photo = pd.DataFrame(rows)
    os.makedirs(out_dir, exist_ok=True)
    write_csv_atomic(per_photo, os.path.join(out_dir, "per_photo.csv"))
    write_csv_atomic(pd.DataFrame(classes), os.path.join(out_dir, "classes.csv"))
    if prior is not None:
        write_json_atomic(os.path.join(out_dir, "prior.json"), {"mean_ab": prior.tolist()})
    return per_photo


def survey_candidates(per_photo, out_dir, model):
    """The table the survey builder reads: one row per test photo with the model's output and the original."""
    ours = per_photo[per_photo["model"] == model].copy()
    ours["colorized_path"] = [os.path.join(out_dir, "images", model, safe_name(p) + ".png") for p in ours["photo_id"]]
    ours["real_path"] = [os.path.join(out_dir, "images", "truth", safe_name(p) + ".png") for p in ours["photo_id"]]
    return ours


def register(subparsers):
    parser = subparsers.add_parser("evaluate", help="evaluate checkpoints and baselines on the test split",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=CHECKPOINT@DATA",
                        help="a model to evaluate: name, checkpoint or run folder, prepared data folder")
    parser.add_argument("--out", required=True)
    parser.add_argument("--split", default="test")
    parser.set_defaults(func=_main)


def _main(args):
    from .stats import summarize
    from ..report.tables import format_summary

    models = {}
    for item in args.model:
        name, rest = item.split("=", 1)
        checkpoint_path, data = rest.rsplit("@", 1)
        models[name] = (checkpoint_path, data)
    per_photo = evaluate(models, args.out, args.split)
    print(format_summary(summarize(per_photo)).to_string())
    return 0
