"""The tf.data input pipeline: prepared shards -> ({"l", "embedding"}, ab/127) batches.

Everything runs in the graph (no per-image Python): parse, decode, random crop and flip, L*a*b*, the paper's
scalings. Randomness is stateless and keyed by (seed, example counter), so a seeded pipeline is deterministic even
with parallel map.
"""
import os

import tensorflow as tf

from ..color import AB_SCALE, L_SCALE, tf_rgb_to_lab
from .prepare import load_manifest

_SPEC = {
    "jpeg": tf.io.FixedLenFeature([], tf.string),
    "embedding": tf.io.FixedLenFeature([], tf.string),
    "photo_id": tf.io.FixedLenFeature([], tf.string),
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
}


def shard_files(data_dir, split):
    files = [os.path.join(data_dir, f) for f in load_manifest(data_dir)["shards"][split]]
    if not files:
        raise ValueError(f"{data_dir}: the {split!r} split is empty")
    return files


def parse(record):
    ex = tf.io.parse_single_example(record, _SPEC)
    embedding = tf.cast(tf.io.decode_raw(ex["embedding"], tf.float16), tf.float32)
    return ex["jpeg"], embedding, ex["photo_id"]


def _crop(image, size, seed, training):
    """Random (training) or center crop of size x size; images smaller than that are upscaled first."""
    shape = tf.shape(image)
    short = tf.minimum(shape[0], shape[1])
    scale = tf.maximum(1.0, tf.cast(size, tf.float32) / tf.cast(short, tf.float32))
    new_hw = tf.cast(tf.math.ceil(tf.cast(shape[:2], tf.float32) * scale), tf.int32)
    image = tf.cond(scale > 1.0, lambda: tf.image.resize(image, new_hw), lambda: image)
    if training:
        image = tf.image.stateless_random_crop(image, (size, size, 3), seed=seed)
        return tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
    return tf.image.resize_with_crop_or_pad(image, size, size)


def to_model_io(rgb, embedding):
    """float RGB [0, 1] -> ({"l": L/50 - 1, "embedding": e}, ab/127)."""
    lab = tf_rgb_to_lab(rgb)
    inputs = {"l": lab[..., :1] / L_SCALE - 1.0, "embedding": embedding}
    return inputs, lab[..., 1:] / AB_SCALE


def make_dataset(data_dir, split, batch_size, size, training=True, seed=0, fusion=True, repeat=None,
                 shuffle_buffer=1024, start_epoch=0):
    """Batches for training (random crops, flips, shuffled, repeated) or evaluation (center crops, in order).

    `start_epoch` re-keys the randomness after a resume so a resumed run does not replay the same batches.
    """
    repeat = training if repeat is None else repeat
    files = shard_files(data_dir, split)
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(4, len(files)))
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        ds = ds.cache()  # prepared JPEG bytes are small; decoding and augmentation still run every step
        ds = ds.shuffle(shuffle_buffer, seed=seed + 7919 * start_epoch, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def load(index, item):
        jpeg, embedding, _ = item
        rgb = tf.image.convert_image_dtype(tf.io.decode_jpeg(jpeg, channels=3), tf.float32)
        key = tf.stack([tf.cast(seed, tf.int64) + 1_000_003 * start_epoch, index])
        rgb = _crop(rgb, size, key, training)
        inputs, target = to_model_io(rgb, embedding)
        return (inputs if fusion else inputs["l"]), target

    ds = ds.enumerate().map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=training)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def gray_baseline_loss(dataset):
    """The loss of predicting a*b* = 0 everywhere (mean squared scaled a*b*) on a finite dataset."""
    total, count = 0.0, 0
    for _inputs, target in dataset:
        total += float(tf.reduce_sum(tf.square(target)))
        count += int(tf.size(target))
    return total / max(count, 1)


def iterate_photos(data_dir, split):
    """Python iterator over (photo_id, uint8 RGB, embedding) of a split, in order: for evaluation."""
    ds = tf.data.TFRecordDataset(shard_files(data_dir, split)).map(parse)
    for jpeg, embedding, photo_id in ds:
        yield photo_id.numpy().decode(), tf.io.decode_jpeg(jpeg, channels=3).numpy(), embedding.numpy()
