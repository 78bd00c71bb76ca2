"""How far does averaging seeds go? Train the main model (fusion with EfficientNet-Lite0) at the demo's recipe and
400 steps with N seeds, then score every seed alone and the ensembles of its first K seeds (K = 2..N: their a*b*
averaged photo by photo, as `koala colorize --checkpoint A B` does) on the validation, test and held-out photos.

The demo's seeds of the main model disagree by about 1 CIEDE2000 on the test split, and averaging two or three of
them beats every one of them (notebook 3). An ensemble's error is the seeds' shared error plus their disagreement
divided by K; this script measures how fast that falls with K, so a reader knows what more seeds would buy. Every
photo is scored as the study scores it (the network at its training scale, the a*b* joined to the photo's L at
its stored size; notebook 3); metrics run in `--processes` worker processes.

    KERAS_BACKEND=jax python scripts/seed_ensemble.py --data work/demo/data/efficientnet_lite0-<fingerprint> \\
        --seeds 8 --workers 4
`--workers` trains that many runs at once (a GPU machine; on a 2-core CPU keep one: about 5.5 minutes a run). A
finished run folder in work/seed_ensemble/runs is reused. Writes results/recipe_search/seed_ensemble.csv (one row
per split, photo and model: `seed` k alone or `ensemble` of the first k seeds; `gray` with k = 0) and
seed_ensemble_run.json (machine, backend, date).
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

OUT = "results/recipe_search"
WORK = "work/seed_ensemble"
SPLITS = ("validation", "test", "heldout")


def train_seed(data_dir: str, seed: int, work: str = WORK, steps: int = 0) -> str:
    """One run of the main model at the demo's settings (`steps`: other than the demo's, for a quick check);
    returns its best checkpoint."""
    from koalarization.config import TrainingSettings, load_profile
    from koalarization.train import train

    demo = load_profile("demo").training.model_dump()
    settings = TrainingSettings(**{**demo, "steps": steps or demo["steps"],
                                   "checkpoint_every": min(demo["checkpoint_every"], steps or demo["steps"]),
                                   "keep": "best"})  # as published
    return train(data_dir, f"{work}/runs/s{seed}", settings, fusion="global", seed=seed, verbose=0)


def score_photo(split: str, photo_id: str, truth, l_full, predictions: dict) -> list[dict]:
    """Metrics of every prediction of one photo (runs in a worker process)."""
    from koalarization.colorize import join
    from koalarization.evaluate.metrics import evaluate_pair

    return [{"split": split, "photo_id": photo_id, "model": kind, "k": k,
             **evaluate_pair(join(l_full, ab), truth)} for (kind, k), ab in predictions.items()]


def score(data_dir: str, checkpoints: list[str], processes: int):
    """Every seed alone and the ensembles of the first k seeds, on every split, photo by photo."""
    import numpy as np
    import pandas as pd

    from koalarization.colorize import Colorizer, Seen, average_ab, lightness
    from koalarization.data.batches import iterate_photos
    from koalarization.data.prepare import load_manifest

    colorizers = [Colorizer(path, cached_embeddings=True) for path in checkpoints]
    counts = load_manifest(data_dir)["counts"]
    jobs = []
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        for split in (s for s in SPLITS if counts.get(s)):
            for photo in iterate_photos(data_dir, split):
                photo_id, seen = photo.photo_id, Seen(photo.embedding, photo.maps)
                height, width = (side // 8 * 8 for side in photo.rgb.shape[:2])
                truth = np.ascontiguousarray(photo.rgb[:height, :width])
                l_full = lightness(truth)
                l_small = colorizers[0].lightness_planes(truth)[1]
                seeds = [colorizer.predict_ab(l_small, seen) for colorizer in colorizers]
                predictions = {("gray", 0): np.zeros_like(seeds[0])}
                predictions.update({("seed", k + 1): ab for k, ab in enumerate(seeds)})
                predictions.update({("ensemble", k): average_ab(seeds[:k]) for k in range(2, len(seeds) + 1)})
                jobs.append(pool.submit(score_photo, split, photo_id, truth, l_full, predictions))
        return pd.DataFrame([row for job in jobs for row in job.result()])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the demo's prepared dataset (make study's stage 01)")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once, each in its own process")
    parser.add_argument("--processes", type=int, default=os.cpu_count(), help="processes scoring photos")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=WORK, help="where the runs go")
    parser.add_argument("--out", default=OUT, help="where the tables go")
    parser.add_argument("--steps", type=int, default=0, help="steps per run, for a quick check (default: the demo's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.worker is not None:
        for seed in range(args.worker, args.seeds, args.workers):
            started = time.time()
            train_seed(args.data, seed, args.work, args.steps)
            print(f"seed {seed}: {time.time() - started:.0f} s", flush=True)
        return 0
    started = time.time()
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    procs = [subprocess.Popen([sys.executable, __file__, "--data", args.data, "--seeds", str(args.seeds),
                               "--workers", str(args.workers), "--worker", str(k), "--work", args.work,
                               "--steps", str(args.steps)], env=env)
             for k in range(args.workers)]
    if any(proc.wait() != 0 for proc in procs):
        return 1
    trained = time.time()
    # every run is finished now: these calls only load each best checkpoint
    checkpoints = [train_seed(args.data, seed, args.work, args.steps) for seed in range(args.seeds)]
    per_photo = score(args.data, checkpoints, args.processes)

    import keras

    from koalarization.atomic import write_csv_atomic, write_json_atomic
    from koalarization.machine import hardware

    os.makedirs(args.out, exist_ok=True)
    write_csv_atomic(per_photo, f"{args.out}/seed_ensemble.csv")
    info = hardware()
    if keras.backend.backend() == "jax":  # the device's own name (the manifest's reader gives only cuda:0)
        import jax

        info["gpus"] = [getattr(device, "device_kind", device.platform) for device in jax.devices()]
    write_json_atomic(f"{args.out}/seed_ensemble_run.json", {
        "date": time.strftime("%Y-%m-%d"), "cpu": info.get("cpu_model", "?"), "cores": info.get("cpu_count"),
        "gpus": info.get("gpus"), "backend": keras.backend.backend(), "keras": keras.__version__,
        "python": platform.python_version(), "seeds": args.seeds, "workers": args.workers, "profile": "demo",
        "model": "fusion_lite0", "recipe": "the demo's: train_scale 128, train_crop 128, batch 16, 400 steps",
        "steps": args.steps or None, "train_seconds": round(trained - started),
        "score_seconds": round(time.time() - trained), "argv": sys.argv[1:]})
    from koalarization.report.tables import ensemble_size

    print(ensemble_size(per_photo).round(3).to_string(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
