"""Does the CPU a study trains on change its networks beyond what another seed would?

The demo trains in bfloat16 where the CPU has native bf16 and in float32 elsewhere, so the same commit and seeds give
other networks on another CPU. Two things could follow: a precision effect (float32 networks better or worse on
average, which would move procedure verdicts between machines beyond the seed-to-seed spread the stability
simulation is fitted to), or nothing more than a fresh draw of each network. This script tells them apart with one run
on the other CPU (its work folder) and the seed-shift runs' networks (results/seed_shift/checkpoint_choice_<profile>
_spread.csv, at the checkpoint the profile evaluates; and any later run on that CPU whose per-photo scores were kept,
`--more-reference results/seed_shift/shift30_scores`):

- per model and metric, the mean over seeds on each CPU, their difference with its 95% interval and a Welch t test
  (seeds as the unit), Holm-adjusted over every model and metric: with three seeds on one side, the interval says
  how large a precision effect the run can rule out;
- for the seeds both CPUs trained, how far apart the same seed's two networks are (root mean square of the
  differences) against what two independent seeds give (the square root of twice the seed variance): about 1 means the
  same seed on another CPU is in effect another seed; and the correlation of the same seed's deviations from its
  model's mean on the two CPUs, over every model.

    python scripts/precision_check.py --profile demo --work work/demo --results results/demo \\
        --label "float32, AVX2 AMD EPYC" --more-reference results/seed_shift/shift30_scores

Writes results/seed_shift/precision_check_<profile>.csv and precision_check_<profile>_same_seed.csv (with .md
copies) and prints them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from koalarization.config import load_profile
from koalarization.evaluate.stability import per_seed_means
from koalarization.evaluate.stats import holm
from koalarization.layout import Layout
from koalarization.report.tables import write_table

SPLITS = ("test", "heldout")
METRICS = ("ciede2000", "psnr")
CAPTION = ("Each procedure's networks on two CPUs: the seed-shift runs' (`reference`, every seed they trained, and "
           "those of later runs on that CPU whose per-photo scores were kept) and "
           "one run of the same commit on another CPU (`other`), mean over every unseen photo per network, then over "
           "seeds. Welch t test and 95% interval of the difference (other - reference) with seeds as the unit, "
           "Holm-adjusted over the table. `same_seed_rms`: root mean square of the differences between the two "
           "CPUs' networks of the same seed; `independent_rms`: what two independent seeds give, sqrt(2) x the "
           "reference's seed SD (scripts/precision_check.py).")

PAIRED_CAPTION = ("The same seed trained on the two CPUs: the correlation of its network's deviation from its "
                  "model's mean on one CPU with that on the other, over every model (near 0: the same seed on another "
                  "CPU is in effect another seed; scripts/precision_check.py).")


def compare(reference: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Per model and metric: both CPUs' means and seed SDs, the difference with its Welch p, and the same seeds'
    distance against independent seeds'."""
    rows = []
    for model in dict.fromkeys(reference["model"]):
        ref, oth = reference[reference["model"] == model], other[other["model"] == model]
        if len(oth) < 2:
            continue
        for metric in METRICS:
            same = oth.set_index("seed")[metric] - ref.groupby("seed")[metric].mean()
            same = same.dropna()
            test = stats.ttest_ind(oth[metric], ref[metric], equal_var=False)
            interval = test.confidence_interval(0.95)
            rows.append({"model": model, "metric": metric, "reference_seeds": len(ref), "other_seeds": len(oth),
                         "reference_mean": ref[metric].mean(), "other_mean": oth[metric].mean(),
                         "difference": oth[metric].mean() - ref[metric].mean(), "diff_ci_low": interval.low,
                         "diff_ci_high": interval.high, "p_value": float(test.pvalue),
                         "reference_sd": ref[metric].std(ddof=1), "other_sd": oth[metric].std(ddof=1),
                         "same_seeds": len(same),
                         "same_seed_rms": float(np.sqrt((same ** 2).mean())) if len(same) else np.nan,
                         "independent_rms": float(np.sqrt(2) * ref[metric].std(ddof=1))})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p_value"].to_numpy())
    return table


def with_later_runs(reference: pd.DataFrame, later_runs: list[dict[str, pd.DataFrame]]) -> pd.DataFrame:
    """The reference networks (model, seed, metrics) and those of later runs on the same CPU ({split: per-photo
    scores} each), for the reference's models; a seed counted twice is refused (its network would weigh double)."""
    for scores in later_runs:
        later = per_seed_means(scores)
        later = later[later["model"].isin(set(reference["model"]))]
        shared = set(later["seed"]) & set(reference["seed"])
        if shared:
            raise ValueError(f"a later run has seeds {sorted(shared)} that the reference already counts")
        reference = pd.concat([reference, later[reference.columns]], ignore_index=True)
    return reference


def same_seed_correlation(reference: pd.DataFrame, other: pd.DataFrame, metric: str) -> tuple[float, float, int]:
    """(r, p, pairs): the same seed's deviation from its model's mean on one CPU against the other's, every model."""
    centred = [frame.assign(dev=frame[metric] - frame.groupby("model")[metric].transform("mean"))
               for frame in (reference.groupby(["model", "seed"])[metric].mean().reset_index(), other)]
    pairs = centred[0].merge(centred[1], on=["model", "seed"], suffixes=("_ref", "_other"))
    r, p = stats.pearsonr(pairs["dev_ref"], pairs["dev_other"])
    return float(r), float(p), len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--work", default="work/demo", help="the work folder of the run on the other CPU")
    parser.add_argument("--results", default="results/demo",
                        help="its results folder (its scores/ are read where the work folder has none)")
    parser.add_argument("--label", required=True, help="what the other run is, e.g. 'float32, AVX2 AMD EPYC'")
    parser.add_argument("--more-reference", nargs="*", default=[], metavar="FOLDER",
                        help="kept per-photo scores (per_photo_<split>.csv) of later runs on the reference CPU, "
                             "whose networks join the reference")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    layout = Layout.for_profile(args.profile, args.results, args.work)
    spread_path = layout.checkpoint_choice_table.with_name(layout.checkpoint_choice_table.stem + "_spread.csv")
    spread = pd.read_csv(spread_path)
    reference = spread[spread["choice"] == profile.training.keep][["model", "seed", *METRICS]]
    try:
        reference = with_later_runs(reference, [{split: pd.read_csv(Path(folder) / f"per_photo_{split}.csv")
                                                 for split in SPLITS} for folder in args.more_reference])
    except ValueError as error:
        raise SystemExit(str(error)) from None
    other = per_seed_means({split: pd.read_csv(layout.run_scores(split)) for split in SPLITS})
    other = other[other["model"].isin(set(reference["model"]))]
    table = compare(reference, other).assign(other_run=args.label)
    target = layout.seed_shift_table.with_name(f"precision_check_{args.profile}")
    write_table(table, target, caption=CAPTION)
    print(table.round(3).to_string(index=False))
    paired = pd.DataFrame([dict(zip(("metric", "r", "p_value", "networks"), (metric, *same_seed_correlation(
        reference, other, metric)))) for metric in METRICS]).assign(other_run=args.label)
    write_table(paired, target.with_name(target.name + "_same_seed"), caption=PAIRED_CAPTION)
    print(paired.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
