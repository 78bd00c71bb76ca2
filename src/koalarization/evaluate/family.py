"""Which comparisons the study makes, chosen by the models' roles (`stages.Roles`), never by their ids.

Two families, each Holm-adjusted on its own, because they answer two kinds of question:

- **The networks at hand** (`network_family`): the trained networks, each model's seeds averaged per photo, and
  their seed ensembles, against the gray input and against each other; photos are the unit (Wilcoxon signed-rank
  tests). These say how well the checkpoints this run made colorize; they are what `koala colorize` and the survey
  use.
- **The procedures** (`procedure_family`): where the classifier's knowledge enters (none -> global -> spatial) and
  which loss, each trained with several seeds; the seed is a random factor beside the photo
  (`evaluate.procedures`). These say what a rerun with other seeds would find.
"""
from __future__ import annotations

import pandas as pd

from ..stages import PairedComparison, ProcedureComparison, Roles
from .metrics import METRICS
from .procedures import procedure_family as _procedures
from .stats import adjust_family, paired_comparisons

HEADLINE_METRICS = ["ciede2000", "psnr"]
UNSEEN = "unseen"  # the test split and the held-out source together: every photo no model was trained or tuned on


def network_pairs(roles: Roles, splits: list[str]) -> list[tuple[str, str, str]]:
    """(split, a, b) of the networks family: the main and the spatial network and their ensembles against the gray
    input on each split; the main ensemble against one main network; the spatial ensemble against the main one on
    every unseen photo (the checkpoints a user would choose between)."""
    gray = roles.baseline("gray")
    main, spatial = roles.main(), roles.spatial()
    candidates = [r for r in (main, roles.ensemble_of(main.id), spatial, spatial and roles.ensemble_of(spatial.id))
                  if r is not None]
    pairs = [(split, r.id, gray.id) for split in splits for r in candidates] if gray else []
    main_ensemble = roles.ensemble_of(main.id)
    if main_ensemble:
        pairs.append(("test", main_ensemble.id, main.id))
    if spatial is not None and main_ensemble is not None and roles.ensemble_of(spatial.id) is not None:
        pairs.append((UNSEEN, roles.ensemble_of(spatial.id).id, main_ensemble.id))  # type: ignore[union-attr]
    return pairs


def network_family(averaged: dict[str, pd.DataFrame], roles: Roles, metrics: list[str] | None = None
                   ) -> list[PairedComparison]:
    """The networks-at-hand comparisons on seed-averaged per-photo scores (`averaged`: split -> table; "unseen" is
    built from the others), Holm-adjusted as one family."""
    metrics = metrics or HEADLINE_METRICS
    tables = dict(averaged)
    if len(averaged) > 1:
        tables[UNSEEN] = pd.concat(averaged.values(), ignore_index=True)
    parts = [paired_comparisons(tables[split], [(a, b)], metrics).assign(split=split)
             for split, a, b in network_pairs(roles, list(averaged)) if split in tables]
    if not parts:
        return []
    family = adjust_family(pd.concat(parts, ignore_index=True))
    family["label"] = family["metric"].map(lambda m: METRICS[m].label)
    columns = list(PairedComparison.model_fields)
    return [PairedComparison(**row) for row in family[columns].to_dict("records")]


LOSS_METRICS = ["ciede2000", "psnr", "colorfulness_gap"]  # a loss that fights desaturation is judged on color too


def procedure_pairs(roles: Roles) -> list[tuple[str, str, list[str]]]:
    """The procedure questions, with their metrics: global against none (the paper's: does the classifier's
    embedding help?), spatial against global (does *where* it sees things add to *what* it sees?), spatial against
    none, and each other loss against the main model's (same fusion and classifier; also on colorfulness)."""
    main = roles.main()
    none, global_, spatial = roles.like_main("none"), roles.like_main("global"), roles.spatial()
    pairs = [(a.id, b.id, HEADLINE_METRICS) for a, b in ((global_, none), (spatial, global_), (spatial, none))
             if a and b]
    pairs += [(r.id, main.id, LOSS_METRICS) for r in roles.networks(fusion=main.fusion, backbone=main.backbone)
              if r.loss != main.loss]
    return pairs


def procedure_family(per_photo: dict[str, pd.DataFrame], roles: Roles) -> list[ProcedureComparison]:
    """The procedure comparisons on every unseen photo (per-seed scores of all splits together), seed-aware,
    Holm-adjusted as one family."""
    unseen = pd.concat(per_photo.values(), ignore_index=True)
    return _procedures(unseen, procedure_pairs(roles), UNSEEN if len(per_photo) > 1 else next(iter(per_photo)))


def describe_families(roles: Roles, splits: list[str]) -> tuple[str, str]:
    """One sentence per family, for the record and the statistics note."""
    labels = roles.labels()
    metrics = " and ".join(METRICS[m].label for m in HEADLINE_METRICS)
    networks = "; ".join(f"{labels[a]} against {labels[b]} ({split})" for split, a, b in network_pairs(roles, splits))
    procedures = "; ".join(f"{labels[a]} against {labels[b]} ({', '.join(METRICS[m].label for m in ms)})"
                           for a, b, ms in procedure_pairs(roles))
    return f"{networks}; each on {metrics}", f"{procedures}; over every unseen photo"
