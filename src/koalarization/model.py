"""The Deep Koalarization network (DESIGN.md section 2): encoder, fusion with the classifier, decoder; and its
spatial-fusion variants, which also take where the classifier sees things (DESIGN.md section 7).

Keras 3 layers and `keras.ops` only, so the model runs under the TensorFlow, JAX or PyTorch backend. Fully
convolutional: any batch and any H, W that are multiples of 8.

Fusion levels (`config.Fusion`):
- `none`: the ablation, the network without the classifier (the 1x1 fusion convolution stays);
- `global`: the paper's, the 1000 logits tiled over the H/8 grid and appended after the 256 encoder channels;
- `spatial`: global, plus the classifier's stride-8, -16 and -32 feature maps of the same gray image, resized to
  the H/8 grid and appended there too, so the fusion convolution learns from *where* the classifier sees grass, sky
  or skin, not only *what* the photo shows;
- `hypercolumn`: spatial, plus the stride-8 maps appended again in the decoder at H/4 and H/2 (Larsson et al. 2016,
  Dahl 2016), where finer positions are decided.

`map_dropout` (spatial and hypercolumn only) drops whole channels of the classifier's maps while training
(SpatialDropout2D, Tompson et al. 2015): with a few hundred photos the fusion convolution otherwise learns to lean on
a handful of channels that happen to mark the training photos' colours (notebook 2, "Dropping map channels while
training").
"""
from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from .config import FEATURE_LEVELS, as_fusion, input_names, uses_embedding, uses_feature_maps

ENCODER = [(64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (256, 1)]  # (filters, stride)
FUSION_FILTERS = 256
# (filters, upsample after, the decoder stage where a hypercolumn network appends the stride-8 maps again)
DECODER = [(128, True, False), (64, False, True), (64, True, False), (32, False, True), (2, False, False)]
LEVELS = FEATURE_LEVELS


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


@keras.saving.register_keras_serializable(package="koalarization")
class ResizeConcat(layers.Layer):
    """Resize feature maps (bilinear) to the spatial size of `features` and append them after its channels.

    The classifier's maps come at its own input's grid (28 x 28 at stride 8 for a 224 px input); the network's
    grid depends on the photo. Both cover the same image, so a resize aligns them.
    """

    def call(self, features: Any, maps: list[Any]) -> Any:
        """Features (N, H, W, C) and a list of maps (N, h_i, w_i, c_i) -> (N, H, W, C + sum c_i)."""
        shape = ops.shape(features)
        resized = [ops.cast(ops.image.resize(m, (shape[1], shape[2]), interpolation="bilinear", antialias=False),
                            features.dtype) for m in maps]
        return ops.concatenate([features, *resized], axis=-1)

    def compute_output_shape(self, features_shape: tuple, maps_shape: list[tuple]) -> tuple:
        return (*features_shape[:-1], features_shape[-1] + sum(s[-1] for s in maps_shape))


@keras.saving.register_keras_serializable(package="koalarization")
class MapDropout(layers.SpatialDropout2D):
    """SpatialDropout2D whose random state is saved with the network.

    Keras saves a layer's weights but not its seed generator, so a run resumed from a checkpoint would draw the
    masks of step 0 again; with the state saved it draws those an uninterrupted run draws.
    """

    def save_own_variables(self, store: Any) -> None:
        store["0"] = self.seed_generator.state

    def load_own_variables(self, store: Any) -> None:
        if "0" in store:  # absent from a network saved by plain SpatialDropout2D
            self.seed_generator.state.assign(store["0"])


def _standardized(tensor: Any, level: str, stats: dict[str, tuple[list[float], list[float]]] | None) -> Any:
    """A map input standardized channel by channel with the training photos' statistics (unchanged without)."""
    if not stats:
        return tensor
    mean, variance = stats[level]
    return layers.Normalization(axis=-1, mean=mean, variance=variance, name=f"standardize_{level}")(tensor)


def _conv(x, filters, stride=1, name=None, activation="relu", kernel=3):
    return layers.Conv2D(filters, kernel, strides=stride, padding="same", activation=activation, name=name)(x)


def build_colorizer(embedding_dim: int = 1000, fusion: str | bool = "global",
                    feature_channels: dict[str, int] | None = None,
                    feature_stats: dict[str, tuple[list[float], list[float]]] | None = None,
                    map_dropout: float = 0.0, name: str = "koalarization") -> keras.Model:
    """Inputs: `l` (N, H, W, 1) in [-1, 1]; with fusion, `embedding` (N, embedding_dim); with spatial fusion, the
    maps `s8`, `s16`, `s32` (N, h, w, feature_channels[level]) at any grid. Output: a*b*/127 (N, H, W, 2) in
    [-1, 1], float32 whatever the compute dtype.

    `fusion`: "none", "global" (the paper's), "spatial" or "hypercolumn" (see the module docstring); True and False
    mean "global" and "none", as in checkpoints written before the spatial models.

    `feature_stats`: {level: (per-channel mean, per-channel variance)} of the classifier's maps on the training
    photos. The maps are standardized with them inside the network (fixed `Normalization` layers, saved with it):
    raw, their values reach 50 with a spread of 6, and appended at that scale beside the encoder's activations they
    saturate the tanh output within the first steps, after which nothing trains.

    `map_dropout`: the fraction of the maps' channels dropped per image while training (none at inference).
    """
    level: str = as_fusion(fusion)
    if map_dropout and not uses_feature_maps(level):
        raise ValueError(f"map_dropout needs a network that takes the classifier's maps, not fusion={level}")
    l_input = keras.Input((None, None, 1), name="l")
    inputs = {"l": l_input}
    if uses_embedding(level):
        inputs["embedding"] = keras.Input((embedding_dim,), name="embedding")
    if uses_feature_maps(level):
        if not feature_channels:
            raise ValueError(f"a {level} network needs the classifier's feature_channels ({', '.join(LEVELS)})")
        inputs.update({name: keras.Input((None, None, feature_channels[name]), name=name) for name in LEVELS})
    maps = {level: _standardized(inputs[level], level, feature_stats) for level in LEVELS if level in inputs}
    if map_dropout:
        maps = {level: MapDropout(map_dropout, name=f"map_dropout_{level}")(m) for level, m in maps.items()}
    x = l_input
    for i, (filters, stride) in enumerate(ENCODER):
        x = _conv(x, filters, stride, name=f"encoder_{i}")
    if uses_embedding(level):
        x = BroadcastConcat(name="fusion_broadcast")(x, inputs["embedding"])
    if uses_feature_maps(level):
        x = ResizeConcat(name="fusion_maps")(x, [maps[name] for name in LEVELS])
    x = _conv(x, FUSION_FILTERS, kernel=1, name="fusion")
    for i, (filters, upsample_after, hypercolumn_here) in enumerate(DECODER):
        if level == "hypercolumn" and hypercolumn_here:
            x = ResizeConcat(name=f"hypercolumn_{i}")(x, [maps["s8"]])
        x = _conv(x, filters, activation="relu" if i < len(DECODER) - 1 else None, name=f"decoder_{i}")
        if upsample_after:
            x = layers.UpSampling2D(2, name=f"up_{0 if i == 0 else 1}")(x)
    x = layers.Activation("tanh", dtype="float32", name="ab")(x)
    x = layers.UpSampling2D(2, interpolation="nearest", name="up_2", dtype="float32")(x)
    model_inputs = [inputs[n] for n in input_names(level)]
    return keras.Model(model_inputs if len(model_inputs) > 1 else l_input, x, name=name)


def count_trainable(model: keras.Model) -> int:
    """Trainable parameter count, to report and check the network's size."""
    return int(sum(ops.size(w) for w in model.trainable_weights))


def flops_per_image(height: int, width: int, embedding_dim: int = 1000, fusion: str | bool = "global",
                    feature_channels: dict[str, int] | None = None) -> int:
    """Exact multiply-add FLOPs (2 per MAC) of one forward pass at H x W, counting convolutions only.

    Biases, ReLU, tanh, upsampling and the resizing of feature maps are a rounding error (< 0.1%) and left out; a
    training step costs about three forward passes (forward, gradient wrt inputs, gradient wrt weights).
    """
    level: str = as_fusion(fusion)
    maps = (feature_channels or {}) if uses_feature_maps(level) else {}
    total, h, w, channels = 0, height, width, 1
    for filters, stride in ENCODER:
        h, w = -(-h // stride), -(-w // stride)
        total += h * w * 9 * channels * filters
        channels = filters
    fused = channels + (embedding_dim if uses_embedding(level) else 0) + sum(maps.values())
    total += h * w * fused * FUSION_FILTERS
    channels = FUSION_FILTERS
    for filters, upsample_after, hypercolumn_here in DECODER:
        extra = maps.get("s8", 0) if level == "hypercolumn" and hypercolumn_here else 0
        total += h * w * 9 * (channels + extra) * filters
        channels = filters
        if upsample_after:
            h, w = h * 2, w * 2
    return 2 * total
