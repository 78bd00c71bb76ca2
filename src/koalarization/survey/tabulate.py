"""Tabulate real-vs-fake answers against the paper's figures (shown by notebook 05_user_study).

Input: the responses CSV of `koala survey export` (or of `koala survey import`), and the survey folder when there
is one (its pre-registered exclusion rule, its images for the machine baseline). Output: pandas tables and
matplotlib figures. Rows that cannot be used are returned with the reason in `rejected`, participants excluded by
the attention checks in `excluded`, missing answers in `missing`; nothing is dropped silently.

The shares come with three intervals, from naive to the one the verdicts follow: Wilson (answers independent),
participant bootstrap (people resampled), and the two-way bootstrap (people *and* photos resampled; the verdicts,
Holm-adjusted); a mixed logistic model with crossed random effects is reported beside them (`analysis.py`,
`mixed.py`). The published studies are re-read the same way (`published.py`) whether or not this study has answers.

Every published figure comes from `user_study/reference_2017.csv`, which says where it was taken from (`source`)
and whether it was read off a chart (`read_off_chart`: approximate); the side-by-side table repeats both. Tables and
figures are written through the package's shared writers (`koalarization.report`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import write_text_atomic
from ..report.figures import save_figure
from ..report.tables import to_markdown, write_table
from .analysis import (
    compare_conditions,
    fit_for,
    generalization_table,
    reference_tests,
    sample_size_tables,
)
from .baseline import baseline_table, score_survey
from .clean import REQUIRED, apply_exclusion, clean_responses, missing_answers
from .files import MANIFEST_JSON
from .inference import participant_bootstrap, wilson_interval
from .mixed import photo_sd_from_counts
from .plots import conditions_figure, per_photo_figure, pooled_colorized, reanalysis_figure
from .published import PublishedReanalysis, reanalyse
from .reference import (
    PAPER,
    REPLICATION,
    load_reference,
    load_replication_counts,
    paper_per_photo,
    reference_source,
    reference_value,
)

__all__ = ["NO_RESPONSES", "UserStudyTables", "clean_responses", "load_reference", "participant_bootstrap",
           "save_user_study", "tabulate_responses", "wilson_interval"]

log = logging.getLogger(__name__)

KINDS = ("colorized", "real")
NO_RESPONSES = "No responses yet: the tables below show the published reference figures only."


def judged_real_share(clean: pd.DataFrame, kind: str) -> dict[str, Any]:
    """k, n, % judged real, Wilson 95% CI and participant-bootstrap 95% CI for one kind of photo."""
    rows = clean[clean["kind"] == kind]
    k, n = int(rows["judged_real"].sum()), int(len(rows))
    low, high = wilson_interval(k, n)
    boot_low, boot_high = participant_bootstrap(clean, kind)
    pct = 100.0 * k / n if n else float("nan")
    return {"photos": kind, "judged_real": k, "answers": n, "judged_real_pct": pct, "wilson_low_pct": 100 * low,
            "wilson_high_pct": 100 * high, "bootstrap_low_pct": 100 * boot_low, "bootstrap_high_pct": 100 * boot_high,
            "participants": int(rows["participant_id"].nunique())}


def overall_table(clean: pd.DataFrame) -> pd.DataFrame:
    """One row per kind of photo: the headline shares judged real."""
    return pd.DataFrame([judged_real_share(clean, kind) for kind in KINDS])


def per_photo_table(clean: pd.DataFrame) -> pd.DataFrame:
    """Per photo: answers, % judged real with its Wilson interval; colorized first, most convincing first."""
    columns = ["kind", "rank", "photo_id", "answers", "judged_real", "judged_real_pct", "wilson_low_pct",
               "wilson_high_pct", "condition"]
    if clean.empty:
        return pd.DataFrame(columns=columns)
    grouped = clean.groupby(["kind", "condition", "photo_id"])["judged_real"].agg(
        judged_real="sum", answers="count").reset_index()
    grouped["judged_real_pct"] = 100.0 * grouped["judged_real"] / grouped["answers"]
    bounds = [wilson_interval(k, n) for k, n in zip(grouped["judged_real"], grouped["answers"])]
    grouped["wilson_low_pct"] = [100 * b[0] for b in bounds]
    grouped["wilson_high_pct"] = [100 * b[1] for b in bounds]
    grouped["kind_order"] = grouped["kind"].map({"colorized": 0, "real": 1, "catch": 2})
    grouped = grouped.sort_values(["kind_order", "judged_real_pct", "photo_id"], ascending=[True, False, True])
    grouped["rank"] = grouped.groupby("kind").cumcount() + 1
    return grouped[columns].reset_index(drop=True)


def per_participant_table(clean: pd.DataFrame) -> pd.DataFrame:
    """Per participant: answers, accuracy (colorized called fake, real called real), shares judged real."""
    columns = ["participant_id", "answers", "correct", "accuracy_pct", "colorized_answers",
               "colorized_judged_real_pct", "real_answers", "real_judged_real_pct", "median_response_ms"]
    if clean.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for participant_id, own in clean.groupby("participant_id", sort=True):
        fake, real = own[own["kind"] == "colorized"], own[own["kind"] == "real"]
        times = own["response_ms"].dropna() if "response_ms" in own else pd.Series(dtype=float)
        rows.append({
            "participant_id": participant_id, "answers": len(own), "correct": int(own["correct"].sum()),
            "accuracy_pct": 100.0 * own["correct"].mean(), "colorized_answers": len(fake),
            "colorized_judged_real_pct": 100.0 * fake["judged_real"].mean() if len(fake) else float("nan"),
            "real_answers": len(real),
            "real_judged_real_pct": 100.0 * real["judged_real"].mean() if len(real) else float("nan"),
            "median_response_ms": float(times.median()) if len(times) else float("nan"),
        })
    return pd.DataFrame(rows, columns=columns)


def comparison_table(clean: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The paper, the PyTorch replication and ours side by side, each published figure with its source (NaN: not
    reported / no answers yet)."""
    ours = {kind: judged_real_share(clean, kind) for kind in KINDS}
    paper_photos = paper_per_photo(reference)
    per_photo = per_photo_table(clean)
    ours_photos = pooled_colorized(per_photo)["judged_real_pct"]
    participants = clean["participant_id"].nunique() if not clean.empty else 0

    def per_participant(kind: str) -> float:
        if clean.empty:
            return float("nan")
        return float(clean[clean["kind"] == kind].groupby("participant_id").size().median())

    def published(study: str, image: str, column: str = "judged_real_pct") -> tuple[float, str]:
        return reference_value(reference, study, image, column), reference_source(reference, study, image)

    paper_all, replication_all = published(PAPER, "all_colorized"), published(REPLICATION, "all_colorized")
    paper_chart = reference_source(reference, PAPER)
    nothing = (np.nan, "")
    rows = [
        ("participants", published(PAPER, "all_colorized", "participants"),
         published(REPLICATION, "all_colorized", "participants"), participants),
        ("colorized photos per participant (median)", (9, paper_all[1]), (9, replication_all[1]),
         per_participant("colorized")),
        ("real photos per participant (median)", (3, paper_all[1]), (3, replication_all[1]), per_participant("real")),
        ("colorized judged real (%)", paper_all, replication_all, ours["colorized"]["judged_real_pct"]),
        ("  Wilson 95% CI low (%)", nothing, nothing, ours["colorized"]["wilson_low_pct"]),
        ("  Wilson 95% CI high (%)", nothing, nothing, ours["colorized"]["wilson_high_pct"]),
        ("real judged real (%)", nothing, published(REPLICATION, "all_real"), ours["real"]["judged_real_pct"]),
        ("most convincing colorized photo (% real)",
         (paper_photos.max(), paper_chart) if len(paper_photos) else nothing, nothing,
         ours_photos.max() if len(ours_photos) else np.nan),
        ("least convincing colorized photo (% real)",
         (paper_photos.min(), paper_chart) if len(paper_photos) else nothing, nothing,
         ours_photos.min() if len(ours_photos) else np.nan),
    ]
    return pd.DataFrame([(q, p[0], p[1], r[0], r[1], o) for q, p, r, o in rows],
                        columns=["quantity", "paper_2017", "paper_2017_source", "pytorch_replication",
                                 "pytorch_replication_source", "ours"])


def missing_table(clean: pd.DataFrame, missing: pd.DataFrame) -> pd.DataFrame:
    """Per kind: answers given, missing answers, and the share judged real both ways (a missing answer left out,
    or counted as "fake", as a form's "divide by the number of participants" does)."""
    rows = []
    for kind in KINDS:
        given = clean[clean["kind"] == kind]
        k, n, blank = int(given["judged_real"].sum()), len(given), int((missing["kind"] == kind).sum()) if len(
            missing) else 0
        rows.append({"photos": kind, "judged_real": k, "answers_given": n, "missing_answers": blank,
                     "judged_real_pct_of_given": 100 * k / n if n else np.nan,
                     "judged_real_pct_missing_as_fake": 100 * k / (n + blank) if n + blank else np.nan})
    return pd.DataFrame(rows)


@dataclass
class UserStudyTables:
    """Everything the notebook shows. `message` says plainly whether there are answers at all."""

    message: str
    has_responses: bool
    overall: pd.DataFrame
    per_photo: pd.DataFrame
    per_participant: pd.DataFrame
    tests: pd.DataFrame
    comparison: pd.DataFrame
    rejected: pd.DataFrame
    reference: pd.DataFrame = field(repr=False)
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)
    exclusion_rule: str = "no attention checks: nobody is excluded"
    missing: pd.DataFrame = field(default_factory=pd.DataFrame)
    generalization: pd.DataFrame = field(default_factory=pd.DataFrame)
    conditions: pd.DataFrame = field(default_factory=pd.DataFrame)
    conditions_per_photo: pd.DataFrame = field(default_factory=pd.DataFrame)
    baseline: pd.DataFrame = field(default_factory=pd.DataFrame)
    precision: pd.DataFrame = field(default_factory=pd.DataFrame)
    power: pd.DataFrame = field(default_factory=pd.DataFrame)
    sample_basis: dict[str, Any] = field(default_factory=dict)
    published: PublishedReanalysis | None = field(default=None, repr=False)

    def figure(self, title: str | None = None) -> Any:
        """The per-photo bars (a matplotlib Figure)."""
        return per_photo_figure(self.per_photo, self.reference, title)

    def reanalysis_figure(self) -> Any:
        """The published studies with photo-level intervals (a matplotlib Figure)."""
        return reanalysis_figure(self.published) if self.published is not None else None

    def conditions_figure(self) -> Any:
        """Each photo under each condition (None with fewer than two conditions)."""
        if self.conditions_per_photo.empty:
            return None
        return conditions_figure(self.conditions_per_photo, [c for c in self.conditions_per_photo.columns
                                                            if c != "photo_id"])


def read_responses(responses: pd.DataFrame | str | Path | None) -> tuple[pd.DataFrame | None, str]:
    """A DataFrame, a CSV path or None -> (DataFrame or None, note)."""
    if responses is None:
        return None, "no responses file given"
    if isinstance(responses, pd.DataFrame):
        return responses, ""
    path = Path(responses)
    if not path.is_file():
        return None, f"no responses file at {path}"
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return None, f"{path} is empty"
    # all text, as written: a rejected value is reported exactly as it appears in the file
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]), ""


def manifest_of(survey_dir: str | Path | None) -> dict[str, Any]:
    """The survey's private manifest ({} without a survey folder): its pre-registered exclusion rule, written when
    the survey was built, and its conditions, the reference first."""
    path = None if survey_dir is None else Path(survey_dir) / MANIFEST_JSON
    if path is None or not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _message(clean: pd.DataFrame, rejected: pd.DataFrame, excluded: pd.DataFrame, note: str) -> str:
    if clean.empty:
        message = NO_RESPONSES + (f" ({note})" if note else "")
        return message + (f" {len(rejected)} row(s) were rejected: see `rejected`." if len(rejected) else "")
    message = (f"{len(clean)} answers from {clean['participant_id'].nunique()} participants"
               f" on {clean['photo_id'].nunique()} photos; {len(rejected)} row(s) rejected"
               + (" (see `rejected`)." if len(rejected) else "."))
    if len(excluded):
        message += f" {len(excluded)} participant(s) excluded by the pre-registered attention-check rule."
    return message


def _answers(responses: Any, rule: dict[str, Any] | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """(answers kept, rejected rows, excluded participants, note) of a responses CSV, DataFrame or None."""
    frame, note = read_responses(responses)
    if frame is not None and frame.empty and not set(REQUIRED) <= set(frame.columns):
        frame, note = None, "an empty table"
    if frame is None:
        frame = pd.DataFrame(columns=list(REQUIRED) + ["response_ms"])
    clean, rejected = clean_responses(frame)
    clean, excluded = apply_exclusion(clean, rule)
    return clean, rejected, excluded, note


def tabulate_responses(responses: Any, reference: Any = None, survey_dir: str | Path | None = None,
                       exclusion: dict[str, Any] | None = None, seed: int = 0) -> UserStudyTables:
    """Answers (DataFrame, CSV path or None) -> UserStudyTables. No answers: every table still has its columns,
    the comparison and the re-analysis show the published figures, and `message` says there are no responses yet.

    `survey_dir`: the survey the answers belong to (its manifest's exclusion rule; its images for the machine
    baseline). `exclusion`: a rule to apply instead of the manifest's (the manifest's `exclusion` format)."""
    reference = load_reference(reference)
    manifest = manifest_of(survey_dir)
    rule = exclusion if exclusion is not None else manifest.get("exclusion")
    order = manifest.get("conditions")
    clean, rejected, excluded, note = _answers(responses, rule)
    fit = fit_for(clean, order) if not clean.empty else None
    counts = load_replication_counts()
    colorized_counts = counts[counts["kind"] == "colorized"]
    precision, power, basis = sample_size_tables(fit, photo_sd_from_counts(
        colorized_counts["judged_real"].to_numpy(), colorized_counts["answers"].to_numpy()))
    conditions, conditions_per_photo = compare_conditions(clean, fit, seed, order) if not clean.empty else (
        pd.DataFrame(), pd.DataFrame())
    baseline = (baseline_table(score_survey(survey_dir), clean) if survey_dir is not None
                and (Path(survey_dir) / "private" / "truth.csv").is_file() else pd.DataFrame())
    return UserStudyTables(
        message=_message(clean, rejected, excluded, note), has_responses=not clean.empty,
        overall=overall_table(clean), per_photo=per_photo_table(clean), per_participant=per_participant_table(clean),
        tests=reference_tests(clean, reference, seed), comparison=comparison_table(clean, reference),
        rejected=rejected, reference=reference, excluded=excluded,
        exclusion_rule=(rule or {}).get("rule", "no attention checks: nobody is excluded"),
        missing=missing_table(clean, missing_answers(rejected)),
        generalization=generalization_table(clean, fit, seed, order) if not clean.empty else pd.DataFrame(),
        conditions=conditions, conditions_per_photo=conditions_per_photo, baseline=baseline,
        precision=precision, power=power, sample_basis=basis, published=reanalyse(reference, counts))


# writing ---------------------------------------------------------------------------------------------------------

SECTIONS = [("overall", "Share judged real"), ("generalization", "Over people and photos"),
            ("conditions", "Models compared, photo by photo"), ("comparison", "Paper, replication and ours"),
            ("tests", "Tests against the published shares"), ("baseline", "A machine baseline"),
            ("per_photo", "Per photo"), ("per_participant", "Per participant"),
            ("excluded", "Excluded by the attention checks"), ("missing", "Missing answers"),
            ("rejected", "Rejected rows"), ("precision", "Participants and photos for a given precision"),
            ("power", "Participants and photos to detect a 10-point difference")]
PUBLISHED_SECTIONS = [("studies", "reanalysis"), ("per_photo", "reanalysis_per_photo"),
                      ("missing", "reanalysis_missing"), ("difference", "reanalysis_difference")]


def save_user_study(tables: UserStudyTables, out_dir: str | Path, prefix: str = "user_study",
                    figures_dir: str | Path | None = None) -> list[Path]:
    """Write every table that has rows as `<prefix>_<name>.csv` + `.md` (the package's `write_table`), one report
    `<prefix>.md` with all of them, and the figures (`<prefix>`, `<prefix>_reanalysis`, and with several
    conditions `<prefix>_conditions`, each .png + .pdf) into `figures_dir` (default: `out_dir`), all atomically.
    The side-by-side table is rounded to 2 decimals (a presentation table); the others keep full precision."""
    out_dir, figures = Path(out_dir), Path(figures_dir or out_dir)
    written: list[Path] = []
    report = [f"# User study\n\n{tables.message}\n", f"Exclusion rule: {tables.exclusion_rule}\n"]
    for name, heading in SECTIONS:
        frame = getattr(tables, name)
        frame = frame.round(2) if name == "comparison" else frame
        if frame.empty:  # nothing to show (no answers yet, one model, nobody excluded): no file, "(none)" here
            report.append(f"## {heading}\n\n(none)\n")
            continue
        written += write_table(frame, out_dir / f"{prefix}_{name}")
        report.append(f"## {heading}\n\n{to_markdown(frame)}")
    if tables.published is not None:
        for attribute, name in PUBLISHED_SECTIONS:
            frame = getattr(tables.published, attribute)
            written += write_table(frame, out_dir / f"{prefix}_{name}")
            report.append(f"## Published studies re-read: {attribute}\n\n{to_markdown(frame)}")
        written += save_figure(tables.reanalysis_figure(), figures / f"{prefix}_reanalysis")
    written.append(write_text_atomic(out_dir / f"{prefix}.md", "\n".join(report)))
    written += save_figure(tables.figure(), figures / prefix)
    if tables.conditions_figure() is not None:
        written += save_figure(tables.conditions_figure(), figures / f"{prefix}_conditions")
    log.info("user study tables and figures written to %s", out_dir)
    return written


def catalogued(written: list[Path]) -> tuple[list[str], list[str]]:
    """(tables, figures): the names among `written` that the report's catalog lists for stage 5, for a notebook to
    claim (a table or figure with nothing to show is not written, so it is not claimed either)."""
    from ..report import catalog

    names = {Path(path).name for path in written}
    tables = [e.name for e in catalog.TABLES if e.stage == "05_user_study" and f"{e.name}.csv" in names]
    figures = [e.name for e in catalog.FIGURES if e.stage == "05_user_study" and f"{e.name}.png" in names]
    return tables, figures
