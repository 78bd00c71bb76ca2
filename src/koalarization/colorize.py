"""Colorize photos of any size and aspect ratio (the paper's claim, delivered).

The network runs at a working resolution (by default the scale the checkpoint was trained at, sides multiples of 8,
long side capped); the predicted a*b* is upsampled and joined to the photo's own full-resolution L. Color input is
desaturated first (only its L is used). Photos smaller than the working resolution are upsampled for the network
and keep their own size in the output; nothing is too small.

Where the time goes: the classifier runs compiled on the photos it is given and the network compiled where that
pays (`_compiled`), on one photo or on a batch of a folder's photos that share a working size; the full-resolution
colour maths (the photo's L, and L joined to the upsampled a*b*) runs compiled on the accelerator (`pixels`). The
outputs are those of the plain scikit-image maths (`lightness`, `join`, which evaluation keeps using) to within one
level in about one value in 10,000 (tests/test_speed_equivalence.py).
"""
from __future__ import annotations

import logging
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from skimage import color as skcolor

from . import backbones, checkpoint, pixels
from .color import scale_l, unscale_ab
from .config import input_names, uses_embedding, uses_feature_maps
from .images import PhotoError, is_photo_path, read_photo, save_image_atomic

log = logging.getLogger(__name__)
ROWS_PER_CHUNK = 256  # full-resolution color conversions run in row bands, so memory stays ~linear in pixels
MAX_LONG_SIDE = 1024  # working resolution cap for extreme aspect ratios
BATCH = 8  # a folder's photos that share a working size go through the networks together, up to this many
BATCH_PIXELS = 8_000_000  # ... and up to this many pixels in all (memory)
PNG_LEVEL = 1  # zlib's fastest: 3-4x faster to write than PIL's default 6, files about 10% larger, same pixels


def working_size(height: int, width: int, short_side: int = 224,
                 max_long_side: int = MAX_LONG_SIDE) -> tuple[int, int]:
    """(h, w) for the network: short side `short_side`, aspect kept, both multiples of 8, long side capped."""
    scale = short_side / min(height, width)
    scale = min(scale, max_long_side / max(height, width)) if max(height, width) * scale > max_long_side else scale
    return max(8, int(round(height * scale / 8)) * 8), max(8, int(round(width * scale / 8)) * 8)


def _rows(fn, array, channels_out):
    out = np.empty(array.shape[:2] + ((channels_out,) if channels_out else ()), np.float32)
    for start in range(0, array.shape[0], ROWS_PER_CHUNK):
        out[start:start + ROWS_PER_CHUNK] = fn(array[start:start + ROWS_PER_CHUNK])
    return out


def lightness(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> L (float32, full resolution), computed in row bands."""
    return _rows(lambda band: skcolor.rgb2lab(band)[..., 0], rgb, None)


def _resize_plane(plane, size):
    """float32 (H, W) -> (h, w) with PIL's antialiased bilinear filter (size = (h, w))."""
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))
    return np.asarray(image.resize(size[::-1], Image.Resampling.BILINEAR))


def join(l_full: np.ndarray, ab_small: np.ndarray) -> np.ndarray:
    """Full-resolution L + low-resolution a*b* -> uint8 RGB at full resolution."""
    height, width = l_full.shape
    out = np.empty((height, width, 3), np.uint8)
    a_full = _resize_plane(ab_small[..., 0], (height, width))
    b_full = _resize_plane(ab_small[..., 1], (height, width))
    for start in range(0, height, ROWS_PER_CHUNK):
        rows = slice(start, start + ROWS_PER_CHUNK)
        lab = np.stack([l_full[rows], a_full[rows], b_full[rows]], axis=-1).astype(np.float64)
        with warnings.catch_warnings():  # out-of-gamut a*b* are clipped to sRGB, as intended
            warnings.simplefilter("ignore", UserWarning)
            out[rows] = np.round(np.clip(skcolor.lab2rgb(lab), 0, 1) * 255)
    return out


def render(l_full: np.ndarray, ab_small: np.ndarray) -> np.ndarray:
    """`join`, with the colour maths compiled on the accelerator (`pixels`): what `koala colorize` writes."""
    height, width = l_full.shape
    return pixels.join(l_full, _resize_plane(ab_small[..., 0], (height, width)),
                       _resize_plane(ab_small[..., 1], (height, width)))


@dataclass(frozen=True)
class Seen:
    """What the frozen classifier saw of one photo: its 1000-d embedding and, for the spatial networks, its feature
    maps packed as one vector (`backbones.pack_maps`). Computed once per photo, shared by every network (and every
    member of an ensemble) that uses that classifier."""

    embedding: np.ndarray
    maps: np.ndarray | None = None


def _compiled(model: Any, fusion: str) -> Callable[[Any], np.ndarray]:
    """The network as a function of a batch, compiled where that pays: under TensorFlow, Keras's `predict_on_batch`
    (on one photo the same numbers as calling the model, measured bit for bit), which stops retracing for new
    working sizes after the second one. Called eagerly elsewhere: a network with spatial fusion cannot be traced with
    unknown sides (`model.ResizeConcat` resizes the maps to the sides it is given) and a graph per working size costs
    more to trace than it saves on a few photos (the demo's test split has 17 sizes), and JAX would compile the whole
    network again for every working size."""
    import keras

    if keras.backend.backend() == "tensorflow" and not uses_feature_maps(fusion):
        return lambda feed: np.asarray(model.predict_on_batch(feed))
    return lambda feed: np.asarray(model(feed, training=False))


def average_ab(predictions: list[np.ndarray]) -> np.ndarray:
    """A seed ensemble's a*b*: the plain mean of its members' predictions (the one place it is computed)."""
    return np.mean(np.stack([np.asarray(p, np.float32) for p in predictions]), axis=0)


class Colorizer:
    """A trained checkpoint plus its frozen classifier, ready to colorize photos."""

    def __init__(self, checkpoint_path: str | os.PathLike, backbone_weights: str | os.PathLike | None = "imagenet",
                 short_side: int | None = None, embedder: backbones.Embedder | None = None,
                 cached_embeddings: bool = False):
        """`short_side`: the network's working resolution (default: the scale the checkpoint was trained at; a
        network colorizes best at the scale it learned). A run folder means the checkpoint its training chose (its
        best or its last). `cached_embeddings=True`: the caller passes what the classifier saw to predict_ab
        (evaluation), no backbone is built."""
        expect_backbone = embedder.name if embedder is not None and not cached_embeddings else None
        self.model, self.config = checkpoint.load_checkpoint(checkpoint_path, expect_backbone=expect_backbone,
                                                             which="chosen")
        self.short_side = short_side or self.config["train_scale"]
        self.fusion = checkpoint.fusion_of(self.config)
        self.inputs = input_names(self.fusion)
        self.embedder = None
        self._call: Callable[[Any], np.ndarray] | None = None
        if uses_embedding(self.fusion) and not cached_embeddings:
            # batch_size=1: the classifier runs on the photos it is given, not on a batch padded to 16
            self.embedder = embedder or backbones.Embedder(self.config["backbone"], backbone_weights, batch_size=1,
                                                           feature_maps=uses_feature_maps(self.fusion))
            if uses_feature_maps(self.fusion) and not self.embedder.feature_maps:
                raise ValueError(f"{checkpoint_path} is a {self.fusion} network: its classifier must give feature "
                                 f"maps (backbones.Embedder(..., feature_maps=True))")

    def predict_ab(self, l_small: np.ndarray, seen: Seen | None = None,
                   l_full: np.ndarray | None = None) -> np.ndarray:
        """L at working resolution (h, w) -> a*b* (h, w, 2). Without what the classifier saw (cached at
        preparation), the classifier is run on the photo's full-resolution L (`l_full`, else l_small)."""
        if seen is None and len(self.inputs) > 1:
            seen = self.embed(l_full if l_full is not None else l_small)
        return self.predict_batch(np.asarray(l_small)[None], [seen] if seen is not None else None)[0]

    def predict_batch(self, l_small: np.ndarray, seen: list[Seen] | None = None) -> np.ndarray:
        """L at working resolution of N photos of one size (N, h, w) and what the classifier saw of each -> a*b*
        (N, h, w, 2). The network runs compiled (`predict_on_batch`: on one photo, the same numbers as calling it)."""
        inputs: dict[str, np.ndarray] = {"l": scale_l(np.asarray(l_small))[..., None].astype(np.float32)}
        if len(self.inputs) > 1:
            if seen is None:
                raise ValueError(f"a {self.fusion} network needs what the classifier saw of each photo")
            inputs["embedding"] = np.stack([np.asarray(s.embedding, np.float32) for s in seen])
        if uses_feature_maps(self.fusion):
            if seen is None or any(s.maps is None for s in seen):
                raise ValueError(f"a {self.fusion} network needs the classifier's feature maps of the photo")
            packed = np.stack([np.asarray(s.maps, np.float32) for s in seen])
            inputs.update(backbones.unpack_maps(packed, self.config["feature_shapes"]))
        feed = inputs if len(self.inputs) > 1 else inputs["l"]
        if self._call is None:
            self._call = _compiled(self.model, self.fusion)
        return unscale_ab(self._call(feed))

    def embed(self, lightness_plane: np.ndarray) -> Seen:
        """What the classifier sees of a photo's colorless version, from its L at (up to) the resolution the
        training photos were stored at: the classifier must see photos as sharp as those it saw in training."""
        return self.embed_batch([lightness_plane])[0]

    def embed_batch(self, planes: list[np.ndarray]) -> list[Seen]:
        """`embed` for several photos (the classifier runs on each: its input is one square size)."""
        if self.embedder is None:
            raise ValueError("this colorizer was built for cached classifier outputs (cached_embeddings=True)")
        logits, maps = self.embedder.features([self._classifier_view(plane) for plane in planes])
        return [Seen(logits[k], None if maps is None else maps[k]) for k in range(len(planes))]

    def _classifier_view(self, lightness_plane: np.ndarray) -> np.ndarray:
        """The colorless RGB image the classifier is shown: L at (up to) the stored resolution, a* = b* = 0."""
        from .color import gray_from_l, gray_rgb_from_l

        stored = self.config.get("stored_short_side") or 256
        if min(lightness_plane.shape) > stored:
            height, width = lightness_plane.shape
            lightness_plane = _resize_plane(lightness_plane, working_size(height, width, stored, 1 << 30))
        if self.config.get("letterbox_size"):  # trained on the paper's white letterbox: show the classifier the same
            from .images import letterbox

            gray = gray_rgb_from_l(lightness_plane)
            return letterbox(np.round(gray * 255).astype(np.uint8), self.config["letterbox_size"]) / 255.0
        return np.repeat(gray_from_l(lightness_plane)[..., None], 3, axis=-1)

    def lightness_planes(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (L at full resolution, L at the working resolution), with scikit-image's maths (`lightness`)."""
        l_full = lightness(rgb)
        height, width = l_full.shape
        return l_full, _resize_plane(l_full, working_size(height, width, self.short_side))

    def planes(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`lightness_planes` with the full-resolution L computed on the accelerator (`pixels`): colorizing's."""
        l_full = pixels.lightness(rgb)
        height, width = l_full.shape
        return l_full, _resize_plane(l_full, working_size(height, width, self.short_side))

    def colorize(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB (gray or color, any size) -> uint8 RGB colorized at the photo's own resolution."""
        l_full, l_small = self.planes(rgb)
        return render(l_full, self.predict_ab(l_small, l_full=l_full))


class Ensemble:
    """Several checkpoints of one model (its training seeds) as one colorizer: their a*b* predictions averaged.

    Trained on a few hundred photos, each seed settles on casts of its own; the average keeps the colors the seeds
    agree on and lets the rest cancel (measured in notebook 3). The members share the classifier (one embedding per
    photo) and must agree on the backbone, on fusion and on the working scale."""

    def __init__(self, checkpoint_paths: list[str | os.PathLike],
                 backbone_weights: str | os.PathLike | None = "imagenet", short_side: int | None = None,
                 cached_embeddings: bool = False):
        paths = [os.fspath(path) for path in checkpoint_paths]
        if not paths:
            raise ValueError("an ensemble needs at least one checkpoint")
        first = Colorizer(paths[0], backbone_weights, short_side, cached_embeddings=cached_embeddings)
        self.members = [first] + [Colorizer(path, short_side=short_side, cached_embeddings=True) for path in paths[1:]]
        self.short_side, self.fusion, self.embedder = first.short_side, first.fusion, first.embedder
        self.config, self.inputs = first.config, first.inputs
        for path, member in zip(paths[1:], self.members[1:]):
            mismatched = [f"{key}: {member.config.get(key)!r} (first: {first.config.get(key)!r})"
                          for key in ("backbone",) if member.config.get(key) != first.config.get(key)]
            if member.fusion != self.fusion:
                mismatched.append(f"fusion: {member.fusion!r} (first: {self.fusion!r})")
            if member.short_side != self.short_side:
                mismatched.append(f"scale: {member.short_side} (first: {self.short_side})")
            if mismatched:
                raise ValueError(f"{path} cannot join an ensemble with {paths[0]}: " + "; ".join(mismatched))

    def __len__(self) -> int:
        return len(self.members)

    def predict_ab(self, l_small: np.ndarray, seen: Seen | None = None,
                   l_full: np.ndarray | None = None) -> np.ndarray:
        """The members' a*b* averaged; the classifier runs once."""
        if uses_embedding(self.fusion) and seen is None:
            seen = self.members[0].embed(l_full if l_full is not None else l_small)
        return average_ab([member.predict_ab(l_small, seen) for member in self.members])

    def predict_batch(self, l_small: np.ndarray, seen: list[Seen] | None = None) -> np.ndarray:
        return np.stack([average_ab(list(each)) for each in
                         zip(*(member.predict_batch(l_small, seen) for member in self.members))])

    def embed_batch(self, planes: list[np.ndarray]) -> list[Seen]:
        return self.members[0].embed_batch(planes)

    def lightness_planes(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.members[0].lightness_planes(rgb)

    def planes(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.members[0].planes(rgb)

    def colorize(self, rgb: np.ndarray) -> np.ndarray:
        l_full, l_small = self.planes(rgb)
        return render(l_full, self.predict_ab(l_small, l_full=l_full))


def load_colorizer(checkpoint_paths: str | os.PathLike | list[str | os.PathLike],
                   backbone_weights: str | os.PathLike | None = "imagenet",
                   short_side: int | None = None) -> Colorizer | Ensemble:
    """One checkpoint (or run folder) -> a Colorizer; several -> an Ensemble of them."""
    if isinstance(checkpoint_paths, (str, os.PathLike)):
        checkpoint_paths = [checkpoint_paths]
    paths = list(checkpoint_paths)
    if len(paths) == 1:
        return Colorizer(paths[0], backbone_weights, short_side)
    return Ensemble(paths, backbone_weights, short_side)


def _collect(inputs):
    """Files and folders -> [(path, output name relative to its input root)]."""
    found = []
    for item in inputs:
        if os.path.isdir(item):
            for root, _dirs, files in os.walk(item):
                for name in sorted(files):
                    path = os.path.join(root, name)
                    if is_photo_path(path):
                        found.append((path, os.path.relpath(path, item)))
        else:
            found.append((item, os.path.basename(item)))
    return sorted(found)


def side_by_side(gray_rgb: np.ndarray, colorized: np.ndarray) -> np.ndarray:
    """Gray input and colorization in one image, 8 white pixels apart: the --side-by-side output."""
    return np.concatenate([gray_rgb, np.full((gray_rgb.shape[0], 8, 3), 255, np.uint8), colorized], axis=1)


def _plan(inputs: list[str | os.PathLike], output_dir: str | os.PathLike, force: bool
          ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """-> ([(photo, output file)] to colorize, [(photo, reason)] skipped because the output exists)."""
    jobs = _collect(inputs)
    if not jobs:
        raise FileNotFoundError(f"no photos found in {list(inputs)}")
    todo, skipped = [], []
    for path, rel in jobs:
        target = os.path.join(output_dir, os.path.splitext(rel)[0] + ".png")
        if os.path.exists(target) and not force:
            skipped.append((path, f"output exists: {target} (use --force to overwrite)"))
        else:
            todo.append((path, target))
    return todo, skipped


def _store(photo: np.ndarray, l_full: np.ndarray, ab: np.ndarray, target: str, with_side_by_side: bool) -> str:
    """Join at full resolution, encode, write (and the gray | colorized image where asked)."""
    result = render(l_full, ab)
    save_image_atomic(result, target, compress_level=PNG_LEVEL)
    if with_side_by_side:
        gray = np.repeat(np.asarray(Image.fromarray(photo).convert("L"))[..., None], 3, axis=-1)
        save_image_atomic(side_by_side(gray, result), target[:-4] + "_side_by_side.png", compress_level=PNG_LEVEL)
    return target


@dataclass
class _Loaded:
    """A photo read and ready for the networks: its pixels, its L at full and at working resolution."""

    path: str
    target: str
    photo: np.ndarray
    l_full: np.ndarray
    l_small: np.ndarray


def _batches(loaded: Iterator[_Loaded | tuple[str, str]], failures: list[tuple[str, str]]) -> Iterator[list[_Loaded]]:
    """Consecutive photos of one working size, up to BATCH of them and BATCH_PIXELS in all; unreadable files go to
    `failures` as (path, reason)."""
    group: list[_Loaded] = []
    for item in loaded:
        if isinstance(item, tuple):
            failures.append(item)
            continue
        if group and (item.l_small.shape != group[0].l_small.shape or len(group) == BATCH or
                      sum(g.l_full.size for g in group) + item.l_full.size > BATCH_PIXELS):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def _read_ahead(todo: list[tuple[str, str]], colorizer: Colorizer | Ensemble, pool: ThreadPoolExecutor
                ) -> Iterator[_Loaded | tuple[str, str]]:
    """Read and convert the photos in a reader thread ahead of the networks, in order: BATCH ahead while photos are
    small, two ahead once they are large (memory stays a few photos' worth)."""

    def load(path: str, target: str) -> _Loaded | tuple[str, str]:
        try:
            photo = read_photo(path)
        except PhotoError as error:
            return path, error.reason
        return _Loaded(path, target, photo, *colorizer.planes(photo))

    pending: deque[Future] = deque()
    submitted, depth = 0, BATCH
    while submitted < len(todo) or pending:
        while submitted < len(todo) and len(pending) < depth:
            pending.append(pool.submit(load, *todo[submitted]))
            submitted += 1
        item = pending.popleft().result()
        if isinstance(item, _Loaded):
            depth = BATCH if item.l_full.size * BATCH <= BATCH_PIXELS else 2
        yield item


def _predict(colorizer: Colorizer | Ensemble, group: list[_Loaded]) -> np.ndarray:
    """a*b* of a group of photos of one working size: the classifier on each, the network on all at once."""
    seen = colorizer.embed_batch([g.l_full for g in group]) if uses_embedding(colorizer.fusion) else None
    return colorizer.predict_batch(np.stack([g.l_small for g in group]), seen)


def colorize_paths(inputs: list[str | os.PathLike], checkpoint_path: str | os.PathLike | list | Colorizer | Ensemble,
                   output_dir: str | os.PathLike, force: bool = False, with_side_by_side: bool = False,
                   short_side: int | None = None, backbone_weights: str | os.PathLike | None = "imagenet",
                   progress: bool = True) -> tuple[list[str], list[tuple[str, str]]]:
    """Colorize every photo in `inputs` into `output_dir` (PNG). Returns (written, failures [(path, reason)]).

    `checkpoint_path`: one checkpoint or run folder, a list of them (an Ensemble: their a*b* averaged), or a ready
    Colorizer or Ensemble (to colorize several batches without reloading).

    A bad file is reported and skipped; existing outputs are kept unless `force`. Three stages overlap: reading
    and L (a thread) -> the networks, on photos of one working size together (here) -> join and write (a thread).
    """
    from tqdm.auto import tqdm

    todo, failures = _plan(inputs, output_dir, force)
    colorizer = (checkpoint_path if isinstance(checkpoint_path, (Colorizer, Ensemble))
                 else load_colorizer(checkpoint_path, backbone_weights, short_side))
    written: list[str] = []
    bar = tqdm(total=len(todo), disable=not progress, unit="photo", desc="colorize")
    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as writer:
        storing: list[Future] = []
        for group in _batches(_read_ahead(todo, colorizer, reader), failures):
            for item, ab in zip(group, _predict(colorizer, group)):
                storing.append(writer.submit(_store, item.photo, item.l_full, ab, item.target, with_side_by_side))
            while len(storing) > max(2, len(group)):
                written.append(storing.pop(0).result())
            bar.update(len(group))
        written.extend(future.result() for future in storing)
    bar.close()
    for path, reason in failures:
        log.warning("skipped %s: %s", path, reason)
    return written, failures
