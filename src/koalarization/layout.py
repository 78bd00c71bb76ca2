"""Where every stage of the study reads and writes: the one owner of work and results paths and of run identity.

Notebooks and modules ask a `Layout`; none formats a path itself. Paths are relative to the project directory
(the notebooks run there), so nothing machine-specific ends up in `results/`.

    work/<profile>/                      intermediate, never committed
        data/<backbone>-<hash>/          prepared shards with that classifier's cached outputs (stage 1); the hash
                                         is of the data settings, so changed settings prepare a new dataset
        runs/<model>-s<seed>-<hash>/     checkpoints and logs of one training run (stage 2)
        runs.json                        which checkpoint holds each model and seed (stage 2 -> 3, 4, 5)
        eval/<split>/                    per-photo metrics, classes, summaries and the colorized images
                                         (stage 3 -> 4, 5; `EvalFiles`)
        survey/                          the survey set (stage 5)
    results/<profile>/                   the committed study
        tables/<name>.csv|.md   figures/<name>.png|.pdf   notebooks/<stage>.ipynb|.html
        <stage>.json (numbers recorded by each stage)   manifest.json   index.html
    results/<profile>.partial/           where a run of the study writes, renamed to results/<profile> when done

The types of the files that one stage writes and another reads are in `stages.py`.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .stages import RunsIndex, StageRecord

STAGES = ("01_prepare_data", "02_train", "03_evaluate", "04_figures", "05_user_study")
EVAL_SPLITS = ("test", "heldout")


def safe_name(photo_id: str) -> str:
    """A photo id as a file name (ids hold ':' and '/')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", photo_id)[-120:]


@dataclass(frozen=True)
class EvalFiles:
    """The files of one split's evaluation (stage 3), in its folder: a `Layout` gives them for a profile, and
    `koala evaluate --out DIR` for any folder."""

    folder: Path

    @property
    def per_photo(self) -> Path:
        return self.folder / "per_photo.csv"

    @property
    def by_chroma(self) -> Path:
        return self.folder / "by_chroma.csv"

    @property
    def classes(self) -> Path:
        return self.folder / "classes.csv"

    @property
    def prior(self) -> Path:
        return self.folder / "prior.json"

    @property
    def summary(self) -> Path:
        """Means and bootstrap intervals of every model and metric (long format: read by the figures)."""
        return self.folder / "summary_long.csv"

    def image(self, model: str, photo_id: str) -> Path:
        """A colorized photo of a model (or 'truth', 'gray', a baseline), at the photo's stored size."""
        return self.folder / "images" / model / f"{safe_name(photo_id)}.png"


@dataclass(frozen=True)
class SearchFiles:
    """The committed results of the scripts that chose the demo's recipe (read by stage 2, written by scripts/)."""

    folder: Path

    def table(self, name: str) -> Path:
        """<name>.csv: recipes, schedules, schedule_curves, data_scaling, seed_ensemble, fusion_designs, ..."""
        return self.folder / f"{name}.csv"

    def run(self, name: str) -> Path:
        """<name>_run.json: where and how a search ran (machine, versions, date)."""
        return self.folder / f"{name}_run.json"

    def figure(self, name: str) -> Path:
        """<name>.png: a figure a search drew from what only its work folder holds (its networks' colorizations)."""
        return self.folder / f"{name}.png"

    def all(self) -> list[Path]:
        """Every file of the searches (stage 2's inputs: a new search result reruns the stage)."""
        suffixes = (".csv", ".json", ".png")
        return sorted(p for p in self.folder.glob("*") if p.suffix in suffixes) if self.folder.is_dir() else []


@dataclass(frozen=True)
class Layout:
    """Paths of one profile's run. `results_dir` may be a staging folder (results/<profile>.partial)."""

    profile: str
    work_dir: Path
    results_dir: Path

    @classmethod
    def for_profile(cls, profile: str, results_dir: str | Path | None = None,
                    work_dir: str | Path | None = None) -> Layout:
        return cls(profile, Path(work_dir or f"work/{profile}"), Path(results_dir or f"results/{profile}"))

    def staging(self) -> Layout:
        """The same profile writing into results/<profile>.partial: a run of the study writes there, and the folder
        replaces results/<profile> only when every stage has succeeded."""
        return Layout(self.profile, self.work_dir, self.results_dir.with_name(self.results_dir.name + ".partial"))

    def under(self, project_dir: str | Path) -> Layout:
        """The same paths, under a project folder (the study runs notebooks with project-relative paths)."""
        root = Path(project_dir)
        return Layout(self.profile, root / self.work_dir, root / self.results_dir)

    # ---- stage 1: data
    def data_dir(self, backbone: str, data: Any) -> Path:
        """A prepared dataset, named by its classifier and a hash of the data settings (a `DataSettings` or its
        dict, the list of backbones aside): changed settings prepare a new dataset beside the old one."""
        settings = data.model_dump(mode="json") if hasattr(data, "model_dump") else dict(data)
        settings.pop("backbones", None)
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
        return self.work_dir / "data" / f"{backbone}-{digest}"

    # ---- stage 2: training runs
    @property
    def runs_dir(self) -> Path:
        return self.work_dir / "runs"

    def run_dir(self, model: str, seed: int, settings: dict[str, Any]) -> Path:
        """A run folder named by model, seed and a hash of every setting it trains with: a changed setting starts
        a new run instead of resuming an old one."""
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
        return self.runs_dir / f"{model}-s{seed}-{digest}"

    @property
    def runs_index(self) -> Path:
        return self.work_dir / "runs.json"

    @property
    def training_progress(self) -> Path:
        """How far stage 2 has got: runs.train_models rewrites it after every network, and `koala study` reads it to
        say so in the terminal."""
        return self.work_dir / "training_progress.json"

    def write_runs(self, runs: RunsIndex) -> None:
        """Which checkpoint holds each model and seed (`stages.RunsIndex`)."""
        from .stages import write_json_record

        write_json_record(self.runs_index, runs)

    def read_runs(self) -> RunsIndex:
        from .stages import RunsIndex, read_json_record

        return read_json_record(self.runs_index, RunsIndex)

    # ---- stage 3: evaluation
    def eval_dir(self, split: str = "test") -> Path:
        return self.work_dir / "eval" / split

    def eval_files(self, split: str = "test") -> EvalFiles:
        return EvalFiles(self.eval_dir(split))

    def per_photo_csv(self, split: str = "test") -> Path:
        return self.eval_files(split).per_photo

    def scores_csv(self, split: str = "test") -> Path:
        """The per-photo scores of every network on a split, kept with the results (work/ is never committed): a
        reader can re-analyse them without rerunning, and scripts/pool_seed_runs.py can pool runs whose work folders
        are gone."""
        return self.results_dir / "scores" / f"per_photo_{split}.csv"

    def run_scores(self, split: str = "test") -> Path:
        """A finished run's per-photo scores: its work folder's where it still has them, else the copy kept with its
        results."""
        work = self.per_photo_csv(split)
        return work if work.is_file() else self.scores_csv(split)

    def classes_csv(self, split: str = "test") -> Path:
        return self.eval_files(split).classes

    def prediction(self, split: str, model: str, photo_id: str) -> Path:
        """The colorized test photo of a model (or 'truth', 'gray', a baseline)."""
        return self.eval_files(split).image(model, photo_id)

    # ---- stage 5: survey
    @property
    def survey_dir(self) -> Path:
        return self.work_dir / "survey"

    @property
    def responses_csv(self) -> Path:
        return Path("user_study") / "responses" / f"{self.profile}.csv"

    def user_study_data(self) -> list[Path]:
        """The published studies' data that stage 5 re-analyses (user_study/*.csv)."""
        folder = Path("user_study")
        return sorted(folder.glob("*.csv")) if folder.is_dir() else []

    # ---- results
    @property
    def recipe_search_dir(self) -> Path:
        """How the demo's training recipe was chosen (scripts/*_search.py and the others; each run once, committed)."""
        return Path("results") / "recipe_search"

    @property
    def seed_shift_dir(self) -> Path:
        """Reruns of a profile with other seeds and their pooled answers (scripts/pool_seed_runs.py, committed)."""
        return Path("results") / "seed_shift"

    @property
    def seed_shift_table(self) -> Path:
        """The procedure questions answered by a run, a rerun with every seed shifted and both pooled (stage 3)."""
        return self.seed_shift_dir / f"seed_shift_{self.profile}.csv"

    @property
    def checkpoint_choice_table(self) -> Path:
        """The same questions with each network's best and its last checkpoint (scripts/checkpoint_choice.py)."""
        return self.seed_shift_dir / f"checkpoint_choice_{self.profile}.csv"

    @property
    def verdict_stability_table(self) -> Path:
        """How likely each procedure verdict is to survive a rerun, by seeds per procedure (verdict_stability.py)."""
        return self.seed_shift_dir / f"verdict_stability_{self.profile}.csv"

    @property
    def searches(self) -> SearchFiles:
        return SearchFiles(self.recipe_search_dir)

    @property
    def tables_dir(self) -> Path:
        return self.results_dir / "tables"

    @property
    def figures_dir(self) -> Path:
        return self.results_dir / "figures"

    def table(self, name: str) -> Path:
        """Without suffix: the report writes <name>.csv and <name>.md."""
        return self.tables_dir / name

    def table_csv(self, name: str) -> Path:
        return self.tables_dir / f"{name}.csv"

    def figure(self, name: str) -> Path:
        """Without suffix: the report writes <name>.png and <name>.pdf."""
        return self.figures_dir / name

    def figure_png(self, name: str) -> Path:
        """The PNG of a figure (what a screenshot writes, and what a notebook shows)."""
        return self.figures_dir / f"{name}.png"

    def record(self, stage: str) -> Path:
        return self.results_dir / f"{stage}.json"

    @property
    def notebooks_dir(self) -> Path:
        return self.results_dir / "notebooks"

    @property
    def manifest(self) -> Path:
        return self.results_dir / "manifest.json"

    @property
    def index_html(self) -> Path:
        return self.results_dir / "index.html"

    def read_record(self, stage: str) -> StageRecord:
        """A stage's record, checked against its type (`stages.RECORD_TYPES`)."""
        from .stages import RECORD_TYPES, read_json_record

        return read_json_record(self.record(stage), RECORD_TYPES[stage])

    def write_record(self, record: StageRecord) -> None:
        """The key numbers of a stage (tests and the report read them)."""
        from .stages import write_json_record

        write_json_record(self.record(record.stage), record)

    def historical_dir(self, configured: str | None) -> Path | None:
        """The folder of born-gray photos a profile names (`evaluation.historical_dir`), project-relative."""
        return Path(configured) if configured else None
