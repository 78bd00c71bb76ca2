"""How likely is each procedure verdict to come out the same in a rerun with other seeds, and with how many seeds?

The reruns of a profile with other seeds (`koala study --shift-seeds 10`, scripts/pool_seed_runs.py) say which
verdicts held this time; this script estimates the chance behind that (`evaluate.stability`). It simulates the
study's test on thousands of runs whose networks are drawn from the seed-to-seed spread of every network the reruns
trained (scripts/checkpoint_choice.py's per-seed means, at the checkpoint the profile evaluates), for:

- the profile's own design (its seeds per procedure);
- the same number of seeds for every procedure, 2 to 8;
- every other way to spread the profile's number of networks over its procedures (at least two seeds each).

    python scripts/verdict_stability.py --profile demo

Reads results/seed_shift/seed_shift_<profile>.csv and checkpoint_choice_<profile>_spread.csv; writes
results/seed_shift/verdict_stability_<profile>.csv (.md), which stage 3 reads. Takes about half a minute.
"""
from __future__ import annotations

import argparse

import pandas as pd

from koalarization.config import load_profile
from koalarization.evaluate.replication import read_record
from koalarization.evaluate.stability import EVERY_QUESTION, designs, stability_table
from koalarization.layout import Layout
from koalarization.report.tables import write_table

EQUAL_SEEDS = range(2, 9)
CAPTION = ("Simulated chance that a procedure verdict comes out the same in a rerun with other seeds (`p_same`), "
           "that it is the same in three runs (`p_all_runs`), of each verdict in one run, and that a rerun confirms "
           "a verdict once a run has reached it (`confirm_*`), for several numbers of seeds per procedure "
           "(`design`, in the order of the `seeds_*` columns). Per-seed means drawn from the spread of every "
           "network the profile's reruns trained; the study's seed-aware test and Holm family "
           "(scripts/verdict_stability.py, evaluate/stability.py).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--pairs", type=int, default=4000, help="simulated sets of runs per design")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    layout = Layout.for_profile(args.profile, "results", "work")
    record = read_record(layout.seed_shift_table)
    spread_path = layout.checkpoint_choice_table.with_name(layout.checkpoint_choice_table.stem + "_spread.csv")
    if record is None or not spread_path.is_file():
        raise SystemExit(f"needs {layout.seed_shift_table} and {spread_path} (scripts/pool_seed_runs.py and "
                         "scripts/checkpoint_choice.py over the profile's reruns)")
    spread = pd.read_csv(spread_path)
    per_seed = spread[spread["choice"] == profile.training.keep]
    asked = set(record["model_a"]) | set(record["model_b"])
    models = [spec.name for spec in profile.models if spec.name in asked]
    own = {spec.name: len(spec.seeds) for spec in profile.models if spec.name in asked}
    others = [{m: k for m in models} for k in EQUAL_SEEDS] + designs(models, sum(own.values()))
    table = stability_table(per_seed, record, own, others, n_pairs=args.pairs)
    target = layout.verdict_stability_table
    write_table(table, target.with_suffix(""), caption=CAPTION)
    every = table[table["model_a"] == EVERY_QUESTION].sort_values("p_same", ascending=False)
    print(f"designs: seeds of {', '.join(models)}; chance that every verdict is the same in a rerun")
    print(every[["design", "networks", "p_same", "p_all_runs", "profile_design"]].round(3).to_string(index=False))
    print(table[table["profile_design"]].round(3).to_string(index=False))


if __name__ == "__main__":
    main()
