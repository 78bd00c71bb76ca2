"""Stage 5 (notebook 05_user_study) as package functions: build the profile's survey from the evaluation's photos,
and turn the tabulation into the stage's typed record with sentences for the report page.

The notebook calls these and shows what they return; it formats no path and builds no record by hand.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Profile
from ..errors import KoalaError
from ..evaluate.run import read_per_photo, survey_candidates
from ..layout import Layout
from ..stages import UserStudyRecord
from .build import build_survey, condition_candidates
from .files import DEFAULT_DB, MANIFEST_JSON
from .mixed import photos_needed
from .published import reanalysis_sentences
from .tabulate import UserStudyTables

VERDICTS = ("two-way bootstrap over participants and photos (Owen 2007), Holm-adjusted within each family of tests; "
            "the mixed logistic model is reported beside it")


def survey_conditions(profile: Profile) -> list[str]:
    """The models the survey judges: `survey.conditions`, else the main model alone; each must be a model of the
    profile (an error names the unknown ones)."""
    conditions = list(profile.survey.conditions) or [profile.evaluation.main_model]
    known = [model.name for model in profile.models]
    unknown = [c for c in conditions if c not in known]
    if unknown:
        raise KoalaError(f"survey.conditions {unknown} are not models of profile {profile.profile!r} ({known})")
    return conditions


@dataclass
class BuiltSurvey:
    """What stage 5 built: the manifest (None when the run has too few test photos), and why not."""

    manifest: dict[str, Any] | None
    available: int
    needed: int
    note: str

    @property
    def per_participant(self) -> int:
        if self.manifest is None:
            return 0
        return int(self.manifest["n_fake"] + self.manifest["n_real"] + self.manifest["n_catch"])


def kept_survey(survey_dir: Path) -> dict[str, Any] | None:
    """The manifest of a survey that people have answered (its answers database exists): such a survey is the one
    in the field, so it is kept as it is and tabulated, never rebuilt (None where there is none)."""
    if not (survey_dir / DEFAULT_DB).exists() or not (survey_dir / MANIFEST_JSON).exists():
        return None
    with open(survey_dir / MANIFEST_JSON) as handle:
        return json.load(handle)


def build_stage_survey(profile: Profile, paths: Layout) -> BuiltSurvey:
    """The profile's survey from the test split's evaluation, in `paths.survey_dir` (replaced), unless the survey
    there holds answers: that one is kept, and its answers are what stage 5 tabulates."""
    settings, conditions = profile.survey, survey_conditions(profile)
    needed = settings.n_fake + settings.n_real + settings.n_catch
    kept = kept_survey(Path(paths.survey_dir))
    if kept is not None:
        return BuiltSurvey(kept, needed, needed, f"Survey {kept['survey_id']} kept as it is: people have answered it "
                                                 f"(it is not rebuilt while its answers database is there).")
    files = paths.eval_files("test")
    per_photo = read_per_photo(files)
    candidates = condition_candidates({model: survey_candidates(per_photo, model, files) for model in conditions})
    available = int(candidates["photo_id"].nunique())
    if available < needed:
        return BuiltSurvey(None, available, needed,
                           f"No survey built: the protocol shows {needed} different test photos ({settings.n_fake} "
                           f"colorized, {settings.n_real} real, {settings.n_catch} catch) and this run has "
                           f"{available}.")
    manifest = build_survey(
        candidates, paths.survey_dir, selection=settings.selection, metric=settings.metric, n_fake=settings.n_fake,
        n_real=settings.n_real, seed=settings.seed, short_side=settings.short_side, overwrite=True,
        conditions=conditions, n_catch=settings.n_catch, catch_max_real=settings.catch_max_real,
        target_participants=settings.target_participants, exposure_ms=settings.exposure_ms)
    return BuiltSurvey(manifest, available, needed, f"Survey {manifest['survey_id']} built: {manifest['design']}.")


def manifest_summary(built: BuiltSurvey) -> pd.Series:
    """The survey's design in one column, for the notebook."""
    manifest = built.manifest or {}
    return pd.Series({
        "survey": manifest.get("survey_id"), "conditions": ", ".join(manifest.get("conditions", [])),
        "colorized per participant": manifest.get("n_fake"), "real": manifest.get("n_real"),
        "catch (attention checks)": manifest.get("n_catch"),
        "selection": f"{manifest['selection']['rule']} by {manifest['selection']['metric']}" if manifest else None,
        "exclusion rule (pre-registered)": manifest.get("exclusion", {}).get("rule"),
        "target participants": manifest.get("target_participants"),
        "image size (px)": "x".join(map(str, manifest["encoding"]["canvas"])) if manifest else None,
    }, name="survey")


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and isinstance(value, (int, float)) and math.isfinite(value) else None


def user_study_record(profile: Profile, built: BuiltSurvey, tables: UserStudyTables) -> UserStudyRecord:
    """The stage's record, with the findings written from the numbers."""
    settings = profile.survey
    fooling = {} if tables.generalization.empty else {
        str(row["condition"]): {k: float(row[k]) for k in ("pooled_pct", "two_way_low_pct", "two_way_high_pct",
                                                            "mixed_pct", "mixed_low_pct", "mixed_high_pct")}
        for _, row in tables.generalization.iterrows()}
    baseline = tables.baseline
    return UserStudyRecord(
        survey_built=built.manifest is not None, test_photos=built.available, survey_images=built.per_participant,
        short_side=settings.short_side, selection=settings.selection, metric=settings.metric,
        has_responses=tables.has_responses, message=tables.message,
        conditions=(built.manifest or {}).get("conditions", survey_conditions(profile)), n_catch=settings.n_catch,
        exclusion_rule=tables.exclusion_rule if tables.has_responses else (built.manifest or {}).get(
            "exclusion", {}).get("rule", ""),
        target_participants=settings.target_participants,
        participants=int(tables.overall["participants"].max()) if tables.has_responses else 0,
        excluded_participants=len(tables.excluded), missing_answers=int(tables.missing["missing_answers"].sum()),
        fooling=fooling, condition_differences=tables.conditions.to_dict("records"),
        baseline_auc_pct=_finite(baseline["auc_pct"].mean()) if len(baseline) else None,
        baseline_participants_accuracy_pct=_finite(baseline["participants_accuracy_pct"].mean()) if len(
            baseline) else None,
        reanalysis=_reanalysis_numbers(tables), verdicts_follow=VERDICTS, findings=findings(tables, built))


def _reanalysis_numbers(tables: UserStudyTables) -> dict[str, float]:
    if tables.published is None:
        return {}
    studies = tables.published.studies.set_index(["study", "photos"])
    numbers = {}
    for (study, kind), key in ((("paper (2017)", "colorized"), "paper"),
                               (("PyTorch replication (2022)", "colorized"), "replication"),
                               (("PyTorch replication (2022)", "real"), "replication_real")):
        for column in ("pooled_pct", "photo_mean_pct", "photo_low_pct", "photo_high_pct"):
            numbers[f"{key}_{column}"] = float(studies.loc[(study, kind), column])
    numbers["difference_points"] = float(tables.published.difference["difference_points"].iloc[0])
    numbers["difference_welch_p"] = float(tables.published.difference["p_value"].iloc[0])
    missing = tables.published.missing
    numbers["replication_missing_as_fake_pct"] = float(missing["judged_real_pct"].iloc[0])
    numbers["replication_of_given_pct"] = float(missing["judged_real_pct"].iloc[1])
    return numbers


def findings(tables: UserStudyTables, built: BuiltSurvey) -> list[str]:
    """Plain sentences for the report page: this study's answers (when any), the conditions' verdict, the machine
    baseline, the published studies re-read, and what a next study needs."""
    out = _answer_sentences(tables)
    if len(tables.baseline):
        auc = tables.baseline["auc_pct"].mean()
        people = tables.baseline["participants_accuracy_pct"].mean()
        beside = (f"; participants were right on {people:.0f}% of the same photos" if math.isfinite(people)
                  else "; participants' accuracy will stand beside it once people have answered")
        out.append(f"A one-line machine baseline (the correlation of lightness edges with colour edges) ranks a "
                   f"random real survey photo above a random colorized one {auc:.0f}% of the time (50% is chance)"
                   f"{beside}.")
    if tables.published is not None:
        out += reanalysis_sentences(tables.published)
    basis = tables.sample_basis
    if basis:
        out.append(f"From {basis['source']}: a ±5-point interval on a fooling rate near 46% needs at least "
                   f"{photos_needed(basis['p'], basis['sd_photo'])} photos however many people answer; 60 people on "
                   f"9 photos give ±{tables.precision.set_index('participants').loc[60, '9 photos']:.0f} points.")
    return out


def _answer_sentences(tables: UserStudyTables) -> list[str]:
    if not tables.has_responses:
        return []
    out = []
    for _, row in tables.generalization.iterrows():
        out.append(f"{row['condition']}: colorized photos judged real {row['pooled_pct']:.1f}% of the time, 95% "
                   f"interval {row['two_way_low_pct']:.1f} to {row['two_way_high_pct']:.1f}% over participants and "
                   f"photos ({row['wilson_low_pct']:.1f} to {row['wilson_high_pct']:.1f}% if answers were "
                   "independent).")
    if len(tables.excluded):
        out.append(f"{len(tables.excluded)} participant(s) were excluded by the pre-registered rule: "
                   f"{tables.exclusion_rule}")
    for _, row in tables.conditions.iterrows():
        out.append(f"{row['verdict'][0].upper()}{row['verdict'][1:]}: {row['difference_points']:+.1f} points, 95% "
                   f"interval {row['two_way_low']:.1f} to {row['two_way_high']:.1f}, Holm-adjusted p = "
                   f"{row['holm_p']:.3g} (two-way bootstrap).")
    return out
