"""The study's settings, typed and validated in one place.

A profile (`profiles/ci.json`, `demo.json`, `paper.json`, or any JSON file of the same shape) is loaded once into a
`Profile`; every notebook, CLI default and function default comes from these classes, so settings cannot drift
apart. An unknown or misspelt key is an error that names it, and so is a value of the wrong type.

    from koalarization.config import load_profile
    profile = load_profile("demo", overrides={"training.steps": 100})
"""
from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import KoalaError
from .evaluate.metrics import MetricName

PROFILE_NAMES = ("ci", "demo", "paper")

# Where the frozen classifier's knowledge enters the network (DESIGN.md section 7):
#   none         the ablation: no classifier at all
#   global       the paper's fusion: the 1000 logits tiled over the H/8 grid, before the 1x1 fusion convolution
#   spatial      global, plus the classifier's stride-8, -16 and -32 feature maps resized to H/8 and fused there
#   hypercolumn  spatial, plus the stride-8 maps fed to the decoder again at H/4 and H/2
Fusion = Literal["none", "global", "spatial", "hypercolumn"]
FUSIONS: tuple[str, ...] = get_args(Fusion)
Loss = Literal["mse", "rebalanced", "distance"]
LOSSES: tuple[str, ...] = get_args(Loss)


def uses_embedding(fusion: str) -> bool:
    """Whether a network of this fusion takes the classifier's global embedding."""
    return fusion != "none"


def uses_feature_maps(fusion: str) -> bool:
    """Whether a network of this fusion takes the classifier's spatial feature maps."""
    return fusion in ("spatial", "hypercolumn")


# The classifier's feature maps a spatial network takes, named by their stride in the classifier's input.
FEATURE_LEVELS = ("s8", "s16", "s32")


def input_names(fusion: str) -> list[str]:
    """The named inputs of a network of this fusion level, in order: what the input pipelines must provide."""
    names = ["l"]
    if uses_embedding(fusion):
        names.append("embedding")
    if uses_feature_maps(fusion):
        names += list(FEATURE_LEVELS)
    return names


def as_fusion(value: Any) -> Any:
    """Profiles and checkpoints written before the spatial models said `fusion: true/false`."""
    if value is True:
        return "global"
    if value is False:
        return "none"
    return value


class ProfileError(KoalaError, ValueError):
    """A profile that cannot be read or does not validate; the message names the key."""


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Settings):
    """Photos -> prepared shards (`koala prepare`)."""

    sources: list[str] = Field(description="photo sources: samples | system[?kinds=..] | folder:PATH | imagenet:PATH")
    heldout: list[str] = Field(default=[], description="photo-id prefixes kept out of training and validation "
                                                       "entirely: the source-held-out test set")
    backbones: list[str] = Field(description="one prepared dataset (cached embeddings) per classifier")
    short_side: int = Field(256, ge=8, description="stored photos: short side in pixels (aspect kept)")
    letterbox_size: int | None = Field(None, ge=8, description="the paper's white letterbox to a square")
    train_scale: int = Field(224, ge=8, description="short side the network works at, in training and colorizing")
    train_crop: int = Field(224, ge=8, description="training crop side, at train_scale")
    crops_per_photo: int = Field(0, ge=0, description="cached training crops per photo, each with its own "
                                                      "embedding (0: random crops with the whole photo's embedding)")
    feature_maps: bool = Field(False, description="also cache the classifier's stride-8, -16 and -32 feature maps "
                                                  "of every stored photo and crop (spatial fusion needs them; about "
                                                  "140 kB per image for EfficientNet-Lite0, 1.6 MB for "
                                                  "Inception-ResNet-v2)")
    min_side: int | None = Field(None, ge=1, description="photos with a shorter side are skipped "
                                                            "(default: the training crop)")
    max_photos: int | None = Field(None, ge=3, description="use at most this many photos (first by id)")
    shard_size: int = Field(64, ge=1)
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0

    @field_validator("train_crop", "train_scale")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        if value % 8:
            raise ValueError(f"must be a multiple of 8 (the network downsamples 8x), got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DataSettings:
        if self.train_crop > self.train_scale:
            raise ValueError(f"train_crop {self.train_crop} is larger than train_scale {self.train_scale}")
        stored = self.letterbox_size or self.short_side
        if stored < self.train_scale:
            raise ValueError(f"stored photos ({stored} px) are smaller than train_scale {self.train_scale}")
        if abs(sum(self.split_fractions) - 1) > 1e-6 or min(self.split_fractions) < 0:
            raise ValueError(f"split_fractions must be >= 0 and sum to 1, got {self.split_fractions}")
        return self

    @property
    def minimum_side(self) -> int:
        return self.min_side if self.min_side is not None else self.train_crop


class ModelSpec(_Settings):
    """One trained model of the study."""

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    backbone: str
    fusion: Fusion = Field("global", description="where the classifier's knowledge enters: none, global (the "
                                                 "paper's), spatial or hypercolumn (see config.Fusion)")
    loss: Loss = Field("mse", description="mse: the paper's; rebalanced: each pixel weighted by the rarity of its "
                                          "a*b* (Zhang 2016); distance: the a*b* error's length, not its square")
    map_dropout: float = Field(0.0, ge=0, lt=1, description="spatial and hypercolumn: the fraction of the "
                                                          "classifier's map channels dropped per image in training")
    seeds: list[int] = Field(default=[0], min_length=1)
    label: str = ""

    @field_validator("fusion", mode="before")
    @classmethod
    def _fusion_from_bool(cls, value: Any) -> Any:
        return as_fusion(value)

    @model_validator(mode="after")
    def _dropout_needs_maps(self) -> ModelSpec:
        if self.map_dropout and not uses_feature_maps(self.fusion):
            raise ValueError(f"model {self.name}: map_dropout needs fusion spatial or hypercolumn, not {self.fusion}")
        return self

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct, got {value}")
        return value

    @property
    def title(self) -> str:
        return self.label or self.name


class TrainingSettings(_Settings):
    """`koala train`: the paper's optimizer and loss, checkpointed and resumable."""

    batch_size: int = Field(100, ge=1)
    steps: int = Field(ge=1)
    checkpoint_every: int = Field(100, ge=1, description="also how often validation loss is measured")
    learning_rate: float = Field(1e-3, gt=0, description="Adam's learning rate (the peak, under a schedule)")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="constant (the paper) or cosine decay to zero over `steps` after a linear warm-up")
    warmup_steps: int = Field(0, ge=0, description="cosine: steps of linear warm-up from zero")
    weight_average: float = Field(0.0, ge=0, lt=1, description="momentum of an exponential moving average of the "
                                  "weights, which replaces them at every checkpoint (0: off, the paper)")
    mixed_precision: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    keep: Literal["best", "last"] = Field("best", description="the checkpoint evaluated: lowest validation loss, "
                                                               "or the last step")
    validation_batches: int | None = Field(None, ge=1)
    rebalance_lambda: float = Field(0.5, ge=0, le=1, description="rebalanced loss: mix of the a*b* prior with "
                                                                  "a uniform one (Zhang et al. use 0.5)")
    parallel_runs: int | Literal["auto"] = Field(1, description="stage 2: networks trained at once, each in its own "
                                                 "process on its share of the cores (auto: see runs.runs_at_once)")

    @field_validator("parallel_runs")
    @classmethod
    def _at_least_one(cls, value: int | str) -> int | str:
        if value != "auto" and int(value) < 1:
            raise ValueError("parallel_runs is a number of networks trained at once (1 or more) or 'auto'")
        return value


class EvaluationSettings(_Settings):
    main_model: str
    historical_dir: str | None = None
    reproducibility_tolerance: float = Field(0.05, gt=0)


class SurveySettings(_Settings):
    """The user study (notebook 05, `koala survey build`; the CLI's defaults come from here): which photos, how they
    are shown, which models are judged, the pre-registered exclusion rule and the sample the limits are sized for."""

    selection: Literal["best", "random"] = "best"
    metric: MetricName = Field("ciede2000", description="ranks photos for `best`, in the metric's own direction")
    n_fake: int = Field(9, ge=1)
    n_real: int = Field(3, ge=1)
    short_side: int = Field(256, ge=32, description="images are shown full frame at this short side")
    seed: int = 0
    conditions: list[str] = Field(default=[], description="model ids judged in one survey by the same people, "
                                  "balanced over participants (empty: evaluation.main_model alone)")
    n_catch: int = Field(0, ge=0, description="attention checks per participant: photos with an absurd colouring")
    catch_max_real: int = Field(0, ge=0, description="pre-registered exclusion: a participant who calls more than "
                                "this many catch images real is excluded from the analysis")
    target_participants: int = Field(60, ge=1, description="the sample the study aims for; the server's caps and "
                                     "rate limits are sized from it")
    exposure_ms: int | None = Field(None, ge=50, le=600_000, description="hide each photo after this many ms "
                                    "(enforced by the server); None: no limit, as in the paper")

    @model_validator(mode="after")
    def _consistent(self) -> SurveySettings:
        from .evaluate.metrics import METRICS

        if self.selection == "best" and METRICS[self.metric].higher_is_better is None:
            raise ValueError(f"survey.metric {self.metric!r} has no better direction: `best` needs one (ciede2000, "
                             "psnr, ssim, auc_ab or mse_ab)")
        if len(set(self.conditions)) != len(self.conditions):
            raise ValueError(f"survey.conditions must be distinct model ids, not {self.conditions}")
        if self.n_catch and self.catch_max_real >= self.n_catch:
            raise ValueError(f"survey.catch_max_real ({self.catch_max_real}) must be below n_catch ({self.n_catch})")
        return self


class Profile(_Settings):
    profile: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str
    data: DataSettings
    models: list[ModelSpec] = Field(min_length=1)
    training: TrainingSettings
    evaluation: EvaluationSettings
    survey: SurveySettings = SurveySettings()

    @model_validator(mode="after")
    def _models_match(self) -> Profile:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        if self.evaluation.main_model not in names:
            raise ValueError(f"evaluation.main_model {self.evaluation.main_model!r} is not one of the models {names}")
        for model in self.models:
            if model.backbone not in self.data.backbones:
                raise ValueError(f"model {model.name!r} uses backbone {model.backbone!r}, which data.backbones "
                                 f"{self.data.backbones} does not prepare")
            if uses_feature_maps(model.fusion):
                self._check_feature_maps(model)
        unknown = [c for c in self.survey.conditions if c not in names]
        if unknown:
            raise ValueError(f"survey.conditions {unknown} are not models of this profile ({names})")
        return self

    def _check_feature_maps(self, model: ModelSpec) -> None:
        """A spatial model trains on cached feature maps that must cover exactly the crop the encoder sees."""
        data = self.data
        if not data.feature_maps:
            raise ValueError(f"model {model.name!r} fuses feature maps ({model.fusion}): set data.feature_maps "
                             f"to true so that preparation caches them")
        whole_photo = data.letterbox_size is not None and data.train_crop == data.train_scale
        if data.crops_per_photo == 0 and not whole_photo:
            raise ValueError(f"model {model.name!r} fuses feature maps ({model.fusion}): they are cached for the "
                             f"cached crops (data.crops_per_photo > 0) or for whole letterboxed photos "
                             f"(train_crop equal to train_scale), not for random crops")

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    def section(self, *names: str) -> dict[str, Any]:
        """The named top-level sections as plain data: what a stage's reuse key hashes."""
        dumped = self.model_dump(mode="json")
        return {name: dumped[name] for name in names}


def _apply_overrides(raw: dict, overrides: dict[str, Any]) -> dict:
    """{"training.steps": 10, ...} -> a copy of raw with those dotted keys replaced (each must exist)."""
    raw = json.loads(json.dumps(raw))
    for dotted, value in (overrides or {}).items():
        node, keys = raw, dotted.split(".")
        for key in keys[:-1]:
            if not isinstance(node, dict) or key not in node:
                raise ProfileError(f"override {dotted!r}: no section {key!r} in the profile")
            node = node[key]
        if not isinstance(node, dict):
            raise ProfileError(f"override {dotted!r}: {keys[-2]!r} is not a section")
        node[keys[-1]] = value
    return raw


def read_profile_json(name_or_path: str) -> dict:
    """The raw JSON of a profile name (ci, demo, paper) or of a JSON file path."""
    if name_or_path in PROFILE_NAMES or not os.path.exists(name_or_path):
        try:
            text = resources.files("koalarization").joinpath(f"profiles/{name_or_path}.json").read_text()
        except (FileNotFoundError, OSError):
            raise ProfileError(f"unknown profile {name_or_path!r}: use one of {', '.join(PROFILE_NAMES)} "
                               f"or the path of a JSON file") from None
    else:
        with open(name_or_path) as handle:
            text = handle.read()
    try:
        return json.loads(text)
    except ValueError as error:
        raise ProfileError(f"profile {name_or_path!r} is not valid JSON: {error}") from None


def load_profile(name_or_path: str, overrides: dict[str, Any] | None = None) -> Profile:
    """Load, override and validate a profile. Errors name the offending key."""
    raw = _apply_overrides(read_profile_json(name_or_path), overrides or {})
    try:
        return Profile.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(profile)'}: {e['msg']}"
                             for e in error.errors())
        raise ProfileError(f"profile {name_or_path!r}: {problems}") from None


def model_seeds(name_or_path: str, overrides: dict[str, Any] | None = None, count: int | None = None,
                shift: int = 0) -> list[dict[str, Any]]:
    """The profile's models with `count` seeds each (0 .. count-1; default: each model's own) moved by `shift`: the
    `models` override of `koala study --seeds N --shift-seeds M` (more seeds per procedure, or a rerun with other
    seeds: do the procedure verdicts hold?)."""
    if count is not None and count < 1:
        raise ProfileError(f"every model needs at least 1 seed, not {count}")
    profile = load_profile(name_or_path, overrides)
    return [{**model.model_dump(mode="json"),
             "seeds": [seed + shift for seed in (range(count) if count is not None else model.seeds)]}
            for model in profile.models]


def parse_override(text: str) -> tuple[str, Any]:
    """'training.steps=10' -> ("training.steps", 10); the value is JSON when it parses, else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ProfileError(f"override {text!r}: expected KEY=VALUE, e.g. training.steps=100")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value
