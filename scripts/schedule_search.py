"""How the demo's learning-rate schedule was chosen: train the main model (fusion with EfficientNet-Lite0) on the
demo's prepared data at the demo's recipe (128 px photos, 128 px crops, batch 16) with a constant learning rate (the
paper's) and with a cosine decay, three seeds each, and compare them on the validation split.

The recipe search (scripts/recipe_search.py) fixed the scale, crop and batch at a constant learning rate. The demo's
models then differed by 1.07 CIEDE2000 between two seeds on the test split, as much as any difference between
models: Adam at a constant 1e-3 ends wherever the last noisy steps left it. A schedule that decays the rate is the
field's usual answer; this search measures whether it helps here, at the demo's budget of 400 steps. The
training and validation losses logged every 50 steps also show how soon the runs stop improving.

Each run is judged as the study judges test photos (scripts/recipe_search.py says how), on the validation split:
mean CIEDE2000 and PSNR against the gray input, and the a*b* variation against the truth's; means over seeds and
the seed-to-seed spread. `--workers N` trains N runs at once in separate processes (on a machine with the cores
for it; the default, one, suits a 2-core CPU):

    .venv/bin/python scripts/schedule_search.py --data work/demo/data/efficientnet_lite0-<fingerprint>
about 30 minutes on 2 cores (6 runs); a run folder left by an identical earlier run (the demo's own, say) is reused.
Writes results/recipe_search/schedules.csv (one row per run), schedule_curves.csv (the loss logs) and
schedules_run.json (machine, backend, date);
notebook 02 shows them. Runs already measured are kept when the script is started again.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

OUT = "results/recipe_search"
WORK = "work/schedule_search"
SEEDS = (0, 1, 2)
DEMO_STEPS = 400
# (name, learning rate, schedule, warm-up steps, steps)
SCHEDULES = [
    ("constant-1e-3", 1e-3, "constant", 0, DEMO_STEPS),  # the paper's optimizer, the demo's models
    ("cosine-1e-3", 1e-3, "cosine", 0, DEMO_STEPS),
]


def jobs() -> list[tuple]:
    return [(*schedule, seed) for schedule in SCHEDULES for seed in SEEDS]


def run_job(data_dir: str, name: str, lr: float, schedule: str, warmup: int, steps: int, seed: int,
            work: str = WORK) -> dict:
    """Train one run into work/runs (a finished identical run there is reused) and score its best checkpoint on the
    validation photos."""
    from koalarization import checkpoint as checkpoints
    from koalarization.config import TrainingSettings, load_profile
    from koalarization.evaluate.run import evaluate_checkpoints
    from koalarization.train import backend, read_log, train

    profile = load_profile("demo")
    settings = TrainingSettings(**{**profile.training.model_dump(), "steps": steps, "learning_rate": lr,
                                   "lr_schedule": schedule, "warmup_steps": warmup,
                                   "checkpoint_every": DEMO_STEPS // 8, "keep": "best"})  # as published
    run_dir = f"{work}/runs/{name}-s{seed}"
    latest = checkpoints.latest_or_none(run_dir)
    reused = bool(latest) and checkpoints.read_config(latest)["step"] >= steps
    started = time.time()
    checkpoint = train(data_dir, run_dir, settings, fusion="global", seed=seed, verbose=0)
    trained = time.time()
    per_photo = evaluate_checkpoints("fusion_lite0", {seed: checkpoint}, data_dir, f"{work}/eval/{name}-s{seed}")
    means = per_photo.groupby("model")[["ciede2000", "psnr", "ab_std_ratio", "colorfulness_gap"]].mean()
    log = read_log(run_dir)
    best = log.loc[log["val_loss"].idxmin()]
    main = means.loc["fusion_lite0"]
    return {"schedule": name, "learning_rate": lr, "lr_schedule": schedule, "warmup_steps": warmup, "steps": steps,
            "seed": seed, "best_step": int(best["step"]), "best_val_loss": float(best["val_loss"]),
            "last_val_loss": float(log["val_loss"].iloc[-1]), "final_train_loss": float(log["loss"].iloc[-1]),
            "ciede2000": main["ciede2000"], "ciede2000_gray": means.loc["gray", "ciede2000"],
            "psnr_gain_over_gray": main["psnr"] - means.loc["gray", "psnr"], "ab_std_ratio": main["ab_std_ratio"],
            "colorfulness_gap": main["colorfulness_gap"], "validation_photos": int(per_photo["photo_id"].nunique()),
            "backend": backend(), "reused_run": reused,
            "train_seconds": None if reused else round(trained - started, 1)}


def worker(data_dir: str, index: int, count: int) -> int:
    from koalarization.atomic import write_json_atomic

    for k, job in enumerate(jobs()):
        path = f"{WORK}/results/{job[0]}-s{job[-1]}.json"
        if k % count != index or os.path.exists(path):
            continue
        row = run_job(data_dir, *job)
        write_json_atomic(path, row)
        print(json.dumps(row), flush=True)
    return 0


def machine() -> dict:
    """Where the runs ran, as the study's manifest records it."""
    from koalarization.machine import hardware

    info = hardware()
    return {"cpu": info.get("cpu_model", "?"), "cores": info.get("cpu_count"), "gpus": info.get("gpus")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the demo's prepared dataset (make study's stage 01)")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once, each in its own process")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    os.makedirs(f"{WORK}/results", exist_ok=True)
    if args.worker is not None:
        return worker(args.data, args.worker, args.workers)
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    procs = [subprocess.Popen([sys.executable, __file__, "--data", args.data, "--workers", str(args.workers),
                               "--worker", str(k)], env=env) for k in range(args.workers)]
    failed = sum(proc.wait() != 0 for proc in procs)

    import keras
    import pandas as pd

    from koalarization.atomic import write_csv_atomic, write_json_atomic

    rows = [json.load(open(path)) for path in sorted(glob.glob(f"{WORK}/results/*.json"))]
    if rows:
        table = pd.DataFrame(rows).sort_values(["steps", "schedule", "seed"])
        os.makedirs(OUT, exist_ok=True)
        write_csv_atomic(table, f"{OUT}/schedules.csv")
        from koalarization.train import read_log

        curves = [read_log(f"{WORK}/runs/{row['schedule']}-s{row['seed']}").assign(schedule=row["schedule"],
                                                                                  seed=row["seed"])
                  for row in rows]
        write_csv_atomic(pd.concat(curves, ignore_index=True), f"{OUT}/schedule_curves.csv")
        summary = table.groupby("schedule", sort=False)[["ciede2000", "psnr_gain_over_gray", "ab_std_ratio",
                                                        "best_step"]].agg(["mean", "std"])
        print(summary.round(3).to_string(), flush=True)
    from koalarization.data.batches import evaluation_arrays
    from koalarization.train import gray_baseline_loss

    gray = gray_baseline_loss(evaluation_arrays(args.data, "validation", 128, 128, fusion="none")[1])
    write_json_atomic(f"{OUT}/schedules_run.json", {"gray_val_loss": gray,
        "date": time.strftime("%Y-%m-%d"), **machine(), "backend": keras.backend.backend(),
        "keras": keras.__version__, "python": platform.python_version(), "workers": args.workers, "profile": "demo",
        "model": "fusion_lite0",
        "recipe": "train_scale 128, train_crop 128, batch 16", "seeds": list(SEEDS), "argv": sys.argv[1:]})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
