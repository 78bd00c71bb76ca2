"""Do this run's procedure verdicts survive reruns with other seeds?

A procedure verdict from three seeds is itself one draw: rerun the study with other seeds and an effect near the
edge of what three seeds can detect may cross the Holm threshold either way. `koala study --shift-seeds 10` reruns a
profile with every seed moved, and `scripts/pool_seed_runs.py` answers each procedure question in every run and
with all runs' seeds pooled (results/seed_shift/seed_shift_<profile>.csv). This module sets that record beside this
run's own verdicts, so the report can say which verdicts held in every rerun, which did not, and what the pooled
seeds say.

The record is matched to this run by the seeds: its run with this run's seeds is checked against this run's numbers
(`recorded_from_this_run`: the same mean differences). Every other run of the record is a rerun. That includes a run
with this run's seeds whose numbers differ: the same seeds trained on another machine (another CPU trains in another
precision) or at another commit are other networks, so that run is a rerun too (`Rerun.same_seeds`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..stages import ProcedureComparison, Rerun, Roles, VerdictReplication
from .family import procedure_family
from .procedures import verdict_class
from .stability import confirm_chance

RUN_NAMES = ("first", "second", "third", "fourth", "fifth", "sixth")  # the record's runs, in the order given
POOLED = "pooled"
COLUMNS = ["run", "model_a", "model_b", "metric", "seeds_a", "seeds_b", "n_photos", "mean_diff", "diff_ci_low",
           "diff_ci_high", "se_seed", "se_photo", "df", "p_value", "p_holm", "verdict"]


def network_seeds(per_photo: dict[str, pd.DataFrame], roles: Roles) -> set[int]:
    """The seeds of a run's trained networks (by role, not by name)."""
    networks = {role.id for role in roles.networks()}
    return {int(seed) for frame in per_photo.values()
            for seed in frame.loc[frame["model"].isin(networks), "seed"].dropna()}


def seed_shift_record(runs: list[dict[str, pd.DataFrame]], roles: Roles) -> pd.DataFrame:
    """Two or more runs of one profile with different seeds ({split: per-photo scores} each, the same photos) ->
    every procedure question answered by each run (`first`, `second`, ...) and by all runs' seeds pooled: the same
    seed-aware test (`evaluate.procedures`) with the seeds of every run, Holm-adjusted within each run's family and
    the pooled one. Pooling is fair because the seeds differ and the photos are the same; runs sharing a seed are
    refused (a network would count twice)."""
    if not 2 <= len(runs) <= len(RUN_NAMES):
        raise ValueError(f"a seed-shift record needs 2 to {len(RUN_NAMES)} runs, got {len(runs)}")
    seen: set[int] = set()
    for scores in runs:
        seeds = network_seeds(scores, roles)
        if seeds & seen:
            raise ValueError(f"the runs share seeds {sorted(seeds & seen)}: pooling them would count a network twice")
        seen |= seeds
    splits = [split for split in runs[0] if all(split in scores for scores in runs)]
    pooled = {split: pd.concat([scores[split] for scores in runs], ignore_index=True) for split in splits}
    answered = list(zip(RUN_NAMES, runs)) + [(POOLED, pooled)]
    rows = [{"run": run, **row.model_dump(include=set(COLUMNS))}
            for run, scores in answered for row in procedure_family(scores, roles)]
    return pd.DataFrame(rows)[COLUMNS].sort_values(["model_a", "model_b", "metric"], kind="stable")


def read_record(path: str | Path) -> pd.DataFrame | None:
    """The record pool_seed_runs.py wrote (None where there is none), its seed lists parsed."""
    path = Path(path)
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    missing = set(COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}: is it scripts/pool_seed_runs.py's table?")
    for column in ("seeds_a", "seeds_b"):
        table[column] = [tuple(int(s) for s in (json.loads(v) if isinstance(v, str) else v)) for v in table[column]]
    return table


def _seeds(row: pd.Series) -> list[int]:
    return sorted(set(row["seeds_a"]) | set(row["seeds_b"]))


def _same_numbers(row: pd.Series, here: ProcedureComparison) -> bool:
    return bool(np.isclose(row["mean_diff"], here.mean_diff, rtol=1e-9, atol=1e-9)
                and np.isclose(row["p_holm"], here.p_holm, rtol=1e-6, atol=1e-12, equal_nan=True))


def replication_of(procedures: list[ProcedureComparison], record: pd.DataFrame,
                   stability: pd.DataFrame | None = None) -> list[VerdictReplication]:
    """Each of this run's procedure questions that the record also asked, with every rerun's verdict and the pooled
    one. Which of the record's runs is this one is read from the seeds and checked against this run's numbers (a
    record made with this run as its `second` works too). Where none is this run (`recorded_from_this_run` False),
    every run of the record is a rerun, a run with this run's seeds included, and the pooled verdict counts the
    record's networks, not this run's. With a stability table (`evaluate.stability`), each verdict also gets the
    simulated chance that a rerun confirms it."""
    out = []
    for here in procedures:
        asked = record[(record["model_a"] == here.model_a) & (record["model_b"] == here.model_b)
                       & (record["metric"] == here.metric)]
        runs = {row["run"]: row for _, row in asked.iterrows() if row["run"] != POOLED}
        pooled = next((row for _, row in asked.iterrows() if row["run"] == POOLED), None)
        if pooled is None or len(runs) < 2:
            continue
        seeds_here = sorted(set(here.seeds_a) | set(here.seeds_b))
        ordered = [runs[name] for name in RUN_NAMES if name in runs]
        this = next((row for row in ordered if _seeds(row) == seeds_here and _same_numbers(row, here)), None)
        verdict_here = verdict_class(here.mean_diff, here.p_holm, here.metric)
        reruns = [Rerun(seeds=_seeds(row), verdict=verdict_class(row["mean_diff"], row["p_holm"], here.metric),
                        mean_diff=float(row["mean_diff"]), p_holm=float(row["p_holm"]),
                        same_seeds=_seeds(row) == seeds_here)
                  for row in ordered if row is not this]
        out.append(VerdictReplication(
            model_a=here.model_a, model_b=here.model_b, metric=here.metric, label=here.label,
            seeds_here=seeds_here, verdict_here=verdict_here, reruns=reruns, seeds_pooled=_seeds(pooled),
            verdict_pooled=verdict_class(pooled["mean_diff"], pooled["p_holm"], here.metric),
            pooled_diff=float(pooled["mean_diff"]), pooled_ci_low=float(pooled["diff_ci_low"]),
            pooled_ci_high=float(pooled["diff_ci_high"]), pooled_p_holm=float(pooled["p_holm"]),
            held=all(rerun.verdict == verdict_here for rerun in reruns), recorded_from_this_run=this is not None,
            p_confirm=None if stability is None else confirm_chance(stability, here.model_a, here.model_b,
                                                                   here.metric, verdict_here)))
    return out


def agreement(record: pd.DataFrame) -> pd.DataFrame:
    """A seed-shift record (or several, told apart by a `choice` column) -> one row per question: the verdict class
    of each run (`first`, `second`, ...) and its difference, whether every run agrees, and the pooled verdict with
    its difference and Holm p."""
    keys = ["choice"] if "choice" in record.columns else []
    rows = []
    for question, asked in record.groupby(keys + ["model_a", "model_b", "metric"], sort=False):
        runs = {row["run"]: row for _, row in asked.iterrows()}
        names = [name for name in RUN_NAMES if name in runs]
        classes = {run: verdict_class(row["mean_diff"], row["p_holm"], row["metric"]) for run, row in runs.items()}
        row = dict(zip(keys + ["model_a", "model_b", "metric"], question))
        for name in names:
            row |= {name: classes[name], f"{name}_diff": runs[name]["mean_diff"]}
        rows.append(row | {"held": len({classes[name] for name in names}) == 1, "pooled": classes[POOLED],
                           "pooled_diff": runs[POOLED]["mean_diff"], "pooled_p_holm": runs[POOLED]["p_holm"]})
    return pd.DataFrame(rows)
