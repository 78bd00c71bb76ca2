"""Where every stage of the study reads and writes: the one owner of work and results paths and of run identity.

Notebooks and modules ask a `Layout`; none formats a path itself. Paths are relative to the project directory
(the notebooks run there), so nothing machine-specific ends up in `results/`.

    work/<profile>/                      intermediate, never committed
        data/<backbone>-<hash>/          prepared shards with that classifier's cached embeddings (stage 1)
        runs/<model>-s<seed>-<hash>/     checkpoints and logs of one training run (stage 2)
        runs.json                        which run folder holds each model and seed (stage 2 -> 3, 4)
        eval/<split>/                    per-photo metrics, classes and the colorized images (stage 3 -> 4, 5)
        survey/                          the survey set (stage 5)
    results/<profile>/                   the committed study
        tables/<name>.csv|.md   figures/<name>.png|.pdf   notebooks/<stage>.ipynb|.html
        <stage>.json (numbers recorded by each stage)   manifest.json   index.html
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import write_json_atomic

STAGES = ("01_prepare_data", "02_train", "03_evaluate", "04_figures", "05_user_study")
EVAL_SPLITS = ("test", "heldout")


def safe_name(photo_id: str) -> str:
    """A photo id as a file name (ids hold ':' and '/')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", photo_id)[-120:]


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

    def write_runs(self, runs: dict[str, dict[str, Any]]) -> None:
        """runs: {model name: {"backbone", "fusion", "loss", "data_dir", "runs": {seed: run_dir}}}."""
        write_json_atomic(self.runs_index, runs)

    def read_runs(self) -> dict[str, dict[str, Any]]:
        with open(self.runs_index) as handle:
            return json.load(handle)

    # ---- stage 3: evaluation
    def eval_dir(self, split: str = "test") -> Path:
        return self.work_dir / "eval" / split

    def per_photo_csv(self, split: str = "test") -> Path:
        return self.eval_dir(split) / "per_photo.csv"

    def by_chroma_csv(self, split: str = "test") -> Path:
        return self.eval_dir(split) / "by_chroma.csv"

    def classes_csv(self, split: str = "test") -> Path:
        return self.eval_dir(split) / "classes.csv"

    def prediction(self, split: str, model: str, photo_id: str) -> Path:
        """The colorized test photo of a model (or 'truth', 'gray', a baseline)."""
        return self.eval_dir(split) / "images" / model / f"{safe_name(photo_id)}.png"

    # ---- stage 5: survey
    @property
    def survey_dir(self) -> Path:
        return self.work_dir / "survey"

    @property
    def responses_csv(self) -> Path:
        return Path("user_study") / "responses" / f"{self.profile}.csv"

    # ---- results
    @property
    def recipe_search_dir(self) -> Path:
        """How the demo's training recipe was chosen (scripts/recipe_search.py; one run, committed)."""
        return Path("results") / "recipe_search"

    @property
    def tables_dir(self) -> Path:
        return self.results_dir / "tables"

    @property
    def figures_dir(self) -> Path:
        return self.results_dir / "figures"

    def table(self, name: str) -> Path:
        """Without suffix: the report writes <name>.csv and <name>.md."""
        return self.tables_dir / name

    def figure(self, name: str) -> Path:
        """Without suffix: the report writes <name>.png and <name>.pdf."""
        return self.figures_dir / name

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

    def read_record(self, stage: str) -> dict[str, Any]:
        with open(self.record(stage)) as handle:
            return json.load(handle)

    def write_record(self, stage: str, data: dict[str, Any]) -> None:
        """The key numbers of a stage (tests and the report read them)."""
        write_json_atomic(self.record(stage), data)
