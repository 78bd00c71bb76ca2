"""`koala train`: the paper's training (Adam 1e-3, MSE on a*b*/127, batch 100), checkpointed and resumable.

Training is `model.fit` with Keras callbacks, in chunks of `checkpoint_every` steps (one Keras "epoch" each): a
checkpoint with optimizer state is written atomically after every chunk, CSV and TensorBoard logs are appended,
and a restarted run continues from the last checkpoint at the same step count. The strategy comes from the
hardware: one device, MirroredStrategy on several GPUs, MultiWorkerMirroredStrategy when TF_CONFIG is set; the
dataset is batched at the global batch size and Keras splits it across replicas.
"""
import argparse
import json
import logging
import math
import os
import time

from . import checkpoint

log = logging.getLogger(__name__)


def choose_strategy():
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def cpu_has_bf16():
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def set_precision(mixed_precision):
    """None/'float32', 'bfloat16' or 'float16', or 'auto': float16 on GPUs, bfloat16 on CPUs with native bf16
    instructions (AVX512-BF16, AMX), float32 elsewhere (emulated bf16 is slower than float32)."""
    import keras
    import tensorflow as tf

    if mixed_precision in (None, "", "none", "float32"):
        policy = "float32"
    elif mixed_precision == "auto":
        if tf.config.list_logical_devices("GPU"):
            policy = "mixed_float16"
        else:
            policy = "mixed_bfloat16" if cpu_has_bf16() else "float32"
    else:
        policy = f"mixed_{mixed_precision}"
    keras.mixed_precision.set_global_policy(policy)
    return policy


class AtomicCheckpoint:
    """Keras callback factory: save a checkpoint with the optimizer's true step count after each chunk."""

    @staticmethod
    def make(run_dir, config, keep):
        import keras

        class _Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                step = int(self.model.optimizer.iterations.numpy())
                checkpoint.save_checkpoint(self.model, run_dir, step, {**config, "logs": logs or {}}, keep)

        return _Callback()


def train(data_dir, run_dir, steps, batch_size=100, size=224, learning_rate=1e-3, checkpoint_every=100,
          validation_batches=None, fusion=True, mixed_precision=None, seed=0, keep=3, verbose="auto"):
    """Train (or resume) into run_dir. Returns the path of the final checkpoint."""
    import keras

    from .data.pipeline import make_dataset
    from .data.prepare import load_manifest
    from .model import build_colorizer

    manifest = load_manifest(data_dir)
    backbone = manifest["params"]["backbone"]
    os.makedirs(run_dir, exist_ok=True)
    policy = set_precision(mixed_precision)
    keras.utils.set_random_seed(seed)
    strategy = choose_strategy()
    config = checkpoint.model_config(backbone, 1000, fusion, size, batch_size=batch_size, learning_rate=learning_rate,
                                     steps=steps, precision=policy, data_fingerprint=manifest["fingerprint"],
                                     seed=seed, replicas=strategy.num_replicas_in_sync)
    latest = checkpoint.latest_or_none(run_dir)
    with strategy.scope():
        if latest:
            model, saved = checkpoint.load_checkpoint(latest, compile=True)
            if saved.get("data_fingerprint") != manifest["fingerprint"] or saved.get("fusion") != fusion:
                raise checkpoint.CheckpointError(f"{run_dir} holds a run on other data or settings; use a new folder")
        else:
            model = build_colorizer(1000, fusion=fusion)
            model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    done = int(model.optimizer.iterations.numpy()) if latest else 0
    if latest:
        log.info("resuming %s at step %d", latest, done)
    if done >= steps:
        return checkpoint.resolve(run_dir)
    chunks = math.ceil(steps / checkpoint_every)
    initial_epoch = done // checkpoint_every
    train_ds = make_dataset(data_dir, "train", batch_size, size, training=True, seed=seed, fusion=fusion,
                            start_epoch=initial_epoch)
    val_ds = None
    if manifest["counts"].get("validation"):
        val_ds = make_dataset(data_dir, "validation", batch_size, size, training=False, seed=seed, fusion=fusion)
        val_ds = (val_ds.take(validation_batches) if validation_batches else val_ds).cache()
    else:
        log.warning("the validation split is empty: training without validation loss")
    callbacks = [
        _StepColumn(checkpoint_every),
        AtomicCheckpoint.make(run_dir, config, keep),
        keras.callbacks.CSVLogger(os.path.join(run_dir, "log.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), update_freq="epoch"),
    ]
    started = time.time()
    model.fit(train_ds, epochs=chunks, initial_epoch=initial_epoch, steps_per_epoch=checkpoint_every,
              validation_data=val_ds, callbacks=callbacks, verbose=verbose)
    log.info("trained %d steps in %.1f s", steps - done, time.time() - started)
    return checkpoint.resolve(run_dir)


def _StepColumn(checkpoint_every):
    """Add the global step to the logs so log.csv has a `step` column (CSVLogger only knows epochs)."""
    import keras

    class _Callback(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["step"] = int(self.model.optimizer.iterations.numpy())

    return _Callback()


def read_log(run_dir):
    import pandas as pd

    return pd.read_csv(os.path.join(run_dir, "log.csv"))


def register(subparsers):
    parser = subparsers.add_parser("train", help="train (or resume) the colorization network",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared dataset folder (koala prepare)")
    parser.add_argument("--run", required=True, help="run folder: checkpoints and logs; resumed if it exists")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=100, help="global batch (paper: 100)")
    parser.add_argument("--size", type=int, default=224, help="training crop (paper: 224)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--validation-batches", type=int, default=None)
    parser.add_argument("--no-fusion", dest="fusion", action="store_false", help="the ablation without embedding")
    parser.add_argument("--mixed-precision", choices=["float32", "bfloat16", "float16", "auto"], default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=_main)


def _main(args):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    final = train(args.data, args.run, args.steps, args.batch_size, args.size, args.learning_rate,
                  args.checkpoint_every, args.validation_batches, args.fusion, args.mixed_precision, args.seed)
    print(json.dumps({"checkpoint": final, "step": checkpoint.read_config(final)["step"]}))
    return 0


def run_directory(runs_dir, name, settings):
    """A run folder named by the model and a hash of its settings: changed settings never resume an old run."""
    import hashlib

    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return os.path.join(runs_dir, f"{name}-{digest}")
