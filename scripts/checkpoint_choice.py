"""Which checkpoint should a comparison of training procedures evaluate: each network's best, or its last?

A network's "best" checkpoint is the one with the lowest validation loss among those saved (every 50 steps in the
demo). With a few dozen validation photos that choice can pick between checkpoints whose losses differ by less than
the photos can tell apart, and for a loss other than the plain squared error (the rebalanced one) it judges the
network by an objective it does not minimise. Both add seed-to-seed spread to a procedure verdict. This script
measures it on two or more runs of a profile with different seeds (`koala study --shift-seeds 10`, as for
scripts/pool_seed_runs.py): it scores every network of every run at its best and at its last checkpoint on the
unseen splits, answers the procedure questions with each choice in each run and pooled
(`evaluate.replication.seed_shift_record`), and says which verdicts all runs agree on.

    python scripts/checkpoint_choice.py --profile demo --work work/demo /tmp/shift12/work/demo /tmp/shift22/work/demo

The scores are cached under <first work folder>/checkpoint_choice/ (the networks run once per checkpoint). Writes
results/seed_shift/checkpoint_choice_<profile>.csv (one row per checkpoint choice, question and run) and
checkpoint_choice_<profile>_spread.csv (each model's per-seed means), with .md copies; stage 3 shows them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from koalarization import checkpoint
from koalarization.config import load_profile
from koalarization.evaluate.replication import RUN_NAMES, agreement, seed_shift_record
from koalarization.evaluate.run import evaluate, scoring_workers
from koalarization.evaluate.stability import per_seed_means
from koalarization.layout import EvalFiles, Layout
from koalarization.report.tables import write_table
from koalarization.stages import RunsIndex, read_json_record, roles_of

SPLITS = ("test", "heldout")
CHOICES = ("best", "last")
CAPTION = ("The procedure questions of each run of the profile (`first`: its seeds; `second`, `third`: the seeds "
           "shifted by 10 and by 20) and of all runs pooled, with each network evaluated at its best checkpoint "
           "(lowest validation loss) and at its last; seed-aware t tests, Holm-adjusted within each run's family "
           "and within the pooled one.")
SPREAD_CAPTION = ("Each model's mean CIEDE2000 and PSNR over every unseen photo, per seed, at its best and at its "
                  "last checkpoint, in each run; sd: the seed-to-seed standard deviation.")


def read_runs(work: str) -> RunsIndex:
    """A run's index with its paths made absolute (they are relative to the project: <project>/work/<profile>)."""
    project = Path(work).resolve().parents[1]
    runs = read_json_record(Path(work) / "runs.json", RunsIndex)
    return RunsIndex(models={name: entry.model_copy(update={
        "data_dir": str(project / entry.data_dir),
        "checkpoints": {seed: str(project / path) for seed, path in entry.checkpoints.items()}})
        for name, entry in runs.models.items()})


def at_checkpoint(runs: RunsIndex, choice: str) -> RunsIndex:
    """The same networks with each seed's best or last checkpoint."""
    def pick(path: str) -> str:
        return checkpoint.resolve(Path(path).parent, which="best" if choice == "best" else "latest")
    return RunsIndex(models={name: entry.model_copy(update={"checkpoints": {seed: pick(path) for seed, path in
                                                                           entry.checkpoints.items()}})
                             for name, entry in runs.models.items()})


def scores(runs: RunsIndex, folder: Path) -> dict[str, pd.DataFrame]:
    """{split: per-photo scores} of the networks, from the cache or scored now (no baselines, no images)."""
    out = {}
    for split in SPLITS:
        files = EvalFiles(folder / split)
        if not files.per_photo.exists():
            evaluate(runs, files, split=split, baselines=False, save_images=False, workers=scoring_workers())
        out[split] = pd.read_csv(files.per_photo)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--work", nargs="+", required=True, help="the runs' work folders (two or more)")
    args = parser.parse_args()
    roles = roles_of(load_profile(args.profile))
    runs = [read_runs(work) for work in args.work]
    cache = Path(args.work[0]) / "checkpoint_choice"
    records, spreads = [], []
    for choice in CHOICES:
        each = [scores(at_checkpoint(run, choice), cache / name / choice) for run, name in zip(runs, RUN_NAMES)]
        records.append(seed_shift_record(each, roles).assign(choice=choice))
        spreads += [per_seed_means(one).assign(choice=choice, run=name) for one, name in zip(each, RUN_NAMES)]
    record = pd.concat(records, ignore_index=True)
    seeds = pd.concat(spreads, ignore_index=True)
    seeds = seeds.merge(seeds.groupby(["choice", "run", "model"])[["ciede2000", "psnr"]].std().add_suffix("_sd")
                        .reset_index(), on=["choice", "run", "model"])
    layout = Layout.for_profile(args.profile, "results", args.work[0])
    target = layout.checkpoint_choice_table
    target.parent.mkdir(parents=True, exist_ok=True)
    write_table(record, target.with_suffix(""), caption=CAPTION)
    write_table(seeds, target.with_name(target.stem + "_spread"), caption=SPREAD_CAPTION)
    summary = agreement(record)
    print(summary.round(3).to_string(index=False))
    for choice, rows in summary.groupby("choice", sort=False):
        print(f"{choice}: {int(rows['held'].sum())} of {len(rows)} procedure verdicts the same in all {len(runs)} runs")


if __name__ == "__main__":
    main()
