"""Do the procedure verdicts survive reruns with other seeds, and what do all runs say together?

`koala study --shift-seeds 10` reruns a profile with every model's seeds moved by 10 (0, 1, 2 -> 10, 11, 12), on the
same photos; `koala study --compare-verdicts A B` lists which verdicts changed. This script reads the per-photo
scores of two or more such runs (each run's work folder, `work/<profile>/eval/<split>/per_photo.csv`, or where that is
gone the copy stage 3 keeps in its results, `results/<profile>/scores/per_photo_<split>.csv`) and answers the
procedure questions of the profile (notebook 3's family: fusion against none, spatial against the paper's, spatial
against none, each other loss against the main model's) with the seeds of all runs pooled: the same seed-aware test
(`evaluate.procedures`), with every run's seeds. Pooling is fair because the seeds differ and the photos are the same;
the verdicts per run are written beside it, so a reader sees what one run of three seeds could and could not settle.

    python scripts/pool_seed_runs.py --profile demo --work work/demo /tmp/shift12/work/demo /tmp/shift22/work/demo \\
        --results results/demo /tmp/shift12/results/demo /tmp/shift22/results/demo

Writes results/seed_shift/seed_shift_<profile>.csv (one row per question and run: `first`, `second`, ..., `pooled`)
and seed_shift_<profile>.md, and prints them. Stage 3 of the profile reads the CSV and sets each of its own
procedure verdicts beside the rerun's and the pooled one (`evaluate.replication`, on the report page).
"""
from __future__ import annotations

import argparse
import json

import pandas as pd

from koalarization.evaluate.replication import seed_shift_record
from koalarization.layout import Layout
from koalarization.report.tables import write_table
from koalarization.stages import Roles

SPLITS = ("test", "heldout")
CAPTION = ("The procedure questions answered by each run of the profile (`first`: its seeds; `second`, `third`: "
           "the seeds shifted by 10 and by 20) and by all runs' seeds pooled, on every unseen photo; seed-aware t "
           "tests, Holm-adjusted within each run's family and within the pooled one.")


def per_photo(layout: Layout) -> dict[str, pd.DataFrame]:
    """One run's per-photo scores on the unseen splits: its work folder's, or the copy in its results (scores/)."""
    return {split: pd.read_csv(layout.run_scores(split)) for split in SPLITS}


def run_roles(layout: Layout) -> Roles:
    """The first run's roles (which network is the main model, the spatial one, ...), from its stage-3 record: only
    that key is read, so a record written before a change of the record's other fields still serves."""
    with open(layout.record("03_evaluate")) as handle:
        return Roles.model_validate(json.load(handle)["roles"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--work", nargs="+", required=True, help="the runs' work folders (two or more)")
    parser.add_argument("--results", nargs="+", required=True, help="the runs' results folders, in the same order")
    args = parser.parse_args()
    if len(args.work) != len(args.results) or len(args.work) < 2:
        parser.error("give two or more runs, each with its --work and its --results folder, in the same order")
    layouts = [Layout.for_profile(args.profile, results, work) for work, results in zip(args.work, args.results)]
    roles = run_roles(layouts[0])
    scores = [per_photo(layout) for layout in layouts]
    try:
        table = seed_shift_record(scores, roles)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    target = layouts[0].seed_shift_table  # stage 3 reads it (not results/recipe_search: stage 2's input)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_table(table, target.with_suffix(""), caption=CAPTION)
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
