"""The input pipeline without TensorFlow: prepared shards -> ({"l", "embedding", maps}, ab/127) numpy batches.

Used by training and evaluation on every Keras backend but TensorFlow (where `pipeline.py`, tf.data, is the
reference), so a machine with only JAX or PyTorch trains the same network on the same shards. The batches are the
same function of the data as tf.data's: decode, resize to the training scale, crop (a cached crop with its own
embedding, or a random one), random flip, L*a*b*, the paper's scalings. Randomness is keyed by (seed, step), so a
run is deterministic and a resumed run continues the same sequence.

Where the work runs: decoding, resizing and cropping (uint8) in worker processes ahead of the network (threads when
there are few cores); the L*a*b* conversion and scalings as one compiled function on the accelerator, where a
batch costs a fraction of a millisecond instead of a CPU core's tenth of a second.
"""
from __future__ import annotations

import io
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from ..color import ops_uint8_to_lab, scale_ab, scale_l
from ..images import scaled_size
from . import records
from .prepare import load_manifest


@dataclass(frozen=True)
class Example:
    """One prepared photo: its JPEG, what the classifier saw of the whole photo (its embedding and, where cached,
    its packed feature maps) and of each cached crop."""

    photo_id: str
    jpeg: bytes
    embedding: np.ndarray  # (1000,) float32
    crop_boxes: np.ndarray  # (K, 2) int (y, x) at the training scale
    crop_embeddings: np.ndarray  # (K, 1000) float32
    feature_maps: np.ndarray | None = None  # (D,) float16, `backbones.pack_maps` of the whole photo's maps
    crop_feature_maps: np.ndarray | None = None  # (K, D) float16


def parse(record: bytes) -> Example:
    features = records.decode_example(record)
    boxes = np.asarray(features.get("crop_boxes", []), np.int64).reshape(-1, 2)
    crops = features.get("crop_embeddings")
    crop_embeddings = (np.frombuffer(crops[0], "<f2").astype(np.float32).reshape(len(boxes), -1) if crops
                       else np.zeros((0, 1000), np.float32))
    maps, crop_maps = features.get("feature_maps"), features.get("crop_feature_maps")
    return Example(features["photo_id"][0].decode(), features["jpeg"][0],
                   np.frombuffer(features["embedding"][0], "<f2").astype(np.float32), boxes, crop_embeddings,
                   np.frombuffer(maps[0], "<f2") if maps else None,
                   np.frombuffer(crop_maps[0], "<f2").reshape(len(boxes), -1) if crop_maps else None)


def shard_files(data_dir: str, split: str) -> list[str]:
    files = [os.path.join(data_dir, f) for f in load_manifest(data_dir)["shards"].get(split, [])]
    if not files:
        from .prepare import PrepareError

        raise PrepareError(f"{data_dir}: the {split!r} split is empty")
    return files


def load_split(data_dir: str, split: str) -> list[Example]:
    """Every example of a split, in shard order (the JPEG bytes are small: a few hundred photos are a few MB)."""
    return [parse(record) for path in shard_files(data_dir, split) for record in records.read_records(path)]


def decode(jpeg: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(jpeg)) as image:
        return np.asarray(image.convert("RGB"))


def to_scale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """Resize to short side `scale` (antialiased bilinear, as tf.image.resize(antialias=True))."""
    height, width = scaled_size(rgb.shape[0], rgb.shape[1], scale)
    if (height, width) == rgb.shape[:2]:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))


def crop_example(example: Example, scale: int, size: int, rng: np.random.Generator | None,
                 shapes: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """-> (uint8 crop (size, size, 3), embedding, packed feature maps or None). Training (rng given): one of the
    cached crops, or a random crop with the photo's embedding, then a random flip (of the maps too); evaluation: the
    center crop (its cached embedding and maps if any). `shapes` (the manifest's `feature_shapes`) is needed to flip
    maps; without it a flipped crop comes without maps (a model that uses no maps trains on a dataset that has them)."""
    rgb = to_scale(decode(example.jpeg), scale)
    height, width = rgb.shape[:2]
    if height < size or width < size:  # small photos are upscaled so a crop fits
        rgb = np.asarray(Image.fromarray(rgb).resize((max(width, size), max(height, size)), Image.Resampling.BILINEAR))
        height, width = rgb.shape[:2]
    maps = example.feature_maps
    if len(example.crop_boxes):
        k = int(rng.integers(len(example.crop_boxes))) if rng is not None else 0
        (y, x), embedding = example.crop_boxes[k], example.crop_embeddings[k]
        maps = example.crop_feature_maps[k] if example.crop_feature_maps is not None else None
        y, x = min(int(y), height - size), min(int(x), width - size)
    elif rng is not None:
        y, x, embedding = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1)), example.embedding
    else:
        y, x, embedding = (height - size) // 2, (width - size) // 2, example.embedding
    crop = rgb[y:y + size, x:x + size]
    if rng is not None and rng.random() < 0.5:
        crop = crop[:, ::-1]
        maps = flip_maps(maps, shapes) if maps is not None and shapes else None
    return crop, embedding, maps


def flip_maps(packed: np.ndarray, shapes: dict | None) -> np.ndarray:
    """Packed feature maps of an image -> those of its mirror image (each map flipped left-right): the classifier's
    maps are close to flip-equivariant, and the crop they go with was flipped."""
    from ..backbones import pack_maps, unpack_maps

    if not shapes:
        raise ValueError("flipping feature maps needs their shapes (the prepared dataset's feature_shapes)")
    levels = unpack_maps(packed[None], shapes)
    return pack_maps([m[:, :, ::-1] for m in levels.values()])[0]


@lru_cache(maxsize=8)
def _model_io_function(names: tuple[str, ...]):
    """uint8 crops, embeddings, maps -> model inputs and target, as backend tensors (compiled under JAX)."""
    import keras
    from keras import ops

    def model_io(crops, embeddings, *maps):
        lab = ops_uint8_to_lab(crops)
        l_input, target = scale_l(lab[..., :1]), scale_ab(lab[..., 1:])
        side = [ops.cast(embeddings, "float32"), *(ops.cast(m, "float32") for m in maps)]
        inputs = {"l": l_input, **dict(zip(names[1:], side))}  # the l-only network takes none of the side inputs
        return (inputs if len(names) > 1 else l_input), target

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(model_io)
    return model_io


def to_model_io(crops: np.ndarray, embeddings: np.ndarray, fusion: str | bool = "global",
                maps: np.ndarray | None = None, shapes: dict | None = None) -> tuple[Any, Any]:
    """uint8 RGB batch (N, S, S, 3), embeddings (N, 1000) and packed maps (N, D) -> (the network's inputs for this
    fusion level, ab/127), on the backend's device: {"l": L/50 - 1, "embedding": e, "s8": ..} or just l."""
    from ..backbones import unpack_maps
    from ..config import as_fusion, uses_feature_maps
    from ..model import input_names

    names = tuple(input_names(as_fusion(fusion)))
    levels = []
    if uses_feature_maps(as_fusion(fusion)):
        if maps is None or not shapes:
            raise ValueError(f"a {fusion} network needs the classifier's feature maps: prepare the data with "
                             f"data.feature_maps = true")
        levels = list(unpack_maps(np.asarray(maps, np.float32), shapes).values())
    return _model_io_function(names)(crops, np.asarray(embeddings, np.float32), *levels)


class _Crops:
    """The CPU half of the pipeline: step -> (uint8 crops, embeddings, packed maps or None). Lives in each worker
    process."""

    def __init__(self, data_dir, split, batch_size, scale, size, seed, with_maps=False, part=None):
        self.examples = load_split(data_dir, split)
        self.batch_size, self.scale, self.size, self.seed = batch_size, scale, size, seed
        self.positions = range(batch_size)[part or slice(None)]  # this process's slice of each global batch
        self.shapes = load_manifest(data_dir).get("feature_shapes") if with_maps else None
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, data_pass: int) -> np.ndarray:
        """The photo order of one pass over the data (the last few are kept: a batch can straddle two passes)."""
        if data_pass not in self._orders:
            if len(self._orders) >= 4:
                self._orders.pop(min(self._orders))
            self._orders[data_pass] = np.random.default_rng([self.seed, 104729, data_pass]).permutation(
                len(self.examples))
        return self._orders[data_pass]

    def __call__(self, step: int):
        crops, embeddings, maps = [], [], []
        for j in self.positions:
            data_pass, position = divmod(step * self.batch_size + j, len(self.examples))
            example = self.examples[self._order(data_pass)[position]]
            crop, embedding, packed = crop_example(example, self.scale, self.size,
                                                   np.random.default_rng([self.seed, step, j]), self.shapes)
            crops.append(crop)
            embeddings.append(embedding)
            maps.append(packed)
        stacked = np.stack([m for m in maps if m is not None]).astype(np.float32) if self.shapes else None
        return np.stack(crops), np.stack(embeddings).astype(np.float32), stacked


_WORKER: _Crops | None = None


def _start_worker(*args) -> None:
    global _WORKER
    _WORKER = _Crops(*args)


def _worker_crops(step: int):
    assert _WORKER is not None, "the worker process was started without its data"
    return _WORKER(step)


class TrainingBatches:
    """An endless, deterministic stream of training batches, prepared ahead by `workers` processes (or threads).

    Step s (counting from 0 over the whole run, resumes included) always holds the same photos, crops and flips:
    photos are drawn without replacement within each pass over the data, in an order keyed by (seed, pass).
    `part`: the slice of each global batch of `batch_size` that this process prepares, when several processes train
    together (`distributed.local_slice`); their slices put together are the batch one process would have.
    """

    def __init__(self, data_dir: str, batch_size: int, scale: int, size: int, seed: int = 0,
                 fusion: str | bool = "global", workers: int | None = None, split: str = "train",
                 part: slice | None = None):
        from ..config import as_fusion, uses_feature_maps

        self.fusion = as_fusion(fusion)
        self._args = (data_dir, split, batch_size, scale, size, seed, uses_feature_maps(self.fusion), part)
        self._crops = _Crops(*self._args)
        self.examples, self.shapes = self._crops.examples, self._crops.shapes
        self.workers = workers or min(16, os.cpu_count() or 1)

    def crops(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The uint8 crops, embeddings and packed maps of one training step (the CPU half)."""
        return self._crops(step)

    def batch(self, step: int) -> tuple[Any, Any]:
        """The batch of one training step, as model inputs and target."""
        crops, embeddings, maps = self.crops(step)
        return to_model_io(crops, embeddings, self.fusion, maps, self.shapes)

    def _executor(self):
        if self.workers >= 4:  # enough cores: processes, free of the GIL; spawned, since JAX threads forbid fork
            return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_start_worker, initargs=self._args), _worker_crops
        return ThreadPoolExecutor(self.workers, thread_name_prefix="koala-batches"), self.crops

    def stream(self, start_step: int = 0, ahead: int | None = None) -> Iterator:
        """Batches from `start_step` on, forever, `ahead` of them in preparation at any time."""
        ahead = ahead or 2 * self.workers
        executor, work = self._executor()
        with executor as pool:
            pending = deque(pool.submit(work, step) for step in range(start_step, start_step + ahead))
            step = start_step + ahead
            while True:
                crops, embeddings, maps = pending.popleft().result()
                pending.append(pool.submit(work, step))
                step += 1
                yield to_model_io(crops, embeddings, self.fusion, maps, self.shapes)


def evaluation_arrays(data_dir: str, split: str, scale: int, size: int, fusion: str | bool = "global",
                      limit: int | None = None) -> tuple[Any, np.ndarray]:
    """Center crops of a split as one (inputs, target) pair of numpy arrays: the validation data of training."""
    from keras import ops

    from ..config import as_fusion, uses_feature_maps

    examples = load_split(data_dir, split)[:limit]
    triples = [crop_example(example, scale, size, None) for example in examples]
    shapes = load_manifest(data_dir).get("feature_shapes") if uses_feature_maps(as_fusion(fusion)) else None
    maps = np.stack([m for _, _, m in triples if m is not None]) if shapes else None
    inputs, target = to_model_io(np.stack([c for c, _, _ in triples]), np.stack([e for _, e, _ in triples]),
                                 fusion, maps, shapes)
    as_numpy = ops.convert_to_numpy
    inputs = {k: as_numpy(v) for k, v in inputs.items()} if isinstance(inputs, dict) else as_numpy(inputs)
    return inputs, as_numpy(target)


@dataclass(frozen=True)
class StoredPhoto:
    """A prepared photo as the evaluation sees it: the photo at its stored size and what the classifier saw of it."""

    photo_id: str
    rgb: np.ndarray  # uint8 (H, W, 3)
    embedding: np.ndarray  # (1000,) float32
    maps: np.ndarray | None  # packed feature maps of the whole photo (float16), where cached


def iterate_photos(data_dir: str, split: str) -> Iterator[StoredPhoto]:
    """The photos of a split at their stored size, with their cached classifier outputs, in order: for evaluation."""
    for path in shard_files(data_dir, split):
        for record in records.read_records(path):
            example = parse(record)
            yield StoredPhoto(example.photo_id, decode(example.jpeg), example.embedding, example.feature_maps)
