"""Stage 2 as package code: train every model and seed of a profile, index the checkpoints (`stages.RunsIndex`), and
say what stage 2 records about them (`stages.TrainRecord`): steps, best checkpoint, losses against the gray
baseline, parameter counts, time."""
from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, NamedTuple

import pandas as pd

from . import checkpoint
from .config import Profile, TrainingSettings
from .layout import Layout
from .machine import usable_cores
from .progress import write_progress
from .stages import RunEntry, RunsIndex, TrainingRun, TrainRecord

log = logging.getLogger(__name__)


def train_models(profile: Profile, layout: Layout, verbose: Any = 2) -> tuple[RunsIndex, dict[tuple[str, int], float]]:
    """Train (or reuse, or resume) every model and seed of the profile, `runs_at_once` of them at a time; -> (the
    runs index, written to `layout.runs_index`; seconds spent per (model, seed) in this call)."""
    from .data.prepare import load_manifest
    from .train import training_config

    jobs = []
    for spec in profile.models:
        data_dir = layout.data_dir(spec.backbone, profile.data)
        manifest = load_manifest(str(data_dir))
        for seed in spec.seeds:
            settings = training_config(manifest, profile.training, spec.fusion, spec.loss, seed, spec.map_dropout)
            jobs.append(TrainingJob(model=spec.name, seed=seed, data_dir=str(data_dir),
                                    run_dir=str(layout.run_dir(spec.name, seed, settings)), fusion=spec.fusion,
                                    loss=spec.loss, map_dropout=spec.map_dropout))
    at_once = runs_at_once(profile.training.parallel_runs, len(jobs))
    checkpoints: dict[str, dict[int, str]] = {spec.name: {} for spec in profile.models}
    seconds: dict[tuple[str, int], float] = {}
    write_progress(layout.training_progress, len(jobs), seconds, "", at_once)
    for job, chosen, took in _train_all(jobs, profile.training, at_once, verbose):
        checkpoints[job.model][job.seed] = chosen
        seconds[(job.model, job.seed)] = took
        write_progress(layout.training_progress, len(jobs), seconds, f"{job.model} seed {job.seed}", at_once)
    runs = RunsIndex(models={
        spec.name: RunEntry(backbone=spec.backbone, fusion=spec.fusion, loss=spec.loss, label=spec.title,
                            data_dir=str(layout.data_dir(spec.backbone, profile.data)),
                            checkpoints={seed: checkpoints[spec.name][seed] for seed in spec.seeds})
        for spec in profile.models})
    layout.write_runs(runs)
    return runs, seconds


class TrainingJob(NamedTuple):
    """One network of stage 2: what `train.train` needs, small enough to hand to another process."""

    model: str
    seed: int
    data_dir: str
    run_dir: str
    fusion: str
    loss: str
    map_dropout: float


def runs_at_once(setting: int | str, jobs: int) -> int:
    """How many networks stage 2 trains at once. `auto`: two on a CPU of 2 or more cores under TensorFlow, one
    elsewhere. On 2 cores, two trainings of one thread each finished two of the demo's spatial networks 1.24x sooner
    than one at a time on both cores at the demo's 250 steps (1.15x at 100 steps; AMD EPYC with AVX-512 BF16,
    `benchmarks/parallel_training.py`): at batch 16 one network does not keep two cores busy. One on a GPU (the
    networks would share it), on several workers (each worker is already one part of one network) and under JAX
    (whose thread pools this does not hold to one core; not measured)."""
    if setting != "auto":
        return max(1, min(int(setting), jobs))
    import keras

    from .train import accelerators

    if keras.backend.backend() != "tensorflow" or os.environ.get("TF_CONFIG") or accelerators():
        return 1
    return max(1, min(2, usable_cores(), jobs))


def _train_all(jobs: list[TrainingJob], settings: TrainingSettings, at_once: int,
               verbose: Any) -> Iterator[tuple[TrainingJob, str, float]]:
    """(job, chosen checkpoint, seconds) for each network as it finishes. At once: each in a process of its own,
    its thread pools held to its share of the cores (a stopped study resumes every unfinished run, as one at a time
    does)."""
    if at_once == 1:
        for job in jobs:
            yield _train_one(job, settings, verbose)
        return
    threads = max(1, usable_cores() // at_once)
    log.info("training %d networks, %d at once, %d thread(s) each", len(jobs), at_once, threads)
    pool = ProcessPoolExecutor(at_once, mp_context=multiprocessing.get_context("spawn"), initializer=_hold_threads,
                               initargs=(threads,))
    try:
        pending = [pool.submit(_train_one, job, settings, 0) for job in jobs]
        for future in as_completed(pending):
            job, chosen, took = future.result()
            log.info("== %s, seed %d -> %s (%.0f s)", job.model, job.seed, job.run_dir, took)
            yield job, chosen, took
    finally:
        pool.shutdown(cancel_futures=True)


def _hold_threads(threads: int) -> None:
    """Before TensorFlow starts in a training process: its thread pools (and OpenMP's) to `threads`."""
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[name] = str(threads)


def _train_one(job: TrainingJob, settings: TrainingSettings, verbose: Any) -> tuple[TrainingJob, str, float]:
    from .train import train

    log.info("== %s, seed %d -> %s", job.model, job.seed, job.run_dir)
    started = time.time()
    chosen = train(job.data_dir, job.run_dir, settings, fusion=job.fusion, loss=job.loss, seed=job.seed,
                   verbose=verbose, map_dropout=job.map_dropout)
    return job, chosen, time.time() - started


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
                       seconds=float(sum(seconds.values())),
                       runs_at_once=runs_at_once(profile.training.parallel_runs, len(rows)))


def training_table(rows: list[TrainingRun]) -> pd.DataFrame:
    return pd.DataFrame([row.model_dump() for row in rows])
