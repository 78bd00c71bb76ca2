"""Checkpoints that carry their own config, so a path alone is enough to colorize or to resume training.

Layout of a training run directory:
    run/step-000500/model.keras   the model (with optimizer state, for resume)
    run/step-000500/koala.json    config: backbone, embedding width, fusion, training size, scalings, versions, step
    run/latest.json               {"checkpoint": "step-000500"}, replaced atomically after a checkpoint is complete
    run/best/                     a copy of the checkpoint with the lowest validation loss so far
    run/best.json                 {"step": 300, "val_loss": 0.0113}
    run/chosen.json               {"checkpoint": "best", "keep": "best"}: the one training chose to be used (the
                                  best, or the last: `TrainingSettings.keep`); what a run folder given to
                                  `koala colorize` or `koala evaluate` means
A checkpoint directory is written under a temporary name and renamed when complete: a crash leaves the last
good checkpoint in place.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import TYPE_CHECKING, Any

from . import __version__
from .atomic import write_json_atomic
from .color import AB_SCALE, L_SCALE
from .config import as_fusion, uses_embedding
from .errors import KoalaError

if TYPE_CHECKING:
    import keras

CONFIG_NAME, MODEL_NAME, LATEST_NAME, BEST_NAME = "koala.json", "model.keras", "latest.json", "best"
CHOSEN_NAME = "chosen.json"


class CheckpointError(KoalaError, RuntimeError):
    pass


def model_config(backbone: str, embedding_dim: int, fusion: str | bool, train_scale: int,
                 train_crop: int | None = None, **extra: Any) -> dict[str, Any]:
    """What a checkpoint must carry to be used alone: the classifier it pairs with, how it fuses it (and the shapes
    of the feature maps a spatial network takes), the scale it learned at (the network's working resolution when
    colorizing), the scalings, versions. Format 3: `fusion` is a level (format 2 said true/false)."""
    import keras

    return {"format": 3, "backbone": backbone, "embedding_dim": embedding_dim, "fusion": as_fusion(fusion),
            "train_scale": train_scale, "train_crop": train_crop or train_scale, "l_scaling": f"L/{L_SCALE:g} - 1",
            "ab_scaling": f"ab/{AB_SCALE:g}", "koalarization_version": __version__, "keras_version": keras.__version__,
            **extra}


def save_checkpoint(model: keras.Model, run_dir: str | os.PathLike, step: int, config: dict[str, Any],
                    keep: int = 3) -> str:
    """Write run_dir/step-NNNNNN atomically, point latest.json at it, keep the newest `keep` checkpoints."""
    os.makedirs(run_dir, exist_ok=True)
    name = f"step-{step:06d}"
    final, tmp = os.path.join(run_dir, name), os.path.join(run_dir, f".tmp-{name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    model.save(os.path.join(tmp, MODEL_NAME))
    write_json_atomic(os.path.join(tmp, CONFIG_NAME),
                      {**config, "step": int(step), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_json_atomic(os.path.join(run_dir, LATEST_NAME), {"checkpoint": name, "step": int(step)})
    old = sorted(d for d in os.listdir(run_dir) if d.startswith("step-") and d != name)
    for stale in old[:max(0, len(old) - (keep - 1))]:
        shutil.rmtree(os.path.join(run_dir, stale), ignore_errors=True)
    return final


def mark_best(run_dir: str | os.PathLike, checkpoint_dir: str | os.PathLike, val_loss: float) -> dict[str, float]:
    """Copy a checkpoint to run_dir/best (atomically) and record its step and validation loss."""
    step = read_config(checkpoint_dir)["step"]
    tmp = os.path.join(run_dir, f".tmp-best-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(checkpoint_dir, tmp)
    old = os.path.join(run_dir, f".old-best-{os.getpid()}")
    best = os.path.join(run_dir, BEST_NAME)
    if os.path.exists(best):
        os.replace(best, old)
    os.replace(tmp, best)
    shutil.rmtree(old, ignore_errors=True)
    record = {"step": int(step), "val_loss": float(val_loss)}
    write_json_atomic(os.path.join(run_dir, BEST_NAME + ".json"), record)
    return record


def read_best(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """{"step", "val_loss"} of the best checkpoint so far, or None."""
    try:
        with open(os.path.join(run_dir, BEST_NAME + ".json")) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def mark_chosen(run_dir: str | os.PathLike, checkpoint_dir: str | os.PathLike, keep: str) -> None:
    """Record which of the run's checkpoints its training chose to be used (`resolve(run, "chosen")`)."""
    write_json_atomic(os.path.join(run_dir, CHOSEN_NAME),
                      {"checkpoint": os.path.relpath(checkpoint_dir, run_dir), "keep": keep})


def resolve(path: str | os.PathLike, which: str = "latest") -> str:
    """A checkpoint directory, or a run directory -> the checkpoint directory: the run's latest, its best, or the one
    its training chose (`mark_chosen`; a run made before that record: its best, else its latest)."""
    path = os.fspath(path)
    if os.path.exists(os.path.join(path, CONFIG_NAME)):
        return path
    if which == "chosen":
        try:
            with open(os.path.join(path, CHOSEN_NAME)) as handle:
                chosen = os.path.join(path, json.load(handle)["checkpoint"])
            if os.path.exists(os.path.join(chosen, CONFIG_NAME)):
                return chosen
        except (OSError, ValueError, KeyError):
            pass
        which = "best"
    if which == "best" and os.path.exists(os.path.join(path, BEST_NAME, CONFIG_NAME)):
        return os.path.join(path, BEST_NAME)
    latest = os.path.join(path, LATEST_NAME)
    if os.path.exists(latest):
        with open(latest) as handle:
            return os.path.join(path, json.load(handle)["checkpoint"])
    raise CheckpointError(f"{path}: no checkpoint here (expected {CONFIG_NAME} or {LATEST_NAME})")


def latest_or_none(run_dir: str | os.PathLike) -> str | None:
    """`resolve`, or None where the run has no checkpoint yet (a run that starts from scratch)."""
    try:
        return resolve(run_dir)
    except CheckpointError:
        return None


def fusion_of(config: dict[str, Any]) -> str:
    """A checkpoint's fusion level (none, global, spatial, hypercolumn), from either format."""
    return as_fusion(config.get("fusion", True))


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's config (of a run folder: its latest checkpoint's), read without loading the model."""
    with open(os.path.join(resolve(path), CONFIG_NAME)) as handle:
        return json.load(handle)


def load_checkpoint(path: str | os.PathLike, compile: bool = False, expect_backbone: str | None = None,
                    which: str = "latest") -> tuple[keras.Model, dict[str, Any]]:
    """-> (keras model, config). `expect_backbone` guards against pairing a model with the wrong classifier;
    `which` picks a run folder's "latest", "best" or "chosen" checkpoint (`resolve`)."""
    import keras

    from . import losses as _losses  # noqa: F401  (registers the custom loss)
    from . import model as _model  # noqa: F401  (registers the custom layer)

    directory = resolve(path, which)
    config = read_config(directory)
    if expect_backbone and uses_embedding(fusion_of(config)) and config["backbone"] != expect_backbone:
        raise CheckpointError(f"{directory} was trained with backbone {config['backbone']!r}, "
                              f"not {expect_backbone!r}: its fusion layer expects that classifier's embedding")
    model = keras.models.load_model(os.path.join(directory, MODEL_NAME), compile=compile)
    return model, config
