"""A recipe search's networks on the photos no search chose on: the test split and the held-out source.

A search (`scripts/fusion_designs.py`) chooses on the validation photos. Once a choice is made there, this script
scores the same networks, at their last step, on every unseen photo, as stage 3 scores the demo's networks (each
network, each design's seed ensemble, the gray input), and asks two kinds of question, as the study does:

- the procedures, seed-aware on every unseen photo (`report.tables.search_comparison`, `--pairs A:B`, Holm over
  the family);
- the networks at hand against the gray input on each split (seeds averaged per photo, Wilcoxon over photos, Holm
  over the family), with each design's seed ensemble.

It reads nothing a search has not already decided: the designs to compare are named on the command line. For the
a*b*-distance loss (notebook 02):

    .venv/bin/python scripts/search_on_unseen.py --data work/demo/data/efficientnet_lite0-<hash> \
        --name loss_distance --designs global global_distance spatial_dropout spatial_dropout_distance \
        --seeds 0 1 2 3 4 5 --ensemble-size 3 --pairs spatial_dropout_distance:spatial_dropout \
        global_distance:global spatial_dropout_distance:global_distance --grid 6

about 8 minutes on 2 cores (24 networks). Writes results/recipe_search/NAME_unseen_per_photo.csv (every network's
scores photo by photo, with the split), NAME_unseen_by_chroma.csv (the error by the true chroma, summed over photos),
NAME_unseen_run.json and, with `--grid N`, NAME_grid.png: N test photos (the ones notebook 04's comparison grid
shows: evenly spaced in the sorted ids) as gray input | each design's seed ensemble | truth, to be looked at.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
GROUP = "__ensemble"  # marks a design's second, third... ensemble while it is scored


def score_unseen(work: str, data_dir: str, designs: list[str], seeds: list[int], save_images: bool = False,
                 ensemble_size: int = 0) -> tuple:
    """-> (per-photo scores, error by chroma) of every design's last checkpoints on the test and held-out splits.
    `ensemble_size` K: each design's seeds, in order, make ensembles of K (the demo's 3), each scored as
    `<design>_ensemble` with its seeds in `ensemble_seeds`, so that averaging them per photo estimates what one such
    ensemble does; 0: one ensemble of every seed."""
    import pandas as pd

    from koalarization import checkpoint
    from koalarization.evaluate.run import evaluate
    from koalarization.layout import EVAL_SPLITS, EvalFiles
    from koalarization.stages import RunEntry, RunsIndex

    size = ensemble_size or len(seeds)
    models, ensembles = {}, {}
    for design in designs:
        for k, start in enumerate(range(0, len(seeds), size)):
            group = seeds[start:start + size]
            name = design if k == 0 else f"{design}{GROUP}{k}"  # one entry per ensemble; the networks run once
            chosen = {seed: checkpoint.resolve(f"{work}/runs/{design}-s{seed}", "latest") for seed in group}
            config = checkpoint.read_config(chosen[group[0]])
            models[name] = RunEntry(backbone=config["backbone"], fusion=checkpoint.fusion_of(config),
                                    loss=config.get("training", {}).get("loss", "mse"), label=design,
                                    data_dir=data_dir, checkpoints=chosen)
            ensembles[f"{name}_ensemble"] = " ".join(map(str, group)) if len(group) > 1 else ""
    runs = RunsIndex(models=models)
    scores, chroma = [], []
    for split in EVAL_SPLITS:
        files = EvalFiles(Path(f"{work}/unseen/{split}"))
        scored = evaluate(runs, files, split=split, save_images=save_images, workers=1)
        scores.append(scored.assign(split=split, ensemble_seeds=scored["model"].map(ensembles).fillna("")))
        bands = pd.read_csv(files.by_chroma)  # summed over the photos: all that the error-by-chroma table reads
        chroma.append(bands.groupby(["model", "seed", "band"], sort=False, dropna=False)[["pixels", "ciede2000_sum"]]
                      .sum().reset_index().assign(split=split))
    scores, chroma = pd.concat(scores, ignore_index=True), pd.concat(chroma, ignore_index=True)
    for table in (scores, chroma):  # the ensembles after the first, and their networks, under the design's name
        table["model"] = table["model"].str.replace(rf"{GROUP}\d+", "", regex=True)
    return scores, chroma


def title(design: str) -> str:
    """A search's design id in words: the network and its loss."""
    network = {"global": "paper's", "spatial": "spatial", "spatial_dropout": "spatial", "hypercolumn": "hypercolumn"}
    base = design.removesuffix("_distance").removesuffix("_ema")
    loss = "a*b* distance" if design.endswith("_distance") else "MSE"
    return f"{network.get(base, base)}, {loss}"


def grid_figure(work: str, scores, designs: list[str], n: int):
    """The test photos notebook 04's grid shows, as gray | each design's ensemble | truth."""
    import numpy as np

    from koalarization.images import read_photo
    from koalarization.layout import EvalFiles
    from koalarization.report import figures

    files = EvalFiles(Path(f"{work}/unseen/test"))
    photos = sorted(scores.loc[scores["split"] == "test", "photo_id"].unique())
    shown = [photos[i] for i in np.linspace(0, len(photos) - 1, min(n, len(photos))).round().astype(int)]
    columns = ["gray", *(f"{design}_ensemble" for design in designs), "truth"]
    rows = [{"photo_id": p.split(":", 1)[-1].split("/")[-1].rsplit(".", 1)[0][:22],
             **{c: read_photo(files.image(c, p)) for c in columns}} for p in shown]
    first = {design: scores.loc[scores["model"] == f"{design}_ensemble", "ensemble_seeds"].iloc[0]
             for design in designs}  # the first ensemble's images are the ones kept under the design's name
    titles = ["gray input", *(f"{title(design)}\n(ensemble of seeds {first[design].replace(' ', ', ')})"
                              for design in designs), "ground truth"]
    return figures.comparison_grid(rows, columns, titles=titles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the prepared dataset the search trained on")
    parser.add_argument("--name", required=True, help="the search's name: its work folder work/NAME")
    parser.add_argument("--designs", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--pairs", nargs="+", default=[], help="procedure questions A:B, read as A - B")
    parser.add_argument("--grid", type=int, default=0, help="draw this many test photos, one row each (0: none)")
    parser.add_argument("--ensemble-size", type=int, default=0,
                        help="seed ensembles of this many seeds, in order (0: one ensemble of every seed); the "
                             "grid shows the first")
    args = parser.parse_args()

    import keras
    import pandas as pd

    from koalarization.atomic import write_csv_atomic, write_json_atomic
    from koalarization.evaluate.family import UNSEEN
    from koalarization.evaluate.run import error_by_chroma
    from koalarization.layout import Layout
    from koalarization.machine import hardware
    from koalarization.report import tables

    searches = Layout.for_profile("demo").searches
    started = time.time()
    scores, chroma = score_unseen(f"work/{args.name}", args.data, args.designs, args.seeds, args.grid > 0,
                                  args.ensemble_size)
    write_csv_atomic(scores, searches.table(f"{args.name}_unseen_per_photo"))
    write_csv_atomic(chroma, searches.table(f"{args.name}_unseen_by_chroma"))
    info = hardware()
    write_json_atomic(searches.run(f"{args.name}_unseen"), {
        "date": time.strftime("%Y-%m-%d"), "cpu": info.get("cpu_model", "?"), "cores": info.get("cpu_count"),
        "backend": keras.backend.backend(), "keras": keras.__version__, "data": args.data, "designs": args.designs,
        "seeds": args.seeds, "ensemble_size": args.ensemble_size or len(args.seeds),
        "seconds": round(time.time() - started, 1), "argv": sys.argv[1:]})
    if args.grid:
        from koalarization.atomic import write_bytes_atomic
        from koalarization.report.figures import figure_bytes

        figure = grid_figure(f"work/{args.name}", scores, args.designs, args.grid)
        write_bytes_atomic(searches.figure(f"{args.name}_grid"), figure_bytes(figure))
    pairs = [tuple(pair.split(":")) for pair in args.pairs]
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 60):
        if pairs:
            metrics = ("ciede2000", "psnr", "colorfulness_gap")
            print(tables.search_comparison(scores, pairs, metrics, split=UNSEEN).round(3).to_string())
        print(tables.unseen_against_gray(scores, args.designs).round(3).to_string())
        print(error_by_chroma(chroma[chroma["split"] == "test"]).round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
