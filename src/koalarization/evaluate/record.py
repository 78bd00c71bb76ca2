"""Stage 3's record (`stages.EvaluationRecord`), built from the evaluation's tables by one function, so that no
notebook assembles it and every reader (the report page, stage 4, `koala study --compare`, the tests) gets the same
checked structure."""
from __future__ import annotations

import pandas as pd

from ..stages import (
    EvaluationRecord,
    PairedComparison,
    ProcedureComparison,
    Roles,
    VerdictReplication,
    VerdictStability,
)
from .family import describe_families


def means_by_split(summaries: dict[str, pd.DataFrame]) -> dict[str, dict[str, dict[str, float]]]:
    """split -> model -> metric -> mean over photos, from `stats.summarize` tables."""
    return {split: {model: {r.metric: float(r.mean) for r in group.itertuples()}
                    for model, group in summary.groupby("model", sort=False)}
            for split, summary in summaries.items()}


def evaluation_record(roles: Roles, averaged: dict[str, pd.DataFrame], summaries: dict[str, pd.DataFrame],
                      by_chroma: pd.DataFrame, networks: list[PairedComparison],
                      procedures: list[ProcedureComparison], replication: list[VerdictReplication] | None = None,
                      replication_source: str = "", stability: VerdictStability | None = None) -> EvaluationRecord:
    """Everything stage 3 found, typed. `replication`: the procedure verdicts set beside a rerun's with other seeds
    (`evaluate.replication`), read from `replication_source`; `stability`: how likely they are to survive a rerun
    (`evaluate.stability`)."""
    network_text, procedure_text = describe_families(roles, list(averaged))
    return EvaluationRecord(
        main_model=roles.main().id, roles=roles,
        n_test=int(averaged["test"]["photo_id"].nunique()) if "test" in averaged else 0,
        n_heldout=int(averaged["heldout"]["photo_id"].nunique()) if "heldout" in averaged else 0,
        means=means_by_split(summaries), error_by_chroma=by_chroma.to_dict("records"),
        comparisons=networks, procedures=procedures, family=network_text, family_size=len(networks),
        procedure_family=procedure_text, replication=replication or [],
        replication_source=replication_source if replication else "", stability=stability)
