"""Stage 2 as package code: train every model and seed of a profile, index the checkpoints (`stages.RunsIndex`), and
say what stage 2 records about them (`stages.TrainRecord`): steps, best checkpoint, losses against the gray
baseline, parameter counts, time."""
from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from . import checkpoint
from .config import Profile
from .layout import Layout
from .progress import write_progress
from .stages import RunEntry, RunsIndex, TrainingRun, TrainRecord

log = logging.getLogger(__name__)


def train_models(profile: Profile, layout: Layout, verbose: Any = 2) -> tuple[RunsIndex, dict[tuple[str, int], float]]:
    """Train (or reuse, or resume) every model and seed of the profile; -> (the runs index, written to
    `layout.runs_index`; seconds spent per (model, seed) in this call)."""
    from .data.prepare import load_manifest
    from .train import train, training_config

    models: dict[str, RunEntry] = {}
    seconds: dict[tuple[str, int], float] = {}
    total = sum(len(spec.seeds) for spec in profile.models)
    write_progress(layout.training_progress, total, seconds, "")
    for spec in profile.models:
        data_dir = layout.data_dir(spec.backbone, profile.data)
        manifest = load_manifest(str(data_dir))
        checkpoints = {}
        for seed in spec.seeds:
            settings = training_config(manifest, profile.training, spec.fusion, spec.loss, seed, spec.map_dropout)
            run_dir = layout.run_dir(spec.name, seed, settings)
            log.info("== %s, seed %d -> %s", spec.name, seed, run_dir)
            started = time.time()
            checkpoints[seed] = train(str(data_dir), str(run_dir), profile.training, fusion=spec.fusion,
                                      loss=spec.loss, seed=seed, verbose=verbose, map_dropout=spec.map_dropout)
            seconds[(spec.name, seed)] = time.time() - started
            write_progress(layout.training_progress, total, seconds, f"{spec.name} seed {seed}")
        models[spec.name] = RunEntry(backbone=spec.backbone, fusion=spec.fusion, loss=spec.loss, label=spec.title,
                                     data_dir=str(data_dir), checkpoints=checkpoints)
    runs = RunsIndex(models=models)
    layout.write_runs(runs)
    return runs, seconds


def gray_losses(runs: RunsIndex, profile: Profile) -> tuple[float, float]:
    """The validation and training loss of predicting a*b* = 0 (center crops at the training scale): the floor a
    colorizer must beat."""
    from .data.batches import evaluation_arrays
    from .train import gray_baseline_loss

    data_dir = runs.models[profile.evaluation.main_model].data_dir
    val, train = (gray_baseline_loss(evaluation_arrays(data_dir, split, profile.data.train_scale,
                                                       profile.data.train_crop, fusion="none")[1])
                  for split in ("validation", "train"))
    return val, train


def training_runs(runs: RunsIndex, layout: Layout, gray: tuple[float, float],
                  seconds: dict[tuple[str, int], float]) -> tuple[list[TrainingRun], pd.DataFrame]:
    """One typed row per model and seed (best step and loss, the evaluated checkpoint's, last losses, against
    gray), and every run's log (the training curves)."""
    from .train import read_log

    rows, histories = [], []
    for name, entry in runs.models.items():
        for seed, path in entry.checkpoints.items():
            config = checkpoint.read_config(path)
            log_table = read_log(str(layout.run_dir(name, seed, config["training"])))
            histories.append(log_table.assign(model=name, seed=seed))
            best = log_table.loc[log_table["val_loss"].idxmin()]
            evaluated = log_table.loc[log_table["step"] == config["step"], "val_loss"]
            rows.append(TrainingRun(
                model=name, seed=seed, loss=entry.loss, fusion=entry.fusion, steps=int(log_table["step"].iloc[-1]),
                best_step=int(best["step"]), best_val_loss=float(best["val_loss"]), evaluated_step=int(config["step"]),
                evaluated_val_loss=float(evaluated.iloc[-1]) if len(evaluated) else float("nan"),
                last_val_loss=float(log_table["val_loss"].iloc[-1]),
                last_train_loss=float(log_table["loss"].iloc[-1]), gray_val_loss=gray[0], gray_train_loss=gray[1],
                best_over_gray=float(best["val_loss"]) / gray[0], precision=config["precision"],
                backend=config.get("backend", ""), seconds_this_run=round(seconds.get((name, seed), 0.0), 1)))
    return rows, pd.concat(histories, ignore_index=True)


def parameter_counts(runs: RunsIndex) -> dict[str, int]:
    """Trainable parameters of each model's network (read from its first checkpoint)."""
    from .model import count_trainable

    return {name: count_trainable(checkpoint.load_checkpoint(runs.first_checkpoint(name))[0])
            for name in runs.models}


def training_record(profile: Profile, rows: list[TrainingRun], parameters: dict[str, int],
                    seconds: dict[tuple[str, int], float]) -> TrainRecord:
    return TrainRecord(runs=rows, parameters=parameters, gray_val_loss=rows[0].gray_val_loss,
                       gray_train_loss=rows[0].gray_train_loss, train_scale=profile.data.train_scale,
                       train_crop=profile.data.train_crop, batch_size=profile.training.batch_size,
                       steps=profile.training.steps, precision=rows[0].precision, backend=rows[0].backend,
                       seconds=float(sum(seconds.values())))


def training_table(rows: list[TrainingRun]) -> pd.DataFrame:
    return pd.DataFrame([row.model_dump() for row in rows])
