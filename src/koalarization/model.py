"""The Deep Koalarization network (DESIGN.md section 2): encoder, fusion with a classifier embedding, decoder.

Keras 3 layers and `keras.ops` only, so the model runs under the TensorFlow, JAX or PyTorch backend. Fully
convolutional: any batch and any H, W that are multiples of 8.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

ENCODER = [(64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (256, 1)]  # (filters, stride)
FUSION_FILTERS = 256


@keras.saving.register_keras_serializable(package="koalarization")
class BroadcastConcat(layers.Layer):
    """Tile a per-image embedding over every spatial position and append it after the feature channels."""

    def call(self, features: Any, embedding: Any) -> Any:
        """Features (N, H, W, C) and embeddings (N, D) -> (N, H, W, C + D): the fusion layer's input."""
        shape = ops.shape(features)
        tiled = ops.broadcast_to(embedding[:, None, None, :], (shape[0], shape[1], shape[2], ops.shape(embedding)[-1]))
        return ops.concatenate([features, ops.cast(tiled, features.dtype)], axis=-1)

    def compute_output_shape(self, features_shape: tuple, embedding_shape: tuple) -> tuple:
        """The output shape without running the layer, for Keras's symbolic model building."""
        return (*features_shape[:-1], features_shape[-1] + embedding_shape[-1])


def _conv(x, filters, stride=1, name=None, activation="relu", kernel=3):
    return layers.Conv2D(filters, kernel, strides=stride, padding="same", activation=activation, name=name)(x)


def build_colorizer(embedding_dim: int = 1000, fusion: bool = True, name: str = "koalarization") -> keras.Model:
    """Inputs: `l` (N, H, W, 1) in [-1, 1] and, with fusion, `embedding` (N, embedding_dim).
    Output: a*b*/127 (N, H, W, 2) in [-1, 1], float32 whatever the compute dtype.

    `fusion=False` is the ablation: the same network with the embedding left out (the 1x1 fusion conv stays, so
    only the classifier's information differs).
    """
    l_input = keras.Input((None, None, 1), name="l")
    x = l_input
    for i, (filters, stride) in enumerate(ENCODER):
        x = _conv(x, filters, stride, name=f"encoder_{i}")
    inputs = [l_input]
    if fusion:
        embedding = keras.Input((embedding_dim,), name="embedding")
        inputs.append(embedding)
        x = BroadcastConcat(name="fusion_broadcast")(x, embedding)
    x = _conv(x, FUSION_FILTERS, kernel=1, name="fusion")
    x = _conv(x, 128, name="decoder_0")
    x = layers.UpSampling2D(2, name="up_0")(x)
    x = _conv(x, 64, name="decoder_1")
    x = _conv(x, 64, name="decoder_2")
    x = layers.UpSampling2D(2, name="up_1")(x)
    x = _conv(x, 32, name="decoder_3")
    x = _conv(x, 2, activation=None, name="decoder_4")
    x = layers.Activation("tanh", dtype="float32", name="ab")(x)
    x = layers.UpSampling2D(2, interpolation="nearest", name="up_2", dtype="float32")(x)
    return keras.Model(inputs if fusion else l_input, x, name=name)


def count_trainable(model: keras.Model) -> int:
    """Trainable parameter count, to report and check the network's size."""
    return int(sum(ops.size(w) for w in model.trainable_weights))


def flops_per_image(height: int, width: int, embedding_dim: int = 1000, fusion: bool = True) -> int:
    """Exact multiply-add FLOPs (2 per MAC) of one forward pass at H x W, counting convolutions only.

    Biases, ReLU, tanh and upsampling are a rounding error (< 0.1%) and left out; a training step costs about three
    forward passes (forward, gradient wrt inputs, gradient wrt weights).
    """
    total, h, w, channels = 0, height, width, 1
    for filters, stride in ENCODER:
        h, w = -(-h // stride), -(-w // stride)
        total += h * w * 9 * channels * filters
        channels = filters
    total += h * w * (channels + (embedding_dim if fusion else 0)) * FUSION_FILTERS
    channels = FUSION_FILTERS
    for filters, upsample_after in [(128, True), (64, False), (64, True), (32, False), (2, False)]:
        total += h * w * 9 * channels * filters
        channels = filters
        if upsample_after:
            h, w = h * 2, w * 2
    return 2 * total
