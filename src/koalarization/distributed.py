"""Training on several machines: which worker this process is, and the few things Keras needs help with there.

Two ways in, one per backend, each the framework's own:

- **TensorFlow**: `TF_CONFIG` (the cluster's workers and this one's index) makes a
  `tf.distribute.MultiWorkerMirroredStrategy`. Every worker runs the whole input pipeline and keeps its slice of each
  global batch (tf.data's DATA sharding), so two workers see exactly the batches one process would.
- **JAX**: Keras's own variables `KERAS_DISTRIBUTION_JOB_ADDRESSES` (worker 0's host:port, the coordinator),
  `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID` start `jax.distributed` (CPU collectives
  through gloo, GPU ones through NCCL) and `keras.distribution.DataParallel` over every process's devices. Each
  process prepares its slice of the global batch (`local_slice`).

Worker 0 is the chief: only it reads and writes checkpoints and logs. Every worker builds the same new network (under
both backends creating a variable is a collective step, so all must create the same ones in the same order); the
chief then reads its last checkpoint outside the cluster and hands its weights and optimizer state to everyone
(`sync_from_chief`). So a cluster resumes where the chief's last checkpoint left it, whichever worker was killed,
and the other workers need no copy of the run folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

JAX_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                 "KERAS_DISTRIBUTION_PROCESS_ID")


@dataclass(frozen=True)
class Cluster:
    """This process's place in training: how many worker processes, which one it is, how many replicas in all."""

    workers: int
    index: int
    replicas: int
    strategy: Any = None  # the tf.distribute strategy (TensorFlow), else None

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def multi_worker(self) -> bool:
        return self.workers > 1

    def scope(self) -> Any:
        """The context models are built in (the strategy's scope under TensorFlow)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def _backend() -> str:
    import keras

    return keras.backend.backend()


@lru_cache(maxsize=1)
def cluster() -> Cluster:
    """The cluster of this process, set up once (a strategy or jax.distributed can only start once per process)."""
    if _backend() == "tensorflow":
        return _tensorflow_cluster()
    if _backend() == "jax":
        return _jax_cluster()
    return Cluster(1, 0, 1)


def _tensorflow_cluster() -> Cluster:
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        config = json.loads(os.environ["TF_CONFIG"])
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = len(config["cluster"].get("worker", [])) + len(config["cluster"].get("chief", []))
        task = config.get("task", {})
        index = int(task.get("index", 0)) + (len(config["cluster"].get("chief", [])) if task.get("type") == "worker"
                                             else 0)
        return Cluster(workers, index, strategy.num_replicas_in_sync, strategy)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        strategy = tf.distribute.MirroredStrategy()
        return Cluster(1, 0, strategy.num_replicas_in_sync, strategy)
    return Cluster(1, 0, 1)


def _jax_cluster() -> Cluster:
    import jax
    import keras

    if os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") != "1":
        missing = [name for name in JAX_VARIABLES if not os.environ.get(name)]
        if missing:
            raise ValueError(f"training on several processes under JAX needs {', '.join(missing)} as well")
        keras.distribution.initialize()
    if len(jax.devices()) > 1:
        # Our batches are already this process's slice (`local_slice`): nothing for Keras to shard.
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices(),
                                                                            auto_shard_dataset=False))
    return Cluster(jax.process_count(), jax.process_index(), len(jax.devices()))


def local_slice(batch_size: int) -> slice:
    """The part of each global batch this process prepares (JAX: every process feeds its own slice)."""
    here = cluster()
    if _backend() != "jax" or not here.multi_worker:
        return slice(0, batch_size)
    if batch_size % here.workers:
        raise ValueError(f"the batch size ({batch_size}) must be a multiple of the number of workers ({here.workers})")
    part = batch_size // here.workers
    return slice(here.index * part, (here.index + 1) * part)


def prepare_fit(model: Any, dataset: Any) -> None:
    """Before `model.fit` under MultiWorkerMirroredStrategy, work around two faults of Keras 3's TensorFlow trainer
    (keras-team/keras#20585, #20329), which make every multi-worker `fit` fail:

    - it builds the model by reducing the first distributed batch with `strategy.reduce`, which takes one tensor,
      not the nested (inputs, target) of a batch ("Attempt to convert a value ({'l': PerReplica..."): the model, its
      loss and its optimizer are built here from the data's shapes instead, and that step is skipped;
    - it averages each step's logs (scalars) over the workers with `strategy.reduce("MEAN", v, axis=0)`, which has
      no axis 0 to reduce: `_mean_over_workers` averages them with axis=None, as it does on one machine.

    Nothing changes on one process. The two-worker tests (tests/test_distributed.py) fail if either fix stops
    working (a Keras upgrade), rather than training silently apart."""
    here = cluster()
    if not here.multi_worker or _backend() != "tensorflow":
        return
    _mean_over_workers()
    if getattr(model, "_koala_built_for_workers", False):
        return
    import keras

    def symbolic(spec):
        shape = (None if spec.shape[0] is None else spec.shape[0] // here.replicas, *spec.shape[1:])
        return keras.KerasTensor(shape, spec.dtype.name)

    with here.scope():
        model._symbolic_build(data_batch=keras.tree.map_structure(symbolic, dataset.element_spec))
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    model._koala_built_for_workers = True


def _mean_over_workers() -> None:
    """Keras's `reduce_per_replica` with its multi-worker mean taken over replicas (axis=None), not axis 0."""
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "koala_fixed", False):
        return

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            import keras

            return keras.tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None) if trainer._is_per_replica_instance(v) else v, values)
        return original(values, strategy, reduction)

    reduce_per_replica.koala_fixed = True  # type: ignore[attr-defined]
    trainer.reduce_per_replica = reduce_per_replica


def training_state(model: Any) -> list[Any]:
    """The variables a worker must share with the others: the model's weights, then the optimizer's (step included)."""
    return list(model.weights) + list(model.optimizer.variables)


def sync_from_chief(model: Any, chief_values: list[Any] | None = None) -> None:
    """Give every worker the chief's training state: `chief_values` on the chief (its resumed checkpoint's
    `training_state`, read outside the cluster), or the chief's model as it is. The others may have no checkpoint at
    all (another machine). Every worker calls this at the same point: under TensorFlow each variable is summed over
    the workers with only the chief's contribution non-zero (exact), under JAX broadcast from process 0."""
    import numpy as np

    here = cluster()
    if not here.multi_worker:
        return
    if not model.optimizer.built:
        with here.scope():
            model.optimizer.build(model.trainable_variables)
    variables = training_state(model)
    values = [np.asarray(v) for v in chief_values] if here.is_chief and chief_values is not None else \
        [np.asarray(variable.value) for variable in variables]
    if [v.shape for v in values] != [tuple(variable.shape) for variable in variables]:
        raise ValueError("the chief's checkpoint does not hold the variables of the network being trained")
    if _backend() == "tensorflow":
        _sync_tensorflow(here, variables, values)
    elif _backend() == "jax":
        _sync_jax(variables, values)


def _sync_tensorflow(here: Cluster, variables: list[Any], values: list[Any]) -> None:
    import numpy as np
    import tensorflow as tf

    strategy = here.strategy
    for variable, value in zip(variables, values):
        mine = tf.constant(value if here.is_chief else np.zeros_like(value))
        summed = strategy.reduce(tf.distribute.ReduceOp.SUM,
                                 strategy.experimental_distribute_values_from_function(lambda _context, v=mine: v),
                                 axis=None)
        variable.assign(summed)


def _sync_jax(variables: list[Any], values: list[Any]) -> None:
    import numpy as np
    from jax.experimental import multihost_utils

    for variable, value in zip(variables, multihost_utils.broadcast_one_to_all(values)):
        variable.assign(np.asarray(value))


@contextlib.contextmanager
def chief_alone() -> Any:
    """Where the chief works alone (writing a checkpoint): under JAX, Keras's distribution is set aside meanwhile, or
    a variable Keras creates while saving (a template optimizer's) would wait for the other workers to create it."""
    if _backend() != "jax" or not cluster().multi_worker:
        yield
        return
    import keras

    active = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(active)


def weights_digest(model: Any) -> str:
    """SHA-256 over the model's weights, bit for bit: workers that trained in step end with the same digest."""
    import numpy as np

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight.value)).tobytes())
    return digest.hexdigest()
