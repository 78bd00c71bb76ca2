"""How much do more photos help? Train the main model (fusion with EfficientNet-Lite0) at the demo's recipe and 400
steps on random subsets of the demo's training photos, and score each run on the same validation photos.

The demo's models fit their 133 training photos far better than unseen ones, and neither more steps nor a decaying
learning rate lowers their validation loss (scripts/schedule_search.py). If photos are what they lack, validation
error should fall as the training set grows; the slope says how many photos a given gain would take. The full
training set's runs are the schedule search's constant-rate runs (the demo's own settings), read from its table.

A subset is a copy of the prepared dataset whose training shards hold a random sample of the training photos (the
same sample for every seed); validation and test shards are the originals, linked.

    .venv/bin/python scripts/data_scaling.py --data work/demo/data/efficientnet_lite0-<fingerprint>
about 25 minutes on 2 cores (4 runs). Writes results/recipe_search/data_scaling.csv (one row per run) and
data_scaling_run.json; notebook 02 shows them. Runs already measured are kept when the script is started again.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import schedule_search  # noqa: E402  (same recipe, same scoring)

OUT = "results/recipe_search"
WORK = "work/data_scaling"
FRACTIONS = (0.25, 0.5)
SEEDS = (0, 1)


def subset_dataset(data_dir: str, out_dir: str, fraction: float, seed: int = 0) -> str:
    """A prepared dataset like data_dir whose training split is a random `fraction` of its training photos."""
    from koalarization.atomic import write_json_atomic
    from koalarization.data import records
    from koalarization.data.batches import shard_files
    from koalarization.data.prepare import load_manifest

    manifest = load_manifest(data_dir)
    train = [record for path in shard_files(data_dir, "train") for record in records.read_records(path)]
    keep = sorted(random.Random(seed).sample(range(len(train)), round(fraction * len(train))))
    os.makedirs(os.path.join(out_dir, "shards"), exist_ok=True)
    records.write_records(os.path.join(out_dir, "shards", "train-00000.tfrecord"), [train[k] for k in keep])
    for split, files in manifest["shards"].items():
        if split != "train":
            for name in files:
                link = os.path.join(out_dir, name)
                if not os.path.lexists(link):
                    os.symlink(os.path.abspath(os.path.join(data_dir, name)), link)
    for name in os.listdir(data_dir):
        if name not in ("shards", "manifest.json") and not os.path.exists(os.path.join(out_dir, name)):
            shutil.copy(os.path.join(data_dir, name), out_dir)
    write_json_atomic(os.path.join(out_dir, "manifest.json"), {
        **manifest, "shards": {**manifest["shards"], "train": ["shards/train-00000.tfrecord"]},
        "counts": {**manifest["counts"], "train": len(keep)},
        "fingerprint": f"{manifest['fingerprint']}-train{len(keep)}of{len(train)}"})
    return out_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the demo's prepared dataset (make study's stage 01)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    import keras
    import pandas as pd

    from koalarization.atomic import write_csv_atomic, write_json_atomic
    from koalarization.data.prepare import load_manifest

    measured = f"{WORK}/subset_runs.csv"  # the subset runs so far: a restarted script skips them
    rows = pd.read_csv(measured).to_dict("records") if os.path.exists(measured) else []
    for fraction in FRACTIONS:
        subset = subset_dataset(args.data, f"{WORK}/data-{fraction:g}", fraction)
        photos = load_manifest(subset)["counts"]["train"]
        for seed in SEEDS:
            if any(r["train_photos"] == photos and r["seed"] == seed for r in rows):
                continue
            row = schedule_search.run_job(subset, f"train{photos}", 1e-3, "constant", 0, schedule_search.DEMO_STEPS,
                                          seed, work=WORK)
            rows.append({"train_photos": photos, **row})
            write_csv_atomic(pd.DataFrame(rows), measured)
            print(json.dumps(rows[-1]), flush=True)
    full = pd.read_csv(f"{OUT}/schedules.csv")
    full = full[full["schedule"] == "constant-1e-3"].assign(train_photos=load_manifest(args.data)["counts"]["train"])
    everything = pd.concat([pd.DataFrame(rows), full], ignore_index=True).sort_values(["train_photos", "seed"])
    write_csv_atomic(everything[["train_photos"] + [c for c in everything if c != "train_photos"]],
                     f"{OUT}/data_scaling.csv")
    print(everything.groupby("train_photos")[["ciede2000", "psnr_gain_over_gray", "best_val_loss",
                                              "final_train_loss"]].agg(["mean", "std"]).round(4).to_string())
    write_json_atomic(f"{OUT}/data_scaling_run.json", {
        "date": time.strftime("%Y-%m-%d"), **schedule_search.machine(), "backend": keras.backend.backend(),
        "keras": keras.__version__, "python": platform.python_version(),
        "profile": "demo", "model": "fusion_lite0, constant learning rate 1e-3, 400 steps",
        "fractions": list(FRACTIONS), "seeds": list(SEEDS), "argv": sys.argv[1:]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
