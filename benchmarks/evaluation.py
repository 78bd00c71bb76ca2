"""Evaluation, today's code against the code before the metrics rework (7513c24), side by side on one machine.

Both score the same checkpoints on the same photos: the demo's networks (fusion, no fusion, spatial fusion, the
rebalanced loss: 11 networks in all, 4 ensembles, 2 baselines) as untrained checkpoints at the demo's settings (the
cost of scoring does not depend on the weights' values), on the demo's prepared test split where this machine has
it (work/demo), else on the 9 bundled photos prepared at the demo's sizes. The code before is 7513c24's evaluation
loop (one photo at a time: every network called eagerly, every metric converting both images again) with its
metrics module as it was (tests/old_metrics_7513c24.py, verbatim); the only adaptations are to today's data
interfaces (photos as records, the classifier's outputs as `Seen`). Both must give the same numbers, to the last
digit: this checks it too.

    .venv/bin/python benchmarks/evaluation.py [--photos N] [--workers 0 1] [--out results/bench/evaluation.json]
"""
import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DEMO_MODELS = {"fusion_lite0": ("global", 3), "no_fusion": ("none", 3), "spatial_lite0": ("spatial", 3),
               "rebalanced_lite0": ("global", 2)}


def demo_data(work: str) -> str:
    """The demo's prepared dataset where this machine has one, else the bundled photos prepared alike."""
    from koalarization.config import load_profile
    from koalarization.data.prepare import is_prepared, prepare
    from koalarization.layout import Layout

    demo = load_profile("demo")
    found = Layout.for_profile("demo").data_dir("efficientnet_lite0", demo.data)
    if is_prepared(found):
        return str(found)
    out = os.path.join(work, "data")
    prepare(demo.data.model_copy(update={"sources": ["samples"], "heldout": [], "split_fractions": (0.0, 0.0, 1.0),
                                         "min_side": 64}), out, "efficientnet_lite0", progress=False)
    return out


def untrained_runs(work: str, data_dir: str):
    """The demo's models as untrained checkpoints at the demo's scale and precision (bfloat16 where the CPU has it,
    as `koala train` saves them), one per seed: a RunsIndex."""
    from koalarization.config import load_profile
    from koalarization.train import set_precision

    set_precision(load_profile("demo").training.mixed_precision)
    try:
        return _untrained_runs(work, data_dir)
    finally:
        set_precision("float32")


def _untrained_runs(work: str, data_dir: str):
    import keras

    from koalarization import checkpoint
    from koalarization.data.prepare import load_manifest
    from koalarization.model import build_colorizer
    from koalarization.stages import RunEntry, RunsIndex

    manifest = load_manifest(data_dir)
    shapes = manifest["feature_shapes"]
    models = {}
    for name, (fusion, seeds) in DEMO_MODELS.items():
        paths = {}
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            model = build_colorizer(1000, fusion=fusion, feature_channels={k: s[-1] for k, s in shapes.items()})
            config = checkpoint.model_config("efficientnet_lite0", 1000, fusion, manifest["params"]["train_scale"],
                                             stored_short_side=manifest["params"]["short_side"],
                                             feature_shapes=shapes if fusion == "spatial" else None)
            paths[seed] = checkpoint.save_checkpoint(model, os.path.join(work, f"{name}-s{seed}"), 0, config)
        models[name] = RunEntry(backbone="efficientnet_lite0", fusion=fusion, loss="mse", label=name,
                                data_dir=data_dir, checkpoints=paths)
    return RunsIndex(models=models)


def old_evaluate(runs, split: str, out_dir: str, limit: int | None) -> pd.DataFrame:
    """7513c24's evaluation loop: per photo, every network called eagerly on it, each prediction joined and scored by
    the metrics module of then (which converts both images to L*a*b* again for every metric)."""
    import old_metrics_7513c24 as old

    from koalarization.backbones import top_classes
    from koalarization.colorize import Colorizer, join, lightness
    from koalarization.data.batches import iterate_photos
    from koalarization.evaluate.run import mean_ab
    from koalarization.images import save_image_atomic

    colorizers = {(name, seed): Colorizer(path, cached_embeddings=True)
                  for name, entry in runs.models.items() for seed, path in entry.checkpoints.items()}
    first_seed = {name: min(entry.checkpoints) for name, entry in runs.models.items()}
    data_dir = next(iter(runs.models.values())).data_dir
    prior = mean_ab(data_dir)
    rows, bands, classes = [], [], []
    for count, photo in enumerate(iterate_photos(data_dir, split)):
        if limit is not None and count == limit:
            break
        height, width = (side // 8 * 8 for side in photo.rgb.shape[:2])
        truth = np.ascontiguousarray(photo.rgb[:height, :width])
        l_full = lightness(truth)
        predictions = {("gray", None): join(l_full, np.zeros(l_full.shape + (2,), np.float32)),
                       ("mean_ab", None): join(l_full, np.broadcast_to(prior.astype(np.float32), l_full.shape + (2,)))}
        small, predicted = {}, {}
        for (name, seed), colorizer in colorizers.items():
            if colorizer.short_side not in small:
                small[colorizer.short_side] = colorizer.lightness_planes(truth)[1]
            predicted[(name, seed)] = _eager_ab(colorizer, small[colorizer.short_side], photo)
            predictions[(name, seed)] = join(l_full, predicted[(name, seed)])
        for name, entry in runs.models.items():
            if len(entry.checkpoints) > 1:
                members = [ab for (model, _seed), ab in predicted.items() if model == name]
                predictions[(f"{name}_ensemble", None)] = join(l_full, np.mean(members, axis=0))
        classes.append({"photo_id": photo.photo_id, **{f"class_{k}": c for k, (c, _) in
                                                        enumerate(top_classes(photo.embedding, 3), start=1)}})
        for (name, seed), prediction in predictions.items():
            rows.append({"model": name, "seed": seed, "photo_id": photo.photo_id,
                         **old.evaluate_pair(prediction, truth)})
            bands += [{"model": name, "seed": seed, "photo_id": photo.photo_id, **band}
                      for band in old.ciede2000_by_chroma(prediction, truth)]
            if seed is None or seed == first_seed.get(name):
                save_image_atomic(prediction, os.path.join(out_dir, "images", name, f"{count}.png"))
        save_image_atomic(truth, os.path.join(out_dir, "images", "truth", f"{count}.png"))
    return pd.DataFrame(rows)


def _eager_ab(colorizer, l_small, photo):
    """The network called eagerly on one photo, as 7513c24's Colorizer.predict_ab did."""
    from koalarization.backbones import unpack_maps
    from koalarization.color import scale_l, unscale_ab

    inputs = {"l": scale_l(l_small)[None, ..., None].astype(np.float32),
              "embedding": np.asarray(photo.embedding, np.float32)[None]}
    if colorizer.fusion == "spatial":
        maps = unpack_maps(np.asarray(photo.maps, np.float32), colorizer.config["feature_shapes"])
        inputs.update({k: v[None] for k, v in maps.items()})
    feed = inputs if colorizer.fusion != "none" else inputs["l"]
    return unscale_ab(np.asarray(colorizer.model(feed, training=False))[0])


def new_evaluate(runs, split: str, out_dir: str, limit: int | None, workers: int) -> pd.DataFrame:
    """Today's evaluate (the photos limited by a copy of the dataset's split where asked)."""
    from pathlib import Path

    from koalarization.evaluate.run import evaluate
    from koalarization.layout import EvalFiles

    return evaluate(runs, EvalFiles(Path(out_dir)), split=split, progress=False, workers=workers)


def limited(runs, split: str, limit: int | None, work: str):
    """The runs with their dataset cut to the first `limit` photos of the split (a copy of its shards)."""
    if limit is None:
        return runs
    from koalarization.data import records
    from koalarization.data.batches import shard_files
    from koalarization.data.prepare import load_manifest

    data_dir = next(iter(runs.models.values())).data_dir
    out = os.path.join(work, "limited")
    os.makedirs(os.path.join(out, "shards"), exist_ok=True)
    kept = [record for path in shard_files(data_dir, split) for record in records.read_records(path)][:limit]
    records.write_records(os.path.join(out, "shards", f"{split}.tfrecord"), kept)
    train = [record for path in shard_files(data_dir, "train") for record in records.read_records(path)][:64]
    records.write_records(os.path.join(out, "shards", "train.tfrecord"), train)
    manifest = load_manifest(data_dir)
    manifest["shards"] = {split: [f"shards/{split}.tfrecord"], "train": ["shards/train.tfrecord"]}
    manifest["counts"] = {split: len(kept), "train": len(train)}
    with open(os.path.join(out, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)
    return runs.model_copy(update={"models": {name: entry.model_copy(update={"data_dir": out})
                                              for name, entry in runs.models.items()}})


def same_numbers(old: pd.DataFrame, new: pd.DataFrame) -> bool:
    """Every metric of every model, seed and photo equal to the last digit (NaN equal to NaN)."""
    key = ["model", "seed", "photo_id"]
    old = old.assign(seed=old["seed"].astype("Int64")).sort_values(key).reset_index(drop=True)
    new = new.assign(seed=new["seed"].astype("Int64")).sort_values(key).reset_index(drop=True)
    if not old[key].equals(new[key]):
        return False
    metrics = [c for c in old.columns if c not in key]
    return bool(all(np.array_equal(old[m].to_numpy(float), new[m].to_numpy(float), equal_nan=True) for m in metrics))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=None, help="score only the first N photos of the split")
    parser.add_argument("--workers", type=int, nargs="+", default=[0], help="today's evaluate with these workers")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default=None, help="write the figures as JSON here too")
    args = parser.parse_args()
    os.chdir(ROOT)
    figures = compare(args.photos, args.workers, args.split)
    print(json.dumps(figures, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(figures, handle, indent=2)


def compare(photos: int | None, workers: list[int], split: str = "test") -> dict:
    """Time both on the same checkpoints and photos (the code before first, then today's with each `workers`)."""
    from koalarization.machine import cpu_model

    work = tempfile.mkdtemp(prefix="koala-eval-bench-")
    data_dir = demo_data(work)
    runs = limited(untrained_runs(work, data_dir), split, photos, work)
    figures = {"cpu": cpu_model(), "cores": os.cpu_count(), "photos": photos, "data": data_dir}
    start = time.perf_counter()
    old = old_evaluate(runs, split, os.path.join(work, "old"), None)
    figures["before_s"] = time.perf_counter() - start
    for count in workers:
        start = time.perf_counter()
        new = new_evaluate(runs, split, os.path.join(work, f"new{count}"), None, count)
        figures[f"today_s_workers_{count}"] = time.perf_counter() - start
        figures[f"same_numbers_workers_{count}"] = same_numbers(old, new)
    figures["rows"] = len(old)
    best = min(figures[f"today_s_workers_{count}"] for count in workers)
    figures["speedup"] = figures["before_s"] / best
    return figures


if __name__ == "__main__":
    main()
