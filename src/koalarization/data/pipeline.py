"""The tf.data input pipeline (TensorFlow backend, the reference): prepared shards -> (the network's inputs:
{"l", "embedding", "s8", "s16", "s32"} as its fusion level needs, ab/127).

Everything runs in the graph (no per-image Python): parse, decode, resize to the training scale, crop (one of the
cached crops with its own embedding and feature maps, or a random crop with the whole photo's), random flip (of the
maps too), L*a*b*, the paper's scalings. Randomness is stateless and keyed by (seed, example counter), so a seeded
pipeline is deterministic even with parallel map. `batches.py` computes the same batches without TensorFlow for the
other Keras backends.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ..color import ops_rgb_to_lab, scale_ab, scale_l
from ..config import as_fusion, uses_feature_maps
from ..model import LEVELS, input_names
from .batches import shard_files
from .prepare import load_manifest

DECODED_CACHE_BYTES = 1 << 30  # keep a training split decoded in memory up to about this size
FEW_CORES = 4  # at most this many cores: a fixed, single input thread (see make_dataset)


def _spec(crops, maps):
    spec = {"jpeg": tf.io.FixedLenFeature([], tf.string), "embedding": tf.io.FixedLenFeature([], tf.string),
            "photo_id": tf.io.FixedLenFeature([], tf.string)}
    if crops:
        spec.update(crop_boxes=tf.io.FixedLenFeature([2 * crops], tf.int64),
                    crop_embeddings=tf.io.FixedLenFeature([], tf.string))
    if maps:
        spec["crop_feature_maps" if crops else "feature_maps"] = tf.io.FixedLenFeature([], tf.string)
    return spec


def _levels(packed, shapes):
    """Packed float16 feature maps (D,) -> [(h, w, c) float32 per level] (`backbones.unpack_maps` in the graph)."""
    sizes = [int(np.prod(shapes[level])) for level in LEVELS]
    return [tf.reshape(part, shapes[level]) for part, level in zip(tf.split(packed, sizes), LEVELS)]


def _decoded(example, key):
    """A float16 byte string of a parsed example -> float32 values."""
    return tf.cast(tf.io.decode_raw(example[key], tf.float16), tf.float32)


def _crops_in(data_dir, split):
    """How many cached crops each record of a split holds (training: crops_per_photo; other splits: 1 or 0)."""
    crops = load_manifest(data_dir)["params"].get("crops_per_photo", 0)
    return crops if split == "train" else min(crops, 1)


def _resize_to_scale(image, scale):
    """Short side -> `scale` (aspect kept, antialiased bilinear; the same rounding as images.scaled_size)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    factor = tf.cast(scale, tf.float32) / tf.reduce_min(shape)
    size = tf.maximum(1, tf.cast(tf.round(shape * factor), tf.int32))
    return tf.image.resize(image, size, antialias=True)


def to_model_io(rgb: tf.Tensor, embedding: tf.Tensor, maps: list | None = None
                ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """float RGB [0, 1] -> ({"l": L/50 - 1, "embedding": e, and the maps by level}, ab/127)."""
    lab = ops_rgb_to_lab(rgb)
    inputs = {"l": scale_l(lab[..., :1]), "embedding": embedding, **dict(zip(LEVELS, maps or []))}
    return inputs, scale_ab(lab[..., 1:])


def _decoder(scale: int, size: int):
    """A parsed example -> the same with its JPEG decoded to uint8 `rgb` at the training scale (upscaled so that a
    crop fits)."""

    def decode(example):
        rgb = tf.image.convert_image_dtype(tf.io.decode_jpeg(example["jpeg"], channels=3), tf.float32)
        rgb = _resize_to_scale(rgb, scale)
        shape = tf.shape(rgb)
        grow = tf.maximum(1.0, tf.cast(size, tf.float32) / tf.cast(tf.reduce_min(shape[:2]), tf.float32))
        rgb = tf.cond(grow > 1.0, lambda: tf.image.resize(rgb, tf.cast(tf.math.ceil(
            tf.cast(shape[:2], tf.float32) * grow), tf.int32)), lambda: rgb)
        decoded = {k: v for k, v in example.items() if k != "jpeg"}
        decoded["rgb"] = tf.image.convert_image_dtype(tf.clip_by_value(rgb, 0.0, 1.0), tf.uint8, saturate=True)
        return decoded

    return decode


@dataclass(frozen=True)
class _Crop:
    """How one example becomes one sample: which crop (cached, random or centered), which flip, which inputs."""

    size: int
    crops: int  # cached crops per record (0: none)
    shapes: dict | None  # feature-map shapes where the network takes them
    names: tuple[str, ...]  # the network's inputs
    training: bool
    seed: int
    start_epoch: int

    def __call__(self, index, example):
        rgb = tf.image.convert_image_dtype(example["rgb"], tf.float32)
        shape, size, crops = tf.shape(rgb), self.size, self.crops
        key = tf.stack([tf.cast(self.seed, tf.int64) + 1_000_003 * self.start_epoch, index])
        embedding = _decoded(example, "embedding")
        packed = _decoded(example, "feature_maps") if self.shapes and not crops else None
        if crops:
            boxes = tf.reshape(example["crop_boxes"], (crops, 2))
            k = (tf.random.stateless_uniform([], key, 0, crops, dtype=tf.int32) if self.training else 0)
            corner = tf.minimum(tf.cast(boxes[k], tf.int32), shape[:2] - size)
            rgb = tf.image.crop_to_bounding_box(rgb, corner[0], corner[1], size, size)
            embedding = tf.reshape(_decoded(example, "crop_embeddings"), (crops, -1))[k]
            packed = tf.reshape(_decoded(example, "crop_feature_maps"), (crops, -1))[k] if self.shapes else None
        elif self.training:
            rgb = tf.image.stateless_random_crop(rgb, (size, size, 3), seed=key)
        else:
            rgb = tf.image.resize_with_crop_or_pad(rgb, size, size)
        maps = _levels(packed, self.shapes) if self.shapes else []
        if self.training:  # as tf.image.stateless_random_flip_left_right decides, with the maps flipped alike
            flip = tf.random.stateless_uniform([], seed=key + 1, minval=0, maxval=1.0) < 0.5
            rgb = tf.cond(flip, lambda: tf.reverse(rgb, [1]), lambda: rgb)
            maps = [tf.cond(flip, lambda m=m: tf.reverse(m, [1]), lambda m=m: m) for m in maps]
        inputs, target = to_model_io(rgb, embedding, maps)
        return ({n: inputs[n] for n in self.names} if len(self.names) > 1 else inputs["l"]), target


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    # Several workers (MultiWorkerMirroredStrategy): each runs this whole pipeline and keeps its share of every global
    # batch, so together they train on exactly the batches one process would (sharding by file would give each
    # worker other photos, crops and flips). Ignored by a single process.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    if (os.cpu_count() or 1) <= FEW_CORES:
        # On a few cores tf.data's autotuning keeps trying more threads, which then take cores from the network's
        # own: training ran at half speed in windows of tens of steps (measured on 2 cores). One fixed thread for
        # the input keeps up (a small share of a core at these rates).
        options.autotune.enabled = False
        options.threading.private_threadpool_size = 1
    return options


def make_dataset(data_dir: str, split: str, batch_size: int, scale: int, size: int, training: bool = True,
                 seed: int = 0, fusion: str | bool = "global", repeat: bool | None = None, shuffle_buffer: int = 1024,
                 start_epoch: int = 0) -> tf.data.Dataset:
    """Batches for training (cached or random crops, flips, shuffled, repeated) or evaluation (center crops, in
    order), with the inputs a network of this fusion level takes. `start_epoch` re-keys the randomness after a
    resume so a resumed run does not replay the same batches.
    """
    repeat = training if repeat is None else repeat
    level = as_fusion(fusion)
    manifest = load_manifest(data_dir)
    shapes = manifest.get("feature_shapes") if uses_feature_maps(level) else None
    if uses_feature_maps(level) and not shapes:
        raise ValueError(f"{data_dir} holds no feature maps; a {level} network needs data.feature_maps = true")
    crops = _crops_in(data_dir, split)
    spec, files, decode = _spec(crops, bool(shapes)), shard_files(data_dir, split), _decoder(scale, size)
    # Small datasets keep their photos decoded and resized in memory, so that a training step's input work is only
    # a crop, a flip and L*a*b*: on a 2-core machine, decoding beside the network's threads slows both.
    keep_decoded = training and manifest["counts"].get(split, 0) * scale * scale * 2 * 3 <= DECODED_CACHE_BYTES
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(4, len(files)))
    ds = ds.map(lambda record: tf.io.parse_single_example(record, spec), num_parallel_calls=tf.data.AUTOTUNE)
    if keep_decoded:
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        ds = ds.cache()  # decoded photos (small datasets) or their JPEG bytes; augmentation still runs every step
        ds = ds.shuffle(shuffle_buffer, seed=seed + 7919 * start_epoch, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    crop = _Crop(size, crops, shapes, tuple(input_names(level)), training, seed, start_epoch)
    ds = ds.enumerate().map(lambda index, example: crop(index, example if keep_decoded else decode(example)),
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=training)
    return ds.with_options(_options()).prefetch(2 if (os.cpu_count() or 1) <= FEW_CORES else tf.data.AUTOTUNE)
