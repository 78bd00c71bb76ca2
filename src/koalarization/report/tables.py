"""Tables for results/: CSV for machines, Markdown for people, written atomically.

A small Markdown writer of our own, since ``tabulate`` (what ``DataFrame.to_markdown`` needs) may be missing.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_text_atomic
from ..evaluate.metrics import METRICS
from ..evaluate.replication import POOLED, RUN_NAMES

ARROWS = {True: "↑", False: "↓", None: ""}


def _cell(value, float_format):
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return ""
    if isinstance(value, (float, np.floating)):
        return float_format(value) if callable(float_format) else float_format.format(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, float_format: str | Callable[[float], str] = "{:.4g}",
                caption: str | None = None) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (index dropped; numeric columns right-aligned)."""
    header = [_cell(str(c), float_format) for c in df.columns]
    align = ["---:" if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) else "---"
             for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, float_format) for v in row) + " |")
    text = "\n".join(lines) + "\n"
    return f"{caption}\n\n{text}" if caption else text


def write_table(df: pd.DataFrame, path_without_suffix: str | os.PathLike,
                float_format: str | Callable[[float], str] = "{:.4g}",
                caption: str | None = None) -> tuple[Path, Path]:
    """Write ``df`` as ``<path>.csv`` (full precision, reads back identical) and ``<path>.md`` (rounded).

    A named or non-default index becomes ordinary columns. ``float_format`` (a format string or a callable)
    applies to the Markdown only; ``caption`` is a paragraph above the Markdown table. Returns both paths.
    """
    if not isinstance(df.index, pd.RangeIndex) or any(name is not None for name in df.index.names):
        df = df.reset_index()
    base = Path(path_without_suffix)
    csv_path, md_path = base.with_name(base.name + ".csv"), base.with_name(base.name + ".md")
    write_text_atomic(csv_path, df.to_csv(index=False, lineterminator="\n"))
    write_text_atomic(md_path, to_markdown(df, float_format, caption))
    return csv_path, md_path


def metric_header(metric: str) -> str:
    """Column header of a metric: its label, unit and direction, e.g. 'PSNR (dB) ↑'."""
    info = METRICS.get(metric)
    if info is None:
        return metric
    unit = f" ({info.unit})" if info.unit else ""
    arrow = ARROWS[info.higher_is_better]
    return f"{info.label or metric}{unit}{' ' + arrow if arrow else ''}"


def format_summary(summary_df: pd.DataFrame, by: str = "model",
                   float_format: str | Callable[[float], str] = "{:.4g}") -> pd.DataFrame:
    """``stats.summarize`` output -> one row per model, one "mean [low, high]" column per metric, plus n.

    Metrics follow the order of ``METRICS`` (others after, as they come); headers carry arrows (↑ higher is
    better, ↓ lower is better, none: no better direction). n is one number when every metric saw the same
    photos, else "min-max".
    """
    fmt = (lambda v: "nan" if pd.isna(v) else float_format.format(v)) if not callable(float_format) else float_format
    order = [m for m in METRICS if m in set(summary_df["metric"])]
    order += [m for m in dict.fromkeys(summary_df["metric"]) if m not in order]
    rows = []
    for model, group in summary_df.groupby(by, sort=False):
        row = {by: model}
        by_metric = group.set_index("metric")
        for metric in order:
            if metric not in by_metric.index:
                row[metric_header(metric)] = ""
                continue
            entry = by_metric.loc[metric]
            if pd.isna(entry["ci_low"]):
                row[metric_header(metric)] = fmt(entry["mean"])
            else:
                row[metric_header(metric)] = (f"{fmt(entry['mean'])} [{fmt(entry['ci_low'])}, "
                                              f"{fmt(entry['ci_high'])}]")
        counts = group["n"].astype(int)
        row["n"] = str(counts.iloc[0]) if counts.nunique() == 1 else f"{counts.min()}-{counts.max()}"
        rows.append(row)
    return pd.DataFrame(rows)


def metric_definitions(metrics: list[str] | None = None) -> pd.DataFrame:
    """The definition of each metric, to print beside every table that reports it."""
    names = list(METRICS) if metrics is None else list(metrics)
    return pd.DataFrame([{"metric": name, "header": metric_header(name), "definition": METRICS[name].definition,
                          "unit": METRICS[name].unit,
                          "better": {True: "higher", False: "lower", None: "closer to the ground truth"}[
                              METRICS[name].higher_is_better]}
                         for name in names])


SEARCH_COLUMNS = ["ciede2000", "psnr_gain_over_gray", "ab_std_ratio", "best_val_loss", "final_train_loss"]


def seed_summary(runs: pd.DataFrame, by: str, columns: list[str] = SEARCH_COLUMNS) -> pd.DataFrame:
    """A search's runs (one row per setting and seed, on the validation split) -> one row per setting: the mean over
    seeds and the seed-to-seed standard deviation of each figure, so that a difference between settings can be read
    against the spread within one."""
    grouped = runs.groupby(by, sort=False, observed=True)
    summary = grouped[columns].agg(["mean", "std"])
    summary.columns = [f"{column} {stat}" for column, stat in summary.columns]
    summary.insert(0, "seeds", grouped["seed"].nunique())
    summary.insert(1, "ciede2000 gray", grouped["ciede2000_gray"].first())
    return summary.reset_index()


def schedule_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """The learning-rate search (scripts/schedule_search.py), one row per schedule."""
    return seed_summary(runs, "schedule")


def ensemble_size(per_photo: pd.DataFrame) -> pd.DataFrame:
    """The seed-ensemble measurement (scripts/seed_ensemble.py), one row per split and model: `ensemble` k (the
    average of the first k seeds) or `seed` k (the k-th seed alone), with the means over photos of CIEDE2000 (and
    the gray input's), of the PSNR gain over gray and of the a*b* variation."""
    gray = per_photo[per_photo["model"] == "gray"].set_index(["split", "photo_id"])
    scored = per_photo[per_photo["model"] != "gray"].join(gray[["ciede2000", "psnr"]].add_suffix("_gray"),
                                                          on=["split", "photo_id"])
    scored["psnr_gain_over_gray"] = scored["psnr"] - scored["psnr_gray"]
    columns = ["ciede2000", "ciede2000_gray", "psnr_gain_over_gray", "ab_std_ratio"]
    table = scored.groupby(["split", "model", "k"], sort=False)[columns].mean().reset_index()
    table.insert(3, "photos", table["split"].map(scored.groupby("split")["photo_id"].nunique()))
    order = {"validation": 0, "test": 1, "heldout": 2, "seed": 0, "ensemble": 1}
    return table.sort_values(["split", "model", "k"], ignore_index=True,
                             key=lambda column: column if pd.api.types.is_numeric_dtype(column) else column.map(order))


def cell(summary: pd.DataFrame, model: str, metric: str) -> str:
    """'mean [low, high]' of one model and metric in a `stats.summarize` table ('' where absent)."""
    row = summary[(summary["model"] == model) & (summary["metric"] == metric)]
    if row.empty:
        return ""
    first = row.iloc[0]
    return f"{first['mean']:.3g} [{first['ci_low']:.3g}, {first['ci_high']:.3g}]"


def headline(summaries: dict[str, pd.DataFrame], order: list[str], labels: dict[str, str]) -> pd.DataFrame:
    """The page's first table: per model, the test split's CIEDE2000, PSNR, a*b* variation and ΔCF, and the
    held-out source's CIEDE2000 and PSNR, each mean [95% interval]."""
    rows = []
    for model in order:
        row = {"model": labels.get(model, model)}
        for column, metric in (("CIEDE2000 ↓", "ciede2000"), ("PSNR (dB) ↑", "psnr"),
                               ("a*b* variation", "ab_std_ratio"), ("ΔCF", "colorfulness_gap")):
            row[f"test {column}"] = cell(summaries["test"], model, metric)
        if "heldout" in summaries:
            row["held-out CIEDE2000 ↓"] = cell(summaries["heldout"], model, "ciede2000")
            row["held-out PSNR (dB) ↑"] = cell(summaries["heldout"], model, "psnr")
        rows.append(row)
    return pd.DataFrame(rows)


def dose_response(per_photo: dict[str, pd.DataFrame], ladder: list[tuple[str, str]], metric: str = "ciede2000"
                  ) -> pd.DataFrame:
    """Where the classifier's knowledge enters, rung by rung (`ladder`: [(model id, label)] from no classifier to
    spatial fusion): per split, each model's mean over its seeds and photos, the spread of its per-seed means, and
    the seed-aware difference to the rung below with its 95% interval (`evaluate.procedures`; unadjusted, for
    reading the steps: the verdicts are in the procedure comparisons)."""
    from ..evaluate.procedures import scores_by_seed, seed_aware_difference

    splits = dict(per_photo)
    if len(per_photo) > 1:
        splits["unseen"] = pd.concat(per_photo.values(), ignore_index=True)
    rows = []
    for split, table in splits.items():
        previous = None
        for model, label in ladder:
            scores = scores_by_seed(table, model, metric)
            seed_means = scores.mean(axis=0)
            row = {"split": split, "model": label, "seeds": scores.shape[1], "photos": scores.shape[0],
                   "mean": float(scores.to_numpy().mean()),
                   "per-seed means": ", ".join(f"{v:.2f}" for v in seed_means)}
            if previous is not None:
                step = seed_aware_difference(scores, scores_by_seed(table, previous, metric))
                row.update({"minus the rung below": step["mean_diff"], "95% interval low": step["diff_ci_low"],
                            "95% interval high": step["diff_ci_high"]})
            rows.append(row)
            previous = model
    return pd.DataFrame(rows)


def comparisons_table(rows: list, labels: dict[str, str]) -> pd.DataFrame:
    """Typed comparison rows (`stages.PairedComparison` or `ProcedureComparison`) as a table, models by label."""
    frame = pd.DataFrame([row.model_dump() for row in rows])
    if frame.empty:
        return frame
    for side in ("model_a", "model_b"):
        frame[side] = frame[side].map(lambda model: labels.get(model, model))
    return frame


def verdict_words(verdict: str, a: str, b: str) -> str:
    """A replication verdict ('a better', 'no evidence', ...) in words, the models by label."""
    side, _, what = verdict.partition(" ")
    if side in ("a", "b") and what in ("better", "higher"):
        return f"{a if side == 'a' else b} {what}"
    return verdict


def replication_table(rows: list, labels: dict[str, str]) -> pd.DataFrame:
    """`stages.VerdictReplication` rows as the page's table: each procedure question, this run's verdict, each
    rerun's (other seeds, or this run's seeds trained on another machine; in the record's order, separated by
    ' / '), whether every rerun reached this run's verdict, the simulated chance that a rerun confirms it
    (`evaluate.stability`; empty where not simulated), and the verdict of the record's runs' seeds pooled with its
    interval."""
    out = []
    for row in rows:
        a, b = labels.get(row.model_a, row.model_a), labels.get(row.model_b, row.model_b)
        out.append({"model_a": a, "model_b": b, "metric": row.label,
                    "this run": verdict_words(row.verdict_here, a, b),
                    "reruns": " / ".join(verdict_words(rerun.verdict, a, b) for rerun in row.reruns),
                    "held": "yes" if row.held else "NO", "rerun_confirms": row.p_confirm,
                    "pooled": verdict_words(row.verdict_pooled, a, b), "pooled_diff": row.pooled_diff,
                    "pooled_ci_low": row.pooled_ci_low, "pooled_ci_high": row.pooled_ci_high,
                    "pooled_p_holm": row.pooled_p_holm, "seeds_here": _seed_list(row.seeds_here),
                    "seeds_reruns": " / ".join(_seed_list(rerun.seeds) + (" (same seeds, another run)"
                                                                          if rerun.same_seeds else "")
                                               for rerun in row.reruns),
                    "seeds_pooled": _seed_list(row.seeds_pooled),
                    "recorded_from_this_run": row.recorded_from_this_run})
    return pd.DataFrame(out)


def stability_for_page(table: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """`evaluate.stability.stability_table` rows of one design for the page: models and metrics by label, the
    chances, the design; without the per-procedure seed columns (the design says them)."""
    out = table.drop(columns=[c for c in table.columns if c.startswith("seeds_") or c == "profile_design"]).copy()
    out["model_a"] = out["model_a"].map(lambda m: labels.get(m, m))
    out["model_b"] = out["model_b"].map(lambda m: labels.get(m, m))
    out["metric"] = out["metric"].map(lambda m: METRICS[m].label if m in METRICS else m)
    return out


def agreement_table(summary: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """`evaluate.replication.agreement` rows for the page: the models and metrics by label, each run's verdict in
    words, 'held' as yes/NO."""
    out = summary.copy()
    for i, row in out.iterrows():
        a, b = labels.get(row["model_a"], row["model_a"]), labels.get(row["model_b"], row["model_b"])
        for column in [name for name in (*RUN_NAMES, POOLED) if name in out.columns]:
            out.at[i, column] = verdict_words(row[column], a, b)
    out["model_a"] = out["model_a"].map(lambda m: labels.get(m, m))
    out["model_b"] = out["model_b"].map(lambda m: labels.get(m, m))
    out["metric"] = out["metric"].map(lambda m: METRICS[m].label if m in METRICS else m)
    out["held"] = out["held"].map({True: "yes", False: "NO"})
    return out


def _seed_list(seeds: list[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def seed_means(per_photo: dict[str, pd.DataFrame], models: list[tuple[str, str]], metric: str = "ciede2000"
               ) -> pd.DataFrame:
    """Each seed's mean over the photos of each split, for the models [(id, label)]: what a rerun with one seed
    would report (the dose-response figure's dots)."""
    rows = []
    for split, table in per_photo.items():
        for model, label in models:
            mine = table[(table["model"] == model) & table["seed"].notna()]
            for seed, value in mine.groupby("seed")[metric].mean().items():
                rows.append({"split": split, "model": model, "label": label, "seed": int(seed), "value": value})
    return pd.DataFrame(rows)


def design_summary(designs: pd.DataFrame, by: str = "design") -> pd.DataFrame:
    """The fusion-design search (scripts/fusion_designs.py), one row per design (or per `by`)."""
    return seed_summary(designs, by)


def search_comparison(per_photo: pd.DataFrame, pairs: list[tuple[str, str]],
                      metrics: tuple[str, ...] = ("ciede2000", "psnr"), split: str = "validation") -> pd.DataFrame:
    """Training procedures of a search against each other, from their scores photo by photo on `split` (validation,
    `scripts/fusion_designs.py`; or every unseen photo once a choice is made, `scripts/search_on_unseen.py`; columns
    model, seed, photo_id and the metrics; `model` names the procedure): seed-aware (`evaluate.procedures`: each
    side's seeds are draws of its procedure, the seed a random factor beside the photo), Holm over the family of
    every pair and metric. `pairs`: (a, b), read as a - b. -> one row per pair and metric: the means, a - b with its
    95% interval, p before and after Holm, the verdict."""
    from ..evaluate.procedures import procedure_family

    scored = per_photo[per_photo["model"] != "gray"]
    rows = comparisons_table(procedure_family(scored, [(a, b, list(metrics)) for a, b in pairs], split), {})
    return rows[["model_a", "model_b", "label", "mean_a", "mean_b", "mean_diff", "diff_ci_low", "diff_ci_high",
                 "p_value", "p_holm", "family_size", "verdict"]]


def backbone_comparison(per_photo: pd.DataFrame, weaker: str, stronger: str,
                        metrics: tuple[str, ...] = ("ciede2000", "psnr")) -> pd.DataFrame:
    """Each design trained on the stronger classifier's inputs against the same design on the weaker one
    (`search_comparison`, with a column `design` and one `backbone`). -> one row per design and metric."""
    scored = per_photo[per_photo["model"] != "gray"].assign(
        model=lambda frame: frame["design"] + " | " + frame["backbone"])
    designs = [d for d in dict.fromkeys(scored["design"])
               if {weaker, stronger} <= set(scored.loc[scored["design"] == d, "backbone"])]
    rows = search_comparison(scored, [(f"{d} | {stronger}", f"{d} | {weaker}") for d in designs], metrics)
    rows.insert(0, "design", [model.split(" | ")[0] for model in rows["model_a"]])
    return rows[["design", "label", "mean_a", "mean_b", "mean_diff", "diff_ci_low", "diff_ci_high", "p_value",
                 "p_holm", "family_size", "verdict"]].rename(columns={"mean_a": stronger, "mean_b": weaker})


def unseen_against_gray(per_photo: pd.DataFrame, designs: list[str],
                        metrics: tuple[str, ...] = ("ciede2000", "psnr")) -> pd.DataFrame:
    """A search's networks at hand against the gray input on each unseen split, as notebook 3 judges the demo's:
    each design's seeds averaged per photo, and its seed ensemble, photos the unit (Wilcoxon), Holm over the family
    of every design, split and metric."""
    from ..evaluate.run import average_seeds
    from ..evaluate.stats import adjust_family, paired_comparisons

    parts = []
    for split, scores in per_photo.groupby("split", sort=False):
        averaged = average_seeds(scores, list(metrics))
        candidates = [m for design in designs for m in (design, f"{design}_ensemble")]
        parts.append(paired_comparisons(averaged, [(m, "gray") for m in candidates], list(metrics))
                     .assign(split=split))
    family = adjust_family(pd.concat(parts, ignore_index=True))
    return family[["split", "model_a", "metric", "n", "mean_a", "mean_b", "mean_diff", "diff_ci_low",
                   "diff_ci_high", "p_value", "p_holm", "family_size", "verdict"]]
