"""The contracts between the study's stages, as typed records: what each stage writes, and who reads it.

    file (paths from layout.Layout)       type               written by               read by
    work/<p>/runs.json                    RunsIndex          stage 2 (train_models)   stages 3, 4, 5; scripts
    work/<p>/eval/<split>/per_photo.csv   PerPhotoRow rows   stage 3 (evaluate.run)   stages 3, 4, 5 (survey)
    work/<p>/eval/<split>/classes.csv     ClassesRow rows    stage 3 (evaluate.run)   stage 4 (best/worst cases)
    results/<p>/01_prepare_data.json      PrepareRecord      stage 1                  report page, manifest, tests
    results/<p>/02_train.json             TrainRecord        stage 2                  report page, tests
    results/<p>/03_evaluate.json          EvaluationRecord   stage 3                  page, stage 4, study --compare
    results/<p>/04_figures.json           FiguresRecord      stage 4                  report page, tests
    results/<p>/05_user_study.json        UserStudyRecord    stage 5                  report page, tests

Every record is checked when it is written and when it is read: a missing, misspelt or mistyped key is an error that
names it. Seeds are integers throughout (a JSON round trip keeps them so). A model's role (network, seed ensemble
or baseline; its fusion level, loss and seeds) is a field of `ModelRole`, never read from the spelling of its id.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .atomic import write_csv_atomic, write_json_atomic
from .config import Fusion, Loss, Profile, uses_embedding
from .errors import KoalaError

ModelKind = Literal["network", "ensemble", "baseline"]
Baseline = Literal["gray", "mean_ab"]
BASELINE_LABELS: dict[Baseline, str] = {"gray": "gray input", "mean_ab": "mean a*b* prior"}


class RecordError(KoalaError, ValueError):
    """A stage record or table that does not match its type; the message names the file and the key."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- roles ------------------------------------------------------------------------------------------------------


class ModelRole(_Record):
    """What a model of the evaluation is: the figures, findings and comparisons select models by these fields."""

    id: str
    label: str
    kind: ModelKind
    fusion: Fusion | None = None  # networks and ensembles
    loss: Loss | None = None
    backbone: str | None = None
    seeds: list[int] = []  # a network's training seeds; an ensemble's members
    main: bool = False  # the study's main model (the paper's network), or its ensemble
    of: str | None = None  # an ensemble: the id of the network whose seeds it averages
    baseline: Baseline | None = None


class Roles(_Record):
    """The models of one evaluation, with the questions the study asks of them."""

    models: list[ModelRole]

    def get(self, model_id: str) -> ModelRole:
        for role in self.models:
            if role.id == model_id:
                return role
        raise RecordError(f"no model {model_id!r} among {[r.id for r in self.models]}")

    def ids(self, kind: ModelKind | None = None) -> list[str]:
        return [r.id for r in self.models if kind is None or r.kind == kind]

    def labels(self) -> dict[str, str]:
        return {r.id: r.label for r in self.models}

    def main(self) -> ModelRole:
        return next(r for r in self.models if r.main and r.kind == "network")

    def baseline(self, which: Baseline) -> ModelRole | None:
        return next((r for r in self.models if r.baseline == which), None)

    def ensemble_of(self, network_id: str) -> ModelRole | None:
        return next((r for r in self.models if r.kind == "ensemble" and r.of == network_id), None)

    def networks(self, fusion: str | None = None, loss: str | None = None, backbone: str | None = None
                 ) -> list[ModelRole]:
        """The trained networks with these settings (any, where a setting is None)."""
        return [r for r in self.models if r.kind == "network" and fusion in (None, r.fusion)
                and loss in (None, r.loss) and backbone in (None, r.backbone)]

    def ladder(self) -> list[ModelRole]:
        """The rungs of the dose-response question that this study trained, in order: no classifier, its global
        logits (the paper's), its feature maps too (spatial, else hypercolumn); same classifier and loss as the main
        model."""
        spatial = self.like_main("spatial") or self.like_main("hypercolumn")
        return [r for r in (self.like_main("none"), self.like_main("global"), spatial) if r is not None]

    def spatial(self) -> ModelRole | None:
        """The spatial-fusion network beside the main model (spatial, else hypercolumn), if the study trained one."""
        return self.like_main("spatial") or self.like_main("hypercolumn")

    def like_main(self, fusion: str) -> ModelRole | None:
        """The network that differs from the main model only in its fusion level (same classifier and loss): the
        dose-response ladder none -> global -> spatial."""
        main = self.main()
        if main.fusion == fusion:
            return main
        found = self.networks(fusion=fusion, loss=main.loss, backbone=main.backbone)
        return found[0] if found else None


def roles_of(profile: Profile) -> Roles:
    """The roles of a profile's models: each trained network, a seed ensemble for each network with several seeds
    (its a*b* averaged), and the two baselines."""
    main = profile.evaluation.main_model
    models = [ModelRole(id=b, label=label, kind="baseline", baseline=b) for b, label in BASELINE_LABELS.items()]
    for spec in profile.models:
        network = ModelRole(id=spec.name, label=spec.title, kind="network", fusion=spec.fusion, loss=spec.loss,
                            backbone=spec.backbone, seeds=list(spec.seeds), main=spec.name == main)
        models.append(network)
        if len(spec.seeds) > 1:
            models.append(network.model_copy(update={
                "id": f"{spec.name}_ensemble", "label": f"{spec.title}, {len(spec.seeds)}-seed ensemble",
                "kind": "ensemble", "of": spec.name}))
    return Roles(models=models)


# ---- runs.json ----------------------------------------------------------------------------------------------------


class RunEntry(_Record):
    """One model's training runs: where its data is, and the checkpoint evaluated for each seed."""

    backbone: str
    fusion: Fusion
    loss: Loss
    label: str
    data_dir: str
    checkpoints: dict[int, str]

    @property
    def uses_classifier(self) -> bool:
        return uses_embedding(self.fusion)


class RunsIndex(_Record):
    """work/<profile>/runs.json: which checkpoint holds each model and seed (stage 2 -> 3, 4, 5)."""

    models: dict[str, RunEntry]

    def first_checkpoint(self, model: str) -> str:
        """The checkpoint of the model's lowest seed (the one shown where a figure shows one network)."""
        checkpoints = self.models[model].checkpoints
        return checkpoints[min(checkpoints)]


# ---- stage records ------------------------------------------------------------------------------------------------


class Published(_Record):
    """What a stage published under results/: figure and table names (report.catalog) and other files."""

    figures: list[str] = []
    tables: list[str] = []
    files: list[str] = []


class StageRecord(_Record):
    """The numbers a stage found, with what it published (results/<profile>/<stage>.json)."""

    stage: ClassVar[str]
    profile: str = ""
    published: Published = Published()


class PrepareRecord(StageRecord):
    stage: ClassVar[str] = "01_prepare_data"
    counts: dict[str, int]
    fingerprints: dict[str, str]
    backbones: list[str]
    embedding_shapes: dict[str, list[int]]
    feature_shapes: dict[str, dict[str, list[int]]] = {}
    excluded: int
    duplicates: int
    unreadable_or_too_small: int
    stored_size: int
    letterbox: bool
    train_scale: int
    train_crop: int
    crops_per_photo: int


class TrainingRun(_Record):
    """One model and seed of stage 2: its steps, its best checkpoint, the checkpoint evaluated (the best or the last,
    as the profile's `training.keep` says), against the gray baseline."""

    model: str
    seed: int
    loss: Loss
    fusion: Fusion
    steps: int
    best_step: int
    best_val_loss: float
    evaluated_step: int
    evaluated_val_loss: float
    last_val_loss: float
    last_train_loss: float
    gray_val_loss: float
    gray_train_loss: float
    best_over_gray: float
    precision: str
    backend: str
    seconds_this_run: float


class TrainRecord(StageRecord):
    stage: ClassVar[str] = "02_train"
    runs: list[TrainingRun]
    parameters: dict[str, int]  # trainable parameters of each model's network
    gray_val_loss: float
    gray_train_loss: float
    train_scale: int
    train_crop: int
    batch_size: int
    steps: int
    precision: str
    backend: str
    seconds: float  # the networks' training times added up; the stage's wall time is in the study's manifest
    runs_at_once: int = 1  # networks trained side by side (`training.parallel_runs`)


class Comparison(_Record):
    """What every comparison of two models says: the difference a - b with its interval, the test's p-value before
    and after the Holm adjustment over its family, and the verdict that the adjusted p allows."""

    split: str
    metric: str
    label: str
    model_a: str
    model_b: str
    mean_a: float
    mean_b: float
    mean_diff: float
    diff_ci_low: float
    diff_ci_high: float
    p_value: float
    higher_is_better: bool | None
    alpha: float
    family_size: int
    p_holm: float
    verdict: str
    interval_vs_test: str = ""


class PairedComparison(Comparison):
    """Two models on the same photos (each model's seeds averaged per photo): a Wilcoxon signed-rank test with a
    bootstrap interval of the mean difference, Holm-adjusted over its family. About the networks at hand."""

    n: int
    wilcoxon_statistic: float
    rank_biserial: float
    cohens_dz: float
    mdd: float


class ProcedureComparison(Comparison):
    """Two training procedures, each trained with several seeds, on the same photos: the seed is a random factor
    beside the photo (`evaluate.procedures`). About the procedures, not the networks at hand."""

    seeds_a: list[int]
    seeds_b: list[int]
    n_photos: int
    se: float
    se_seed: float
    se_photo: float
    df: float


Verdict = Literal["a better", "b better", "a higher", "b higher", "no evidence", "not tested"]


class Rerun(_Record):
    """One rerun's answer to a procedure question (the same photos; other seeds, or this run's seeds trained on
    another machine or commit, which gives other networks too)."""

    seeds: list[int]
    verdict: Verdict
    mean_diff: float
    p_holm: float
    same_seeds: bool = False  # this run's seeds, another run's networks (another CPU's precision, another commit)


class VerdictReplication(_Record):
    """One procedure question asked again: this run's verdict beside those of one or more reruns (other seeds, or the
    same seeds on another machine) and of the record's runs' seeds pooled (`evaluate.replication`, from the record
    `scripts/pool_seed_runs.py` writes)."""

    model_a: str
    model_b: str
    metric: str
    label: str
    seeds_here: list[int]
    verdict_here: Verdict
    reruns: list[Rerun]
    seeds_pooled: list[int]
    verdict_pooled: Verdict
    pooled_diff: float
    pooled_ci_low: float
    pooled_ci_high: float
    pooled_p_holm: float
    held: bool  # every rerun reached this run's verdict
    recorded_from_this_run: bool  # the record's run with this run's seeds has this run's numbers
    p_confirm: float | None = None  # simulated chance that a rerun confirms this verdict (evaluate.stability)


class VerdictStability(_Record):
    """How likely the procedure verdicts are to survive a rerun with other seeds, simulated from the spread of every
    network the reruns trained (`evaluate.stability`; results/seed_shift/verdict_stability_<profile>.csv)."""

    procedures: list[str]  # the models whose seeds a design lists, in its order
    design: str  # this profile's seeds per procedure, e.g. "3/3/3/3"
    networks: int
    every_same: float  # the chance that a rerun gives every procedure verdict the same
    best_other_design: str  # the most stable other way to spread as many networks ("" where there is none)
    best_other_same: float | None
    largest_design: str  # the most seeds per procedure simulated
    largest_same: float
    source: str


class EvaluationRecord(StageRecord):
    stage: ClassVar[str] = "03_evaluate"
    main_model: str
    roles: Roles
    n_test: int
    n_heldout: int
    means: dict[str, dict[str, dict[str, float]]]  # split -> model -> metric -> mean over photos
    error_by_chroma: list[dict[str, float | str]]
    comparisons: list[PairedComparison]
    procedures: list[ProcedureComparison] = []
    family: str
    family_size: int
    procedure_family: str = ""
    replication: list[VerdictReplication] = []
    replication_source: str = ""  # the record read (results/seed_shift/seed_shift_<profile>.csv); "" where none
    stability: VerdictStability | None = None


class FiguresRecord(StageRecord):
    stage: ClassVar[str] = "04_figures"
    main_model: str
    shown: list[str] = []  # the models shown beside the inputs and the truth in the comparison grids


class UserStudyRecord(StageRecord):
    """Stage 5: the survey built (its design and pre-registered exclusion rule), this study's answers if any (over
    people and photos), the machine baseline, the published studies re-read, and sentences for the report page.
    Written by `survey.stage.user_study_record`; percentages are 0-100, NaN where there is nothing to compute."""

    stage: ClassVar[str] = "05_user_study"
    survey_built: bool
    test_photos: int
    survey_images: int  # images one participant sees (colorized + real + catch)
    short_side: int
    selection: str
    metric: str
    has_responses: bool
    message: str
    conditions: list[str] = Field(default=[], description="the models judged, the reference first")
    n_catch: int = 0
    exclusion_rule: str = ""
    target_participants: int = 0
    participants: int = 0  # answering and kept
    excluded_participants: int = 0
    missing_answers: int = 0
    fooling: dict[str, dict[str, float]] = Field(default={}, description="per condition: pooled_pct, two_way_low_pct, "
                                                 "two_way_high_pct, mixed_pct, mixed_low_pct, mixed_high_pct")
    condition_differences: list[dict[str, Any]] = []
    baseline_auc_pct: float | None = None
    baseline_participants_accuracy_pct: float | None = None
    reanalysis: dict[str, float] = Field(default={}, description="the published studies re-read (see findings)")
    verdicts_follow: str = ""
    findings: list[str] = Field(default=[], description="plain-text sentences for the report page, written from "
                                                        "the numbers by the survey package")


RECORD_TYPES: dict[str, type[StageRecord]] = {t.stage: t for t in (PrepareRecord, TrainRecord, EvaluationRecord,
                                                                    FiguresRecord, UserStudyRecord)}
R = TypeVar("R", bound=_Record)


def write_json_record(path: str | Path, record: _Record) -> None:
    """A record as JSON, written atomically (NaN stays NaN, as Python's json writes it)."""
    write_json_atomic(path, record.model_dump(mode="python"))


def read_json_record(path: str | Path, kind: type[R]) -> R:
    """A record from JSON, checked against its type; an error names the file and the key."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise RecordError(f"{path}: missing (run the stage that writes it)") from None
    except ValueError as error:
        raise RecordError(f"{path}: not JSON ({error})") from None
    try:
        return kind.model_validate(data)
    except ValidationError as error:
        raise RecordError(f"{path}: {_problems(error)}") from None


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(record)'}: {e['msg']}" for e in error.errors())


# ---- per-photo tables ---------------------------------------------------------------------------------------------


class PerPhotoRow(_Record):
    """One model (and seed: None for a baseline or an ensemble) on one photo: every metric of evaluate.metrics."""

    model: str
    seed: int | None
    photo_id: str
    mse_ab: float
    psnr: float
    ssim: float
    ciede2000: float
    auc_ab: float
    colorfulness: float
    colorfulness_gap: float
    ab_std_ratio: float  # NaN for a colorless truth


class ClassesRow(_Record):
    """The classifier's top-3 ImageNet classes of one colorless photo, for one prepared dataset."""

    photo_id: str
    data_dir: str
    class_1: str
    prob_1: float
    class_2: str
    prob_2: float
    class_3: str
    prob_3: float


def write_rows(path: str | Path, rows: list[R]) -> pd.DataFrame:
    """Rows of one type as a CSV, written atomically; returns the table (seeds as nullable integers)."""
    kind = type(rows[0]) if rows else None
    frame = pd.DataFrame([row.model_dump() for row in rows], columns=list(kind.model_fields) if kind else None)
    if "seed" in frame:
        frame["seed"] = frame["seed"].astype("Int64")
    write_csv_atomic(frame, path)
    return frame


def read_rows(path: str | Path, kind: type[R]) -> pd.DataFrame:
    """A CSV whose rows must be of `kind`: a missing column, an unknown one or a bad value is an error naming it.
    Seeds come back as nullable integers (<NA> for baselines and ensembles)."""
    try:
        frame = pd.read_csv(path, keep_default_na=True, dtype={"photo_id": str, "model": str})
    except FileNotFoundError:
        raise RecordError(f"{path}: missing (run the stage that writes it)") from None
    expected = list(kind.model_fields)
    missing, unknown = sorted(set(expected) - set(frame)), sorted(set(frame) - set(expected))
    if missing or unknown:
        raise RecordError(f"{path}: columns {'missing: ' + ', '.join(missing) if missing else ''}"
                          f"{'; ' if missing and unknown else ''}{'unknown: ' + ', '.join(unknown) if unknown else ''}")
    # pandas reads an integer column with gaps as floats with NaN: a missing seed is None (a baseline or an ensemble)
    records = [{k: (None if k == "seed" and _missing(v) else v) for k, v in row.items()}
               for row in frame[expected].to_dict("records")]
    try:
        TypeAdapter(list[kind]).validate_python(records)  # type: ignore[valid-type]
    except ValidationError as error:
        raise RecordError(f"{path}: {_problems(error)}") from None
    if "seed" in frame:
        frame["seed"] = frame["seed"].astype("Int64")
    return frame[expected]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
