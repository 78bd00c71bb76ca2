"""The tf.data input pipeline (TensorFlow backend, the reference): prepared shards -> ({"l", "embedding"}, ab/127).

Everything runs in the graph (no per-image Python): parse, decode, resize to the training scale, crop (one of the
cached crops with its own embedding, or a random crop with the whole photo's), random flip, L*a*b*, the paper's
scalings. Randomness is stateless and keyed by (seed, example counter), so a seeded pipeline is deterministic even
with parallel map. `batches.py` computes the same batches without TensorFlow for the other Keras backends.
"""
from __future__ import annotations

import os

import tensorflow as tf

from ..color import ops_rgb_to_lab, scale_ab, scale_l
from .batches import shard_files
from .prepare import load_manifest

DECODED_CACHE_BYTES = 1 << 30  # keep a training split decoded in memory up to about this size
FEW_CORES = 4  # at most this many cores: a fixed, single input thread (see make_dataset)


def _spec(crops):
    spec = {"jpeg": tf.io.FixedLenFeature([], tf.string), "embedding": tf.io.FixedLenFeature([], tf.string),
            "photo_id": tf.io.FixedLenFeature([], tf.string)}
    if crops:
        spec.update(crop_boxes=tf.io.FixedLenFeature([2 * crops], tf.int64),
                    crop_embeddings=tf.io.FixedLenFeature([], tf.string))
    return spec


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


def to_model_io(rgb: tf.Tensor, embedding: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """float RGB [0, 1] -> ({"l": L/50 - 1, "embedding": e}, ab/127)."""
    lab = ops_rgb_to_lab(rgb)
    return {"l": scale_l(lab[..., :1]), "embedding": embedding}, scale_ab(lab[..., 1:])


def make_dataset(data_dir: str, split: str, batch_size: int, scale: int, size: int, training: bool = True,
                 seed: int = 0, fusion: bool = True, repeat: bool | None = None, shuffle_buffer: int = 1024,
                 start_epoch: int = 0) -> tf.data.Dataset:
    """Batches for training (cached or random crops, flips, shuffled, repeated) or evaluation (center crops, in
    order). `start_epoch` re-keys the randomness after a resume so a resumed run does not replay the same batches.
    """
    repeat = training if repeat is None else repeat
    crops = _crops_in(data_dir, split)
    spec = _spec(crops)
    files = shard_files(data_dir, split)
    # Small datasets keep their photos decoded and resized in memory, so that a training step's input work is only
    # a crop, a flip and L*a*b*: on a 2-core machine, decoding beside the network's threads slows both.
    count = load_manifest(data_dir)["counts"].get(split, 0)
    keep_decoded = training and count * scale * scale * 2 * 3 <= DECODED_CACHE_BYTES

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

    ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(4, len(files)))
    ds = ds.map(lambda record: tf.io.parse_single_example(record, spec), num_parallel_calls=tf.data.AUTOTUNE)
    if keep_decoded:
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        ds = ds.cache()  # decoded photos (small datasets) or their JPEG bytes; augmentation still runs every step
        ds = ds.shuffle(shuffle_buffer, seed=seed + 7919 * start_epoch, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def load(index, example):
        if not keep_decoded:
            example = decode(example)
        rgb = tf.image.convert_image_dtype(example["rgb"], tf.float32)
        shape = tf.shape(rgb)
        key = tf.stack([tf.cast(seed, tf.int64) + 1_000_003 * start_epoch, index])
        embedding = tf.cast(tf.io.decode_raw(example["embedding"], tf.float16), tf.float32)
        if crops:
            boxes = tf.reshape(example["crop_boxes"], (crops, 2))
            k = (tf.random.stateless_uniform([], key, 0, crops, dtype=tf.int32) if training else 0)
            corner = tf.minimum(tf.cast(boxes[k], tf.int32), shape[:2] - size)
            rgb = tf.image.crop_to_bounding_box(rgb, corner[0], corner[1], size, size)
            table = tf.reshape(tf.cast(tf.io.decode_raw(example["crop_embeddings"], tf.float16), tf.float32),
                               (crops, -1))
            embedding = table[k]
        elif training:
            rgb = tf.image.stateless_random_crop(rgb, (size, size, 3), seed=key)
        else:
            rgb = tf.image.resize_with_crop_or_pad(rgb, size, size)
        if training:
            rgb = tf.image.stateless_random_flip_left_right(rgb, seed=key + 1)
        inputs, target = to_model_io(rgb, embedding)
        return (inputs if fusion else inputs["l"]), target

    ds = ds.enumerate().map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=training)
    options = tf.data.Options()
    options.deterministic = True
    if (os.cpu_count() or 1) <= FEW_CORES:
        # On a few cores tf.data's autotuning keeps trying more threads, which then take cores from the network's
        # own: training ran at half speed in windows of tens of steps (measured on 2 cores). One fixed thread for
        # the input keeps up (a small share of a core at these rates).
        options.autotune.enabled = False
        options.threading.private_threadpool_size = 1
    return ds.with_options(options).prefetch(2 if (os.cpu_count() or 1) <= FEW_CORES else tf.data.AUTOTUNE)
