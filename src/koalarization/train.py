"""`koala train`: the paper's training (Adam 1e-3, MSE on a*b*/127, batch 100), checkpointed and resumable, on any
Keras backend.

Training is Keras `model.fit` with Keras callbacks, one call per chunk of `checkpoint_every` steps (the last chunk
stops exactly at `steps`). After every chunk a checkpoint with optimizer state is written atomically, validation
loss is measured, CSV and TensorBoard logs are appended, and the checkpoint with the lowest validation loss is
kept as `best/`. Which checkpoint the run hands on (`chosen.json`: what colorizing and evaluation use) is the best or
the last, as `settings.keep` says. A restarted run continues from its last checkpoint at the same step, and refuses
to continue under different settings.

Backends: TensorFlow (the reference) reads batches with tf.data (`data/pipeline.py`) and spreads over devices with
tf.distribute (MirroredStrategy on several GPUs, MultiWorkerMirroredStrategy when TF_CONFIG is set). JAX and
PyTorch read the same shards without TensorFlow (`data/batches.py`); JAX spreads over several devices with
`keras.distribution.DataParallel`.
"""
from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from . import checkpoint
from .config import TrainingSettings, as_fusion, uses_feature_maps
from .errors import KoalaError
from .machine import cpu_has_bf16

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class TrainingError(KoalaError, RuntimeError):
    pass


def backend() -> str:
    import keras

    return keras.backend.backend()


def accelerators() -> list[str]:
    """Names of the GPUs the current Keras backend sees (empty on a CPU machine)."""
    if backend() == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices("GPU")]
    if backend() == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    if backend() == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def _gpu_has_bf16() -> bool:
    """Compute capability 8.0 or newer (Ampere, Hopper): bfloat16 needs no loss scaling and is the faster choice."""
    try:
        if backend() == "jax":
            import jax

            return float(getattr(jax.devices()[0], "compute_capability", "0")) >= 8.0
        if backend() == "tensorflow":
            import tensorflow as tf

            gpu = tf.config.list_physical_devices("GPU")[0]
            return tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) >= (8, 0)
        if backend() == "torch":
            import torch

            return torch.cuda.is_bf16_supported()
    except Exception:  # any doubt: float16, which every GPU has
        return False
    return False


def set_precision(mixed_precision: str | None) -> str:
    """'float32', 'bfloat16', 'float16', or 'auto': bfloat16 on GPUs that have it (else float16), bfloat16 on CPUs
    with native bf16 instructions (AVX512-BF16, AMX), float32 elsewhere (emulated bf16 is slower than float32)."""
    import keras

    if mixed_precision in (None, "", "none", "float32"):
        policy = "float32"
    elif mixed_precision == "auto":
        if accelerators():
            policy = "mixed_bfloat16" if _gpu_has_bf16() else "mixed_float16"
        else:
            policy = "mixed_bfloat16" if cpu_has_bf16() else "float32"
    else:
        policy = f"mixed_{mixed_precision}"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def distribution_scope() -> tuple[Any, int]:
    """The scope models are built in: a tf.distribute strategy (TensorFlow: several GPUs, or the workers of
    TF_CONFIG), DataParallel over several devices or processes (JAX), or nothing. -> (context manager, number of
    replicas). See `distributed` for the cluster itself."""
    from .distributed import cluster

    here = cluster()
    return here.scope(), here.replicas


def _step(model) -> int:
    import keras

    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def training_config(data_manifest: dict[str, Any], settings: TrainingSettings, fusion: str | bool, loss: str,
                    seed: int, map_dropout: float = 0.0) -> dict[str, Any]:
    """Everything a run's result depends on. A resumed run must match it exactly."""
    params = data_manifest["params"]
    return {"backbone": params["backbone"], "data_fingerprint": data_manifest["fingerprint"],
            "train_scale": params["train_scale"], "train_crop": params["train_crop"],
            "crops_per_photo": params.get("crops_per_photo", 0), "fusion": as_fusion(fusion), "loss": loss,
            "seed": seed, **({"map_dropout": map_dropout} if map_dropout else {}),
            **{k: v for k, v in settings.model_dump(mode="json").items()
               if k not in _NOT_THE_RUNS and not (k in _OMITTED_AT_DEFAULT and v == _OMITTED_AT_DEFAULT[k])}}


# Settings that choose among a run's checkpoints or how stage 2 schedules its runs, not what a run learns
_NOT_THE_RUNS = ("keep", "parallel_runs")
# Settings added after runs were published: left out of a run's identity while at their default, so the runs and
# checkpoints made before them keep their names and can still be resumed.
_OMITTED_AT_DEFAULT = {"lr_schedule": "constant", "warmup_steps": 0, "weight_average": 0.0}


def optimizer(settings: TrainingSettings) -> Any:
    """Adam (the paper's), optionally keeping an exponential moving average of the weights (`weight_average`).

    Keras overwrites the weights with their average at the end of every `fit`, and training runs one fit per
    checkpoint: so every checkpoint holds the averaged weights, and training goes on from them. A resumed run is
    therefore the same run: the checkpoint holds the weights and the average, which are then equal.
    """
    import keras

    average = {"use_ema": True, "ema_momentum": settings.weight_average} if settings.weight_average else {}
    return keras.optimizers.Adam(learning_rate(settings), **average)


def learning_rate(settings: TrainingSettings) -> Any:
    """Adam's learning rate: a constant (the paper), or a cosine decay to zero at `steps` after a linear warm-up.

    A Keras schedule is a function of the optimizer's step count, which checkpoints carry, so a resumed run
    continues on the same curve.
    """
    import keras

    if settings.lr_schedule == "constant":
        return settings.learning_rate
    warmup = min(settings.warmup_steps, settings.steps - 1)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else settings.learning_rate, decay_steps=settings.steps - warmup, alpha=0.0,
        warmup_target=settings.learning_rate if warmup else None, warmup_steps=warmup)


def _compare(saved: dict[str, Any], wanted: dict[str, Any], run_dir: str) -> None:
    # More steps extend a constant-rate run; under a schedule they change the whole curve, so they must match too.
    free = {"steps"} if wanted.get("lr_schedule", "constant") == "constant" else set()
    differing = [k for k in sorted(set(saved) | set(wanted)) if k not in free and saved.get(k) != wanted.get(k)]
    if differing:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {wanted.get(k)!r}" for k in differing)
        raise TrainingError(f"{run_dir} holds a run with other settings ({details}); resuming would mix them. "
                            f"Use a new run folder, or the old settings.")


def train(data_dir: str, run_dir: str, settings: TrainingSettings, fusion: str | bool = "global", loss: str = "mse",
          seed: int = 0, keep_checkpoints: int = 2, verbose: Any = "auto", report: dict[str, Any] | None = None,
          map_dropout: float = 0.0) -> str:
    """Train (or resume) into run_dir. Returns the checkpoint to evaluate: the best by validation loss
    (`settings.keep == "best"`, when there is a validation split) or the last.

    On several workers (`distributed`) every worker calls this with the same settings; only the chief (worker 0)
    writes into its run_dir, and the others return "" (their weights equal the chief's). `report`, where given, is
    filled with this worker's index, the number of workers, the last step and a digest of the final weights.
    `map_dropout`: see `model.build_colorizer` (spatial and hypercolumn networks)."""
    import keras

    from .data.prepare import load_manifest
    from .distributed import cluster, weights_digest

    here = cluster()  # first: jax.distributed must start before anything touches a device
    manifest = load_manifest(data_dir)
    wanted = training_config(manifest, settings, fusion, loss, seed, map_dropout)
    if map_dropout and not uses_feature_maps(wanted["fusion"]):
        raise TrainingError(f"map dropout drops channels of the classifier's feature maps, and a {wanted['fusion']} "
                            f"network takes none: use --fusion spatial or hypercolumn, or leave out --map-dropout")
    if uses_feature_maps(wanted["fusion"]) and not manifest.get("feature_shapes"):
        raise TrainingError(f"a {wanted['fusion']} network learns from the classifier's feature maps, and {data_dir} "
                            f"was prepared without them: prepare it with --feature-maps (data.feature_maps: true)")
    if here.is_chief:
        os.makedirs(run_dir, exist_ok=True)
    policy = set_precision(settings.mixed_precision)
    keras.utils.set_random_seed(seed)
    config = checkpoint.model_config(
        manifest["params"]["backbone"], manifest.get("embedding_dim", 1000), wanted["fusion"],
        train_scale=wanted["train_scale"], train_crop=wanted["train_crop"],
        stored_short_side=manifest["params"].get("letterbox_size") or manifest["params"]["short_side"],
        letterbox_size=manifest["params"].get("letterbox_size"), feature_shapes=manifest.get("feature_shapes"),
        training=wanted, precision=policy, replicas=here.replicas, backend=backend(),
        **({"workers": here.workers} if here.multi_worker else {}))
    model = _model_on_every_worker(run_dir, data_dir, manifest, settings, wanted)
    done = _step(model)
    data = _Data(data_dir, settings, wanted, wanted["fusion"], seed)
    best = _fit_in_chunks(model, data, run_dir, settings, config, done, keep_checkpoints, verbose)
    if report is not None:
        report.update(worker=here.index, workers=here.workers, last_step=_step(model),
                      weights_sha256=weights_digest(model))
    if not here.is_chief:
        return ""
    chosen = checkpoint.resolve(run_dir, which="best" if settings.keep == "best" and best is not None else "latest")
    checkpoint.mark_chosen(run_dir, chosen, settings.keep)
    return chosen


def _model_on_every_worker(run_dir: str, data_dir: str, manifest: dict[str, Any], settings: TrainingSettings,
                           wanted: dict[str, Any]) -> Any:
    """The compiled model to train, built in the cluster's scope. One process resumes its latest checkpoint. Several
    workers all build the same new network, and the chief hands them its checkpoint's state (`distributed`)."""
    from .distributed import chief_alone, cluster, sync_from_chief, training_state

    here = cluster()
    if not here.multi_worker:
        with here.scope():
            return _model_to_train(run_dir, data_dir, manifest, settings, wanted)
    with here.scope():
        model = _model_to_train(None, data_dir, manifest, settings, wanted)
    state = None
    latest = _latest_to_resume(run_dir, wanted) if here.is_chief else None
    if latest:
        with chief_alone():  # read outside the cluster: creating its variables is not a step the others take
            saved, _ = checkpoint.load_checkpoint(latest, compile=True)
            state = [_numpy_value(variable) for variable in training_state(saved)]
        log.info("resuming %s at step %d on %d workers", latest, _step(saved), here.workers)
    sync_from_chief(model, state)
    return model


def _numpy_value(variable: Any) -> np.ndarray:
    """A Keras variable's value as numpy, on any backend."""
    import keras

    return keras.ops.convert_to_numpy(variable.value)


def _latest_to_resume(run_dir: str, wanted: dict[str, Any]) -> str | None:
    """The run's latest checkpoint, if any, after checking it was trained with the same settings."""
    latest = checkpoint.latest_or_none(run_dir)
    if latest:
        saved = checkpoint.read_config(latest).get("training")
        if saved is None:
            raise TrainingError(f"{run_dir} holds a checkpoint without its training settings (an older "
                                f"format); use a new run folder")
        _compare(saved, wanted, run_dir)
    return latest


def _model_to_train(run_dir: str | None, data_dir: str, manifest: dict[str, Any], settings: TrainingSettings,
                    wanted: dict[str, Any]) -> Any:
    """-> the compiled model: the run's latest checkpoint, which must have been trained with the same settings, or
    a new network (also where no run folder is to be read)."""

    from .losses import make_loss
    from .model import build_colorizer

    latest = _latest_to_resume(run_dir, wanted) if run_dir else None
    if latest:
        model, _ = checkpoint.load_checkpoint(latest, compile=True)
        log.info("resuming %s at step %d", latest, _step(model))
        return model
    shapes = manifest.get("feature_shapes") or {}
    channels = {level: shape[-1] for level, shape in shapes.items()}
    stats = feature_statistics(data_dir, shapes) if uses_feature_maps(wanted["fusion"]) else None
    model = build_colorizer(manifest.get("embedding_dim", 1000), fusion=wanted["fusion"], feature_channels=channels,
                            feature_stats=stats, map_dropout=wanted.get("map_dropout", 0.0))
    model.compile(optimizer=optimizer(settings),
                  loss=make_loss(wanted["loss"], data_dir, wanted, settings.rebalance_lambda))
    if settings.weight_average:  # built by `fit` instead, the averages are lost under JAX (Keras 3.15)
        model.optimizer.build(model.trainable_variables)
    return model


def feature_statistics(data_dir: str, shapes: dict[str, list[int]], limit: int = 512
                       ) -> dict[str, tuple[list[float], list[float]]]:
    """Per level, the per-channel mean and variance of the classifier's maps over (up to `limit` of) the training
    split's cached crops (or photos): the spatial network standardizes its map inputs with them."""
    from .backbones import unpack_maps
    from .data.batches import load_split

    examples = load_split(data_dir, "train")
    packed = [m for e in examples for m in (e.crop_feature_maps if e.crop_feature_maps is not None and
                                             len(e.crop_feature_maps) else [e.feature_maps]) if m is not None]
    step = max(1, len(packed) // limit)
    levels = unpack_maps(np.stack(packed[::step]).astype(np.float32), shapes)
    stats = {}
    for level, maps in levels.items():
        flat = maps.reshape(-1, maps.shape[-1]).astype(np.float64)
        stats[level] = (flat.mean(axis=0).tolist(), np.maximum(flat.var(axis=0), 1e-6).tolist())
    return stats


def _fit_in_chunks(model: Any, data: _Data, run_dir: str, settings: TrainingSettings, config: dict[str, Any],
                   done: int, keep_checkpoints: int, verbose: Any) -> dict[str, Any] | None:
    """`model.fit` one chunk of `checkpoint_every` steps at a time up to `settings.steps`, a checkpoint after each,
    the one with the lowest validation loss marked best. -> the best checkpoint's record (None: no validation).
    Only the chief writes checkpoints and logs."""
    from .distributed import chief_alone, cluster, prepare_fit

    chief = cluster().is_chief
    best = checkpoint.read_best(run_dir) if chief else None
    started, first = time.time(), done
    while done < settings.steps:
        chunk = min(settings.checkpoint_every, settings.steps - done)
        epoch = done // settings.checkpoint_every
        train_data = data.train(done, epoch)
        prepare_fit(model, train_data)
        history = model.fit(train_data, epochs=epoch + 1, initial_epoch=epoch, steps_per_epoch=chunk,
                            validation_data=data.validation(), callbacks=_callbacks(run_dir, chief),
                            verbose=verbose if chief else 0, **data.validation_options())
        if settings.weight_average:
            _unshare_averages(model)
        done = _step(model)
        logs = {k: float(v[-1]) for k, v in history.history.items()}
        if not chief:
            continue
        with chief_alone():
            path = checkpoint.save_checkpoint(model, run_dir, done, {**config, "logs": logs}, keep_checkpoints)
        val_loss = logs.get("val_loss")
        if val_loss is not None and (best is None or val_loss < best["val_loss"]):
            best = checkpoint.mark_best(run_dir, path, val_loss)
    if done > first:
        log.info("trained steps %d-%d in %.1f s", first, done, time.time() - started)
    return best


def _unshare_averages(model: Any) -> None:
    """After `fit` put the averaged weights in place, each weight and its average hold one array. Under JAX the next
    `fit` donates both to the compiled step, which XLA refuses ("donate the same buffer twice", Keras 3.15): give
    each weight its own copy."""
    import keras

    for variable in model.trainable_variables:
        variable.assign(keras.ops.copy(variable.value))


def _callbacks(run_dir: str, chief: bool) -> list[Any]:
    """The step column, and (on the chief) the CSV and TensorBoard logs."""
    import keras

    callbacks = [_StepColumn()]
    if chief:
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(run_dir, "log.csv"), append=True))
        if backend() == "tensorflow":
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), update_freq="epoch"))
    return callbacks


class _Data:
    """Training and validation data for the current backend: tf.data under TensorFlow, numpy batches elsewhere."""

    def __init__(self, data_dir, settings, wanted, fusion, seed):
        self.data_dir, self.settings, self.fusion, self.seed = data_dir, settings, fusion, seed
        self.scale, self.crop = wanted["train_scale"], wanted["train_crop"]
        self.has_validation = bool(self._counts().get("validation"))
        self._validation = None
        self._batches = None
        if not self.has_validation:
            log.warning("the validation split is empty: training without validation loss (keeping the last step)")

    def _counts(self):
        from .data.prepare import load_manifest

        return load_manifest(self.data_dir)["counts"]

    def train(self, done, epoch):
        s = self.settings
        if backend() == "tensorflow":
            from .data.pipeline import make_dataset

            return make_dataset(self.data_dir, "train", s.batch_size, self.scale, self.crop, training=True,
                                seed=self.seed, fusion=self.fusion, start_epoch=epoch)
        from .data.batches import TrainingBatches

        if self._batches is None:
            from .distributed import local_slice

            self._batches = TrainingBatches(self.data_dir, s.batch_size, self.scale, self.crop, self.seed,
                                            self.fusion, part=local_slice(s.batch_size))
        return self._batches.stream(start_step=done)

    def validation_options(self):
        """Keras needs the batch size for arrays, and the number of batches for a dataset of unknown length."""
        if not self.has_validation:
            return {}
        if backend() == "tensorflow":
            count = self._counts()["validation"]
            batches = -(-count // self.settings.batch_size)
            return {"validation_steps": min(batches, self.settings.validation_batches or batches)}
        return {"validation_batch_size": self.settings.batch_size}

    def validation(self):
        if not self.has_validation:
            return None
        if self._validation is None:
            s = self.settings
            if backend() == "tensorflow":
                from .data.pipeline import make_dataset

                ds = make_dataset(self.data_dir, "validation", s.batch_size, self.scale, self.crop, training=False,
                                  fusion=self.fusion)
                self._validation = (ds.take(s.validation_batches) if s.validation_batches else ds).cache()
            else:
                from .data.batches import evaluation_arrays

                limit = s.validation_batches * s.batch_size if s.validation_batches else None
                self._validation = evaluation_arrays(self.data_dir, "validation", self.scale, self.crop,
                                                     self.fusion, limit)
        return self._validation


def _StepColumn():
    """Add the global step to the logs so log.csv has a `step` column (CSVLogger only knows epochs)."""
    import keras

    class _Callback(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["step"] = _step(self.model)

    return _Callback()


def read_log(run_dir: str) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(os.path.join(run_dir, "log.csv"))


def gray_baseline_loss(targets: np.ndarray) -> float:
    """The loss of predicting a*b* = 0 everywhere: the mean squared scaled a*b* (the floor any colorizer must beat)."""
    return float(np.mean(np.square(np.asarray(targets, np.float64))))
