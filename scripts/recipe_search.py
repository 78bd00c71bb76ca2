"""How the demo's training recipe was chosen: train the main model (fusion with EfficientNet-Lite0, seed 0) under
several recipes at the same compute budget, and compare them on the validation split.

A recipe is a training scale (the short side photos are resized to), a crop size, a batch size and a step count.
Every recipe gets the same number of pixels through the network (steps x batch x crop^2 = BUDGET_PIXELS), so each
costs about the same CPU time and the comparison is about how to spend it, not how much to spend. Each is judged
on the validation photos colorized as the study colorizes test photos (the network at the recipe's scale, a*b*
joined to the photo's own L at its stored 256 px): mean CIEDE2000 and PSNR, against the gray input, and the
spatial variation of color against the truth's. Validation loss is also logged every 1/6 of the run, which shows
what fewer steps would have given.

    .venv/bin/python scripts/recipe_search.py            # about 30 minutes on 2 cores
Writes results/recipe_search/recipes.csv, curves.csv and run.json (machine, date); notebook 02 shows them.
"""
from __future__ import annotations

import logging
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pandas as pd  # noqa: E402

from koalarization.atomic import write_csv_atomic, write_json_atomic  # noqa: E402
from koalarization.config import TrainingSettings, load_profile  # noqa: E402
from koalarization.data.prepare import prepare  # noqa: E402
from koalarization.evaluate.run import average_seeds, evaluate_checkpoints  # noqa: E402
from koalarization.machine import cpu_model  # noqa: E402
from koalarization.train import read_log, train  # noqa: E402

BUDGET_PIXELS = 4000 * 128 * 128  # what the demo's models get: 4,000 crops of 128 px, or the same pixels otherwise
RECIPES = [  # (train_scale, train_crop, batch)
    (64, 64, 16),
    (96, 96, 16),
    (128, 96, 16),
    (128, 128, 16),
    (96, 96, 32),
    (128, 128, 8),
]
OUT = "results/recipe_search"
WORK = "work/recipe_search"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    profile = load_profile("demo")
    rows, curves = [], []
    os.makedirs(OUT, exist_ok=True)
    if os.path.exists(f"{OUT}/recipes.csv"):  # resume: recipes already measured are kept, not retrained
        rows = pd.read_csv(f"{OUT}/recipes.csv").to_dict("records")
        curves = [pd.read_csv(f"{OUT}/curves.csv")]
    first_data = None
    for scale, crop, batch in RECIPES:
        steps = round(BUDGET_PIXELS / (batch * crop * crop))
        name = f"scale{scale}-crop{crop}-batch{batch}"
        if any(row["recipe"] == name for row in rows):
            first_data = first_data or f"{WORK}/data-{scale}-{crop}"
            continue
        data_settings = profile.data.model_copy(update={"train_scale": scale, "train_crop": crop,
                                                        "backbones": ["efficientnet_lite0"]})
        data_dir = f"{WORK}/data-{scale}-{crop}"
        started = time.time()
        prepare(data_settings, data_dir, "efficientnet_lite0", progress=False, index_from=first_data)
        first_data = first_data or data_dir
        settings = TrainingSettings(**{**profile.training.model_dump(), "batch_size": batch, "steps": steps,
                                       "checkpoint_every": max(1, steps // 6), "keep": "best"})  # as published
        prepared = time.time()
        checkpoint = train(data_dir, f"{WORK}/runs/{name}", settings, fusion="global", seed=0, verbose=2)
        trained = time.time()
        per_photo = average_seeds(evaluate_checkpoints("fusion_lite0", {0: checkpoint}, data_dir,
                                                       f"{WORK}/eval/{name}"))
        means = per_photo.groupby("model")[["ciede2000", "psnr", "ab_std_ratio", "colorfulness_gap"]].mean()
        log = read_log(f"{WORK}/runs/{name}")
        curves.append(log.assign(recipe=name))
        best = log.loc[log["val_loss"].idxmin()]
        rows.append({"recipe": name, "train_scale": scale, "train_crop": crop, "batch": batch, "steps": steps,
                     "images": steps * batch, "best_step": int(best["step"]), "best_val_loss": best["val_loss"],
                     "last_val_loss": log["val_loss"].iloc[-1],
                     "ciede2000": means.loc["fusion_lite0", "ciede2000"],
                     "ciede2000_gray": means.loc["gray", "ciede2000"],
                     "psnr_gain_over_gray": means.loc["fusion_lite0", "psnr"] - means.loc["gray", "psnr"],
                     "ab_std_ratio": means.loc["fusion_lite0", "ab_std_ratio"],
                     "colorfulness_gap": means.loc["fusion_lite0", "colorfulness_gap"],
                     "validation_photos": int(per_photo["photo_id"].nunique()),
                     "train_seconds": round(trained - prepared, 1), "prepare_seconds": round(prepared - started, 1)})
        write_csv_atomic(pd.DataFrame(rows), f"{OUT}/recipes.csv")
        write_csv_atomic(pd.concat(curves, ignore_index=True), f"{OUT}/curves.csv")
        print(pd.DataFrame(rows).to_string(), flush=True)
    cpu = cpu_model()
    write_json_atomic(f"{OUT}/run.json", {"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "cores": os.cpu_count(),
                                          "python": platform.python_version(), "budget_pixels": BUDGET_PIXELS,
                                          "profile": "demo", "model": "fusion_lite0, seed 0",
                                          "argv": sys.argv})
    return 0


if __name__ == "__main__":
    sys.exit(main())
