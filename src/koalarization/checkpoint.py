"""Checkpoints that carry their own config, so a path alone is enough to colorize or to resume training.

Layout of a training run directory:
    run/step-000500/model.keras   the model (with optimizer state, for resume)
    run/step-000500/koala.json    config: backbone, embedding width, fusion, training size, scalings, versions, step
    run/latest.json               {"checkpoint": "step-000500"}, replaced atomically after a checkpoint is complete
A checkpoint directory is written under a temporary name and renamed when complete: a crash leaves the last
good checkpoint in place.
"""
import json
import os
import shutil
import time

from . import __version__
from .atomic import write_json_atomic
from .color import AB_SCALE, L_SCALE
from .errors import KoalaError

CONFIG_NAME, MODEL_NAME, LATEST_NAME = "koala.json", "model.keras", "latest.json"


class CheckpointError(KoalaError, RuntimeError):
    pass


def model_config(backbone, embedding_dim, fusion, train_size, **extra):
    import keras

    return {"format": 1, "backbone": backbone, "embedding_dim": embedding_dim, "fusion": fusion,
            "train_size": train_size, "l_scaling": f"L/{L_SCALE:g} - 1", "ab_scaling": f"ab/{AB_SCALE:g}",
            "koalarization_version": __version__, "keras_version": keras.__version__, **extra}


def save_checkpoint(model, run_dir, step, config, keep=3):
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


def resolve(path):
    """A checkpoint directory, or a run directory (its latest checkpoint) -> the checkpoint directory."""
    path = os.fspath(path)
    if os.path.exists(os.path.join(path, CONFIG_NAME)):
        return path
    latest = os.path.join(path, LATEST_NAME)
    if os.path.exists(latest):
        with open(latest) as handle:
            return os.path.join(path, json.load(handle)["checkpoint"])
    raise CheckpointError(f"{path}: no checkpoint here (expected {CONFIG_NAME} or {LATEST_NAME})")


def latest_or_none(run_dir):
    try:
        return resolve(run_dir)
    except CheckpointError:
        return None


def read_config(path):
    with open(os.path.join(resolve(path), CONFIG_NAME)) as handle:
        return json.load(handle)


def load_checkpoint(path, compile=False, expect_backbone=None):
    """-> (keras model, config). `expect_backbone` guards against pairing a model with the wrong classifier."""
    import keras

    from . import model as _model  # noqa: F401  (registers the custom layer)

    directory = resolve(path)
    config = read_config(directory)
    if expect_backbone and config.get("fusion", True) and config["backbone"] != expect_backbone:
        raise CheckpointError(f"{directory} was trained with backbone {config['backbone']!r}, "
                              f"not {expect_backbone!r}: its fusion layer expects that classifier's embedding")
    model = keras.models.load_model(os.path.join(directory, MODEL_NAME), compile=compile)
    return model, config
