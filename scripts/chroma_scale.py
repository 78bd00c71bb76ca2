"""Would fainter colours score better? Each trained network's a*b* multiplied by a factor, scored with CIEDE2000.

On the held-out source every network of the demo scores worse than the gray input on CIEDE2000, and so does a
constant colour (the `mean_ab` prior), although the spatial ensemble's a*b* error (MSE, PSNR) is lower than gray's.
CIEDE2000 weighs a chroma error near the neutral axis heavily, so any colour put on a near-neutral photo costs. This
script asks how much of the gap is the amount of colour rather than its placement: it scales each network's (and
seed ensemble's) predicted a*b* by s (0 = the gray input, 1 = the network as trained), joins it to the photo's own L
as the evaluation does, and scores it on the validation, test and held-out splits. A factor chosen on validation is
a legitimate calibration; the question is whether it is a better colorization or only a more timid one.

    python scripts/chroma_scale.py --profile demo

Writes results/chroma_scale/chroma_scale_<profile>.csv/.md (mean CIEDE2000 by split, model, seed and factor) and
chroma_scale_<profile>_chosen.csv/.md (each network's validation-best factor and what it gives on the unseen splits).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from koalarization.colorize import join
from koalarization.evaluate.metrics import Truth, ciede2000_mean
from koalarization.evaluate.run import network_colorizers, predict_all, split_photos
from koalarization.layout import Layout
from koalarization.report.tables import write_table

SCALES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5)
SPLITS = ("validation", "test", "heldout")
FAMILIES = ("fusion_lite0", "no_fusion", "spatial_lite0")
OUT = Path("results/chroma_scale")  # not results/recipe_search: that folder is stage 2's input


def scores(layout: Layout, models: tuple[str, ...]) -> pd.DataFrame:
    """Per photo, model, seed and factor: mean CIEDE2000 of the photo colorized with a*b* times the factor."""
    runs = layout.read_runs()
    runs.models = {name: entry for name, entry in runs.models.items() if name in models}
    colorizers = network_colorizers(runs)
    rows = []
    for split in SPLITS:
        for photo in split_photos(runs, split):
            truth = Truth(photo.truth)
            for (model, seed), ab in predict_all(photo, runs, colorizers, None, True).items():
                for scale in SCALES:
                    error = ciede2000_mean(join(photo.l_full, ab * scale), truth)
                    rows.append((split, model, seed, photo.photo_id, scale, error))
    return pd.DataFrame(rows, columns=["split", "model", "seed", "photo_id", "scale", "ciede2000"])


def chosen(means: pd.DataFrame) -> pd.DataFrame:
    """Each network's factor with the lowest validation CIEDE2000, and the unseen splits' scores at 1 and at it."""
    rows = []
    for (model, seed), group in means.groupby(["model", "seed"], dropna=False):
        table = group.pivot(index="scale", columns="split", values="ciede2000")
        best = float(table["validation"].idxmin())
        rows.append({"model": model, "seed": seed, "validation_best_scale": best,
                     **{f"{split}_at_1": table.loc[1.0, split] for split in SPLITS[1:]},
                     **{f"{split}_at_best": table.loc[best, split] for split in SPLITS[1:]},
                     **{f"{split}_gray": table.loc[0.0, split] for split in SPLITS[1:]}})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="demo")
    args = parser.parse_args()
    per_photo = scores(Layout.for_profile(args.profile), FAMILIES)
    per_photo["seed"] = per_photo["seed"].astype("Int64")
    means = per_photo.groupby(["split", "model", "seed", "scale"], dropna=False).ciede2000.mean().reset_index()
    OUT.mkdir(parents=True, exist_ok=True)
    wide = means.pivot_table(index=["split", "model", "seed"], columns="scale", values="ciede2000", dropna=False)
    wide = wide.dropna(how="all")
    wide.columns = [f"x{scale:g}" for scale in wide.columns]
    write_table(wide, OUT / f"chroma_scale_{args.profile}",
                caption="Mean CIEDE2000 over each split's photos with every network's predicted a*b* multiplied by "
                        "a factor (x0 = the gray input, x1 = the network as trained); seed empty: the seeds' "
                        "ensemble.")
    picked = chosen(means)
    write_table(picked, OUT / f"chroma_scale_{args.profile}_chosen",
                caption="Each network's factor with the lowest validation CIEDE2000, and the test and held-out "
                        "CIEDE2000 at the trained colours (at_1), at that factor (at_best) and of the gray input.")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(wide.round(2).to_string())
        print(picked.round(2).to_string())
    print(f"mean validation-best factor: {np.mean(picked['validation_best_scale']):.2f}")


if __name__ == "__main__":
    main()
