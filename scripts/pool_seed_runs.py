"""Do the procedure verdicts survive a rerun with other seeds, and what do both runs say together?

`koala study --shift-seeds 10` reruns a profile with every model's seeds moved by 10 (0, 1, 2 -> 10, 11, 12), on the
same photos; `koala study --compare-verdicts A B` lists which verdicts changed. This script reads the per-photo
scores of both runs (each run's work folder, `work/<profile>/eval/<split>/per_photo.csv`) and answers the
procedure questions of the profile (notebook 3's family: fusion against none, spatial against the paper's, spatial
against none, each other loss against the main model's) with the seeds of both runs pooled: the same seed-aware test
(`evaluate.procedures`), with twice the seeds. Pooling is fair because the seeds differ and the photos are the same;
the verdicts per run are written beside it, so a reader sees what one run of three seeds could and could not settle.

    python scripts/pool_seed_runs.py --profile demo --work work/demo /tmp/fresh/work/demo \\
        --results results/demo /tmp/fresh/results/demo

Writes results/seed_shift/seed_shift_<profile>.csv (one row per question and run: `first`, `second`, `pooled`)
and seed_shift_<profile>.md, and prints them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from koalarization.evaluate.family import procedure_pairs
from koalarization.evaluate.procedures import procedure_family
from koalarization.layout import Layout
from koalarization.report.tables import write_table
from koalarization.stages import EvaluationRecord, read_json_record

OUT = Path("results/seed_shift")  # not results/recipe_search: that folder is stage 2's input
COLUMNS = ["run", "model_a", "model_b", "metric", "seeds_a", "seeds_b", "n_photos", "mean_diff", "diff_ci_low",
           "diff_ci_high", "se_seed", "se_photo", "df", "p_value", "p_holm", "verdict"]


CAPTION = ("The procedure questions answered by each of two runs of the profile (`first`: its seeds, `second`: the "
           "seeds shifted by 10) and by both runs' seeds pooled, on every unseen photo; seed-aware t tests, "
           "Holm-adjusted within each run's family.")


def per_photo_networks(layout: Layout, splits: list[str]) -> pd.DataFrame:
    """Every trained network's per-seed scores on the unseen splits of one run (ensembles and baselines left out)."""
    frames = [pd.read_csv(layout.eval_files(split).per_photo) for split in splits]
    scores = pd.concat(frames, ignore_index=True)
    return scores[scores["seed"].notna() & (scores["seed"] >= 0) & ~scores["model"].str.endswith("_ensemble")]


def procedure_rows(scores: pd.DataFrame, record: EvaluationRecord, run: str) -> list[dict]:
    pairs = procedure_pairs(record.roles)
    return [{"run": run, **row.model_dump(include=set(COLUMNS))} for row in procedure_family(scores, pairs, "unseen")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--work", nargs=2, required=True, help="the two runs' work folders")
    parser.add_argument("--results", nargs=2, required=True, help="the two runs' results folders")
    args = parser.parse_args()
    layouts = [Layout.for_profile(args.profile, results, work) for work, results in zip(args.work, args.results)]
    records = [read_json_record(layout.results_dir / "03_evaluate.json", EvaluationRecord) for layout in layouts]
    splits = ["test", "heldout"]
    scores = [per_photo_networks(layout, splits) for layout in layouts]
    overlap = set(scores[0]["seed"]) & set(scores[1]["seed"])
    if overlap:
        raise SystemExit(f"the runs share seeds {sorted(overlap)}: pooling them would count a network twice")
    rows = procedure_rows(scores[0], records[0], "first") + procedure_rows(scores[1], records[1], "second")
    rows += procedure_rows(pd.concat(scores, ignore_index=True), records[0], "pooled")
    table = pd.DataFrame(rows)[COLUMNS].sort_values(["model_a", "model_b", "metric"], kind="stable")
    OUT.mkdir(parents=True, exist_ok=True)
    write_table(table, OUT / f"seed_shift_{args.profile}", caption=CAPTION)
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
