"""Do this run's procedure verdicts survive a rerun with other seeds?

A procedure verdict from three seeds is itself one draw: rerun the study with other seeds and an effect near the
edge of what three seeds can detect may cross the Holm threshold either way. `koala study --shift-seeds 10` reruns a
profile with every seed moved, and `scripts/pool_seed_runs.py` answers each procedure question in both runs and with
both runs' seeds pooled (results/seed_shift/seed_shift_<profile>.csv). This module sets that record beside this
run's own verdicts, so the report can say which verdicts held, which did not, and what the pooled seeds say.

The record is matched to this run by the seeds: its run with this run's seeds is checked against this run's numbers
(`recorded_from_this_run`: the same mean differences; a rerun on another machine or commit gives others), and its
other run is the rerun.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..stages import ProcedureComparison, Roles, VerdictReplication
from .family import procedure_family
from .procedures import verdict_class

RUNS = ("first", "second", "pooled")
COLUMNS = ["run", "model_a", "model_b", "metric", "seeds_a", "seeds_b", "n_photos", "mean_diff", "diff_ci_low",
           "diff_ci_high", "se_seed", "se_photo", "df", "p_value", "p_holm", "verdict"]


def network_seeds(per_photo: dict[str, pd.DataFrame], roles: Roles) -> set[int]:
    """The seeds of a run's trained networks (by role, not by name)."""
    networks = {role.id for role in roles.networks()}
    return {int(seed) for frame in per_photo.values()
            for seed in frame.loc[frame["model"].isin(networks), "seed"].dropna()}


def seed_shift_record(first: dict[str, pd.DataFrame], second: dict[str, pd.DataFrame], roles: Roles
                      ) -> pd.DataFrame:
    """Two runs of one profile with different seeds ({split: per-photo scores} each, the same photos) -> every
    procedure question answered by each run and by both runs' seeds pooled: the same seed-aware test
    (`evaluate.procedures`) with twice the seeds, Holm-adjusted within each run's family and the pooled one. Pooling
    is fair because the seeds differ and the photos are the same; runs sharing a seed are refused (a network would
    count twice)."""
    overlap = network_seeds(first, roles) & network_seeds(second, roles)
    if overlap:
        raise ValueError(f"the runs share seeds {sorted(overlap)}: pooling them would count a network twice")
    splits = [split for split in first if split in second]
    pooled = {split: pd.concat([first[split], second[split]], ignore_index=True) for split in splits}
    rows = [{"run": run, **row.model_dump(include=set(COLUMNS))}
            for run, scores in zip(RUNS, (first, second, pooled)) for row in procedure_family(scores, roles)]
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


def replication_of(procedures: list[ProcedureComparison], record: pd.DataFrame) -> list[VerdictReplication]:
    """Each of this run's procedure questions that the record also asked, with the rerun's and the pooled verdicts.
    Which of the record's two runs is this one is read from the seeds (a record made with this run as its `second`
    works too); where neither has this run's seeds, the record's own first run stands in for this one and
    `recorded_from_this_run` is False."""
    out = []
    for here in procedures:
        asked = record[(record["model_a"] == here.model_a) & (record["model_b"] == here.model_b)
                       & (record["metric"] == here.metric)]
        runs = {row["run"]: row for _, row in asked.iterrows()}
        if set(RUNS) - set(runs):
            continue
        seeds_here = sorted(set(here.seeds_a) | set(here.seeds_b))
        this, other = ((runs["second"], runs["first"]) if _seeds(runs["second"]) == seeds_here
                       else (runs["first"], runs["second"]))
        pooled = runs["pooled"]
        matched = _seeds(this) == seeds_here and _same_numbers(this, here)
        verdict_here = verdict_class(here.mean_diff, here.p_holm, here.metric)
        verdict_rerun = verdict_class(other["mean_diff"], other["p_holm"], here.metric)
        out.append(VerdictReplication(
            model_a=here.model_a, model_b=here.model_b, metric=here.metric, label=here.label,
            seeds_here=seeds_here, verdict_here=verdict_here, seeds_rerun=_seeds(other), verdict_rerun=verdict_rerun,
            rerun_diff=float(other["mean_diff"]), rerun_p_holm=float(other["p_holm"]), seeds_pooled=_seeds(pooled),
            verdict_pooled=verdict_class(pooled["mean_diff"], pooled["p_holm"], here.metric),
            pooled_diff=float(pooled["mean_diff"]), pooled_ci_low=float(pooled["diff_ci_low"]),
            pooled_ci_high=float(pooled["diff_ci_high"]), pooled_p_holm=float(pooled["p_holm"]),
            held=verdict_here == verdict_rerun, recorded_from_this_run=matched))
    return out


def agreement(record: pd.DataFrame) -> pd.DataFrame:
    """A seed-shift record (or several, told apart by a `choice` column) -> one row per question: the verdict class
    of each run, whether the two runs agree, and the pooled verdict with its difference and Holm p."""
    keys = ["choice"] if "choice" in record.columns else []
    rows = []
    for question, asked in record.groupby(keys + ["model_a", "model_b", "metric"], sort=False):
        runs = {row["run"]: row for _, row in asked.iterrows()}
        classes = {run: verdict_class(row["mean_diff"], row["p_holm"], row["metric"]) for run, row in runs.items()}
        rows.append({**dict(zip(keys + ["model_a", "model_b", "metric"], question)),
                     "first": classes["first"], "first_diff": runs["first"]["mean_diff"],
                     "second": classes["second"], "second_diff": runs["second"]["mean_diff"],
                     "held": classes["first"] == classes["second"], "pooled": classes["pooled"],
                     "pooled_diff": runs["pooled"]["mean_diff"], "pooled_p_holm": runs["pooled"]["p_holm"]})
    return pd.DataFrame(rows)
