"""Where should the classifier's feature maps enter the network? Train the paper's network (global logits only) and
two spatial designs on the demo's prepared data, at the demo's recipe (128 px photos, 128 px crops, batch 16, its
step count), several seeds each, and compare them on the validation split:

- `spatial`: the classifier's stride-8, -16 and -32 maps of the gray crop, resized to H/8 and appended beside the
  tiled logits before the 1x1 fusion convolution;
- `hypercolumn`: the same, and the stride-8 maps appended again in the decoder at H/4 and H/2;
- `spatial_dropout`: spatial, with a quarter of the maps' channels dropped per image while training
  (`--map-dropout 0.25`), asked separately (`--designs spatial spatial_dropout --name map_dropout`).

Each run is judged as the study judges test photos, on the validation split: mean CIEDE2000 and PSNR against the
gray input, and the a*b* variation against the truth's; the training and validation losses logged every 50 steps
show how soon each design stops improving. One process trains the runs one after another (the default suits a
2-core CPU; `--workers N` trains N at once):

    .venv/bin/python scripts/fusion_designs.py --data work/demo/data/efficientnet_lite0-<hash>

about 35 minutes on 2 cores (6 runs). Writes results/recipe_search/fusion_designs.csv (one row per run),
fusion_design_curves.csv (the loss logs), fusion_designs_per_photo.csv (every run's validation scores photo by photo,
for seed-aware comparisons) and fusion_designs_run.json (machine, backend, date); notebook 02 shows them.
With `--name NAME` the runs go to work/NAME and the tables are NAME.csv, NAME_curves.csv, NAME_per_photo.csv and
NAME_run.json, for another question asked the same way (the backbone comes from the prepared data, so another
classifier's prepared data asks the same question of that classifier):

    .venv/bin/python scripts/fusion_designs.py --data work/demo/data/efficientnet_lite0-<hash> \
        --designs spatial spatial_dropout --seeds 0 1 2 --name map_dropout

or, whether a stronger classifier helps (its data prepared with `koala prepare --backbone efficientnet_lite2
--feature-maps` and the demo's other settings; the same command on Lite0's data as `--name backbone_lite0`):

    .venv/bin/python scripts/fusion_designs.py --data work/demo/data/efficientnet_lite2-<hash> \
        --designs global spatial_dropout --seeds 0 1 2 --name backbone_lite2

or, whether a moving average of the weights helps the spatial network, scored at the last step as the demo keeps
its networks (the `_ema` twin of a design trains with `training.weight_average`):

    .venv/bin/python scripts/fusion_designs.py --data work/demo/data/efficientnet_lite0-<hash> \
        --designs spatial_dropout spatial_dropout_ema --seeds 0 1 2 --keep last --weight-average 0.95 \
        --name weight_average

or, whether twice the steps help (the 250-step runs of that search copied into work/longer_training/runs first: at
the constant rate a run extends exactly):

    .venv/bin/python scripts/fusion_designs.py --data work/demo/data/efficientnet_lite0-<hash> \
        --designs spatial_dropout --seeds 0 1 2 --keep last --steps 500 --name longer_training

Runs already measured are kept when the script is started again, and a run folder holding a finished run of the
same settings (the study's own, copied in) is reused without training.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# design -> (fusion level, map dropout); a design's "_ema" twin also averages its weights (`--weight-average`), its
# "_distance" twin trains with the a*b*-distance loss instead of MSE (`losses.ABDistance`)
DESIGNS = {"global": ("global", 0.0), "spatial": ("spatial", 0.0), "hypercolumn": ("hypercolumn", 0.0),
           "spatial_dropout": ("spatial", 0.25)}
DESIGNS.update({f"{name}_{twin}": design for name, design in DESIGNS.items() for twin in ("ema", "distance")})


def design_loss(design: str) -> str:
    return "distance" if design.endswith("_distance") else "mse"


def jobs(designs: list[str], seeds: list[int]) -> list[tuple[str, int]]:
    return [(design, seed) for seed in seeds for design in designs]


def run_job(work: str, data_dir: str, design: str, seed: int, keep: str = "best", weight_average: float = 0.0,
            steps: int | None = None) -> dict:
    """Train one run (a finished identical run is reused) and score its `keep` checkpoint (best or last) on the
    validation photos."""
    from koalarization import checkpoint as checkpoints
    from koalarization.config import load_profile
    from koalarization.data.prepare import load_manifest
    from koalarization.evaluate.run import evaluate
    from koalarization.layout import EvalFiles
    from koalarization.stages import RunEntry, RunsIndex
    from koalarization.train import backend, read_log, train

    profile = load_profile("demo")
    steps = steps or profile.training.steps
    run_dir = f"{work}/runs/{design}-s{seed}"
    latest = checkpoints.latest_or_none(run_dir)
    reused = bool(latest) and checkpoints.read_config(latest)["step"] >= steps
    started = time.time()
    fusion, map_dropout = DESIGNS[design]
    # the first designs were compared at each run's best checkpoint (the published tables); the demo keeps the last
    average = weight_average if design.endswith("_ema") else 0.0
    settings = profile.training.model_copy(update={"keep": keep, "weight_average": average, "steps": steps})
    chosen = train(data_dir, run_dir, settings, fusion=fusion, loss=design_loss(design), seed=seed, verbose=0,
                   map_dropout=map_dropout)
    trained = time.time()
    backbone = load_manifest(data_dir)["params"]["backbone"]
    runs = RunsIndex(models={design: RunEntry(backbone=backbone, fusion=fusion, loss=design_loss(design), label=design,
                                              data_dir=data_dir, checkpoints={seed: chosen})})
    per_photo = evaluate(runs, EvalFiles(Path(f"{work}/eval/{design}-s{seed}")), split="validation",
                         save_images=False, progress=False)
    means = per_photo.groupby("model")[["ciede2000", "psnr", "ab_std_ratio", "colorfulness_gap"]].mean()
    log = read_log(run_dir)
    best = log.loc[log["val_loss"].idxmin()]
    ours, gray = means.loc[design], means.loc["gray"]
    return {"design": design, "backbone": backbone, "map_dropout": map_dropout, "weight_average": average,
            "loss": design_loss(design),
            "seed": seed, "steps": steps, "scored": keep, "best_step": int(best["step"]),
            "best_val_loss": float(best["val_loss"]), "last_val_loss": float(log["val_loss"].iloc[-1]),
            "final_train_loss": float(log["loss"].iloc[-1]), "ciede2000": ours["ciede2000"],
            "ciede2000_gray": gray["ciede2000"], "psnr_gain_over_gray": ours["psnr"] - gray["psnr"],
            "ab_std_ratio": ours["ab_std_ratio"], "colorfulness_gap": ours["colorfulness_gap"],
            "validation_photos": int(per_photo["photo_id"].nunique()), "backend": backend(), "reused_run": reused,
            "train_seconds": None if reused else round(trained - started, 1)}


def worker(work: str, data_dir: str, designs: list[str], seeds: list[int], index: int, count: int, keep: str,
           weight_average: float, steps: int | None) -> int:
    from koalarization.atomic import write_json_atomic

    for k, (design, seed) in enumerate(jobs(designs, seeds)):
        path = f"{work}/results/{design}-s{seed}.json"
        if k % count != index or os.path.exists(path):
            continue
        row = run_job(work, data_dir, design, seed, keep, weight_average, steps)
        write_json_atomic(path, row)
        print(json.dumps(row), flush=True)
    return 0


def per_photo_scores(work: str, rows: list[dict]) -> pd.DataFrame:
    """Every run's validation scores photo by photo, with the gray input's once: what a seed-aware comparison of two
    designs needs (`evaluate.procedures`), beside the per-run means of the main table."""
    import pandas as pd

    from koalarization.layout import EvalFiles

    columns = ["model", "design", "backbone", "seed", "photo_id", "ciede2000", "psnr", "ab_std_ratio",
               "colorfulness_gap"]
    frames = []
    for row in rows:
        scores = pd.read_csv(EvalFiles(Path(f"{work}/eval/{row['design']}-s{row['seed']}")).per_photo)
        if not frames:  # the gray input: no design, and the same on every run's photos
            frames.append(scores[scores["model"] == "gray"])
        frames.append(scores[scores["model"] == row["design"]].assign(design=row["design"], backbone=row["backbone"]))
    return pd.concat(frames, ignore_index=True).reindex(columns=columns)


def write_results(work: str, data_dir: str, name: str, designs: list[str], seeds: list[int], workers: int) -> None:
    import keras
    import pandas as pd

    from koalarization import checkpoint as checkpoints
    from koalarization.atomic import write_csv_atomic, write_json_atomic
    from koalarization.layout import Layout
    from koalarization.machine import hardware
    from koalarization.train import read_log

    searches = Layout.for_profile("demo").searches
    rows = [json.load(open(f"{work}/results/{design}-s{seed}.json")) for design, seed in jobs(designs, seeds)]
    table = pd.DataFrame(rows)
    table["design"] = pd.Categorical(table["design"], designs, ordered=True)
    table = table.sort_values(["design", "seed"])
    curves_name = "fusion_design_curves" if name == "fusion_designs" else f"{name}_curves"
    write_csv_atomic(table, searches.table(name))
    curves = [read_log(f"{work}/runs/{row['design']}-s{row['seed']}").assign(design=row["design"], seed=row["seed"])
              for row in rows]
    write_csv_atomic(pd.concat(curves, ignore_index=True), searches.table(curves_name))
    write_csv_atomic(per_photo_scores(work, rows), searches.table(f"{name}_per_photo"))
    info = hardware()
    # the precision each run trained in (bf16 where the CPU has it): runs of two machines may differ in it
    run_dirs = [f"{work}/runs/{row['design']}-s{row['seed']}" for row in rows]
    precisions = sorted({checkpoints.read_config(checkpoints.latest_or_none(run_dir)).get("precision", "?")
                         for run_dir in run_dirs})
    write_json_atomic(searches.run(name), {
        "date": time.strftime("%Y-%m-%d"), "cpu": info.get("cpu_model", "?"), "cores": info.get("cpu_count"),
        "cpu_bf16": info.get("cpu_bf16"), "precision": ", ".join(precisions),
        "gpus": info.get("gpus"), "backend": keras.backend.backend(), "keras": keras.__version__,
        "python": platform.python_version(), "workers": workers, "profile": "demo", "data": data_dir,
        "steps": int(table["steps"].iloc[0]), "seeds": len(seeds), "designs": designs, "argv": sys.argv[1:]})
    print(table.groupby("design", observed=True)[["ciede2000", "ciede2000_gray", "psnr_gain_over_gray",
                                                  "ab_std_ratio", "best_step"]].agg(["mean", "std"]).round(3))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the demo's prepared dataset, with feature maps (stage 01)")
    parser.add_argument("--designs", nargs="+", choices=list(DESIGNS), default=["global", "spatial", "hypercolumn"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--name", default="fusion_designs", help="the question's name: its work folder and tables")
    parser.add_argument("--keep", choices=["best", "last"], default="best",
                        help="the checkpoint scored: lowest validation loss (first searches) or the last (the demo)")
    parser.add_argument("--weight-average", type=float, default=0.95,
                        help="the _ema designs' moving-average momentum (training.weight_average)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the demo's); a run of the "
                        "same settings with fewer steps, copied into the work folder, is extended (constant rate)")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once, each in its own process")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    work = f"work/{args.name}"
    os.makedirs(f"{work}/results", exist_ok=True)
    if args.worker is not None:
        return worker(work, args.data, args.designs, args.seeds, args.worker, args.workers, args.keep,
                      args.weight_average, args.steps)
    common = ["--data", args.data, "--designs", *args.designs, "--seeds", *map(str, args.seeds), "--name", args.name,
              "--keep", args.keep, "--weight-average", str(args.weight_average),
              *(["--steps", str(args.steps)] if args.steps else [])]
    procs = [subprocess.Popen([sys.executable, __file__, *common, "--workers", str(args.workers), "--worker", str(k)])
             for k in range(args.workers)]
    failed = sum(proc.wait() != 0 for proc in procs)
    write_results(work, args.data, args.name, args.designs, args.seeds, args.workers)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
