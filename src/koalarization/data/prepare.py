"""`koala prepare`: photos -> a prepared dataset of TFRecord shards with cached classifier embeddings.

Two phases, both resumable:
1. index (one process): decode every photo once, report unreadable, too-small and colorless ones, drop exact and near
   duplicates, keep the held-out sources apart, split the rest train/validation/test by source photo with a fixed
   seed. Written to `index.csv`; reused when present, so the split never changes under a run.
2. shards (any number of processes or machines: --shard-index i --shard-count n): each photo is resized (short
   side kept, or the paper's white letterbox) and stored as JPEG bytes with the frozen classifier's embedding
   (float16) of its colorless gray version, and, for training, the embeddings of the crops the network will be
   trained on (the paper's classifier sees what the encoder sees). A finished shard has a `.json` sidecar and is
   never redone. `manifest.json` is written once every shard is done; its fingerprint identifies the data.

Nothing here needs TensorFlow: shards are written by `records`, embeddings by any Keras backend.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import write_bytes_atomic, write_csv_atomic, write_json_atomic
from ..color import gray_rgb_from_l, rgb_to_lab
from ..config import DataSettings
from ..errors import KoalaError
from ..images import PhotoError, encode_jpeg, letterbox, read_photo, resize_short_side, scaled_size
from . import records

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test", "heldout")


class PrepareError(KoalaError, RuntimeError):
    pass


COLORLESS_CHROMA = 3.0  # black-and-white photos score ~0, the least colorful real color photo here ~14


def color_extent(rgb: np.ndarray) -> float:
    """The 99th percentile of chroma sqrt(a*² + b*²) over the pixels: ~0 for a black-and-white photo, whose "truth"
    would teach the network to predict gray and would score a gray prediction as perfect (PSNR at its cap)."""
    lab = rgb_to_lab(rgb)
    return float(np.percentile(np.hypot(lab[..., 1], lab[..., 2]), 99))


def _sampling_order(photo_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{photo_id}".encode()).hexdigest()


def build_index(settings: DataSettings, out_dir: str, progress: bool = True) -> pd.DataFrame:
    """Decode, check size, de-duplicate and split. Returns the index (one row per photo, with status and reason)."""
    from tqdm.auto import tqdm

    from .dedup import find_duplicates
    from .sources import open_sources
    from .split import assign_splits

    path = os.path.join(out_dir, "index.csv")
    if os.path.exists(path):
        return pd.read_csv(path, keep_default_na=False)
    photos = open_sources(settings.sources)
    if not photos:
        raise PrepareError(f"no photos found in sources {settings.sources}")
    if settings.max_photos and len(photos) > settings.max_photos:
        photos = sorted(photos, key=lambda p: _sampling_order(p.id, settings.seed))[:settings.max_photos]
        photos.sort(key=lambda p: p.id)
    minimum = settings.minimum_side
    rows, good, thumbnails = [], [], {}
    for photo in tqdm(photos, desc="index", unit="photo", disable=not progress):
        row: dict[str, Any] = {"photo_id": photo.id, "source": photo.source, "origin": photo.origin,
                               "license": photo.license, "group": photo.group, "label": photo.label,
                               "status": "ok", "reason": "", "split": "", "sha256": ""}
        try:
            data = photo.read_bytes()
            row["sha256"] = hashlib.sha256(data).hexdigest()
            rgb = read_photo(data, name=photo.id)
            row.update(height=rgb.shape[0], width=rgb.shape[1])
            thumbnail = resize_short_side(rgb, 64) if min(rgb.shape[:2]) > 64 else rgb
            if min(rgb.shape[:2]) < minimum:
                row.update(status="skipped", reason=f"too small ({rgb.shape[1]}x{rgb.shape[0]} px; the short side "
                                                    f"must be at least {minimum} px, data.min_side)")
            elif (chroma := color_extent(thumbnail)) < COLORLESS_CHROMA:
                row.update(status="skipped", reason=f"colorless (a black-and-white photo: no color to learn or to "
                                                    f"score; 99th-percentile chroma {chroma:.1f} < {COLORLESS_CHROMA})")
            else:
                thumbnails[photo.id] = thumbnail
                good.append(photo)
        except PhotoError as error:
            row.update(status="skipped", reason=error.reason, height=0, width=0)
        rows.append(row)
    index = pd.DataFrame(rows).set_index("photo_id", drop=False)
    if not good:
        raise PrepareError(f"no usable photo in {settings.sources}: {index['reason'].value_counts().to_dict()}")
    for dup in find_duplicates(good, lambda p: thumbnails[p.id], hamming=6):
        index.loc[dup.dropped_id, ["status", "reason"]] = ["duplicate", f"{dup.reason} of {dup.kept_id}"]
    kept = [p for p in good if index.loc[p.id, "status"] == "ok"]
    heldout = [p for p in kept if any(p.id.startswith(prefix) for prefix in settings.heldout)]
    for photo in heldout:
        index.loc[photo.id, "split"] = "heldout"
    trainable = [p for p in kept if p not in heldout]
    if not trainable:
        raise PrepareError(f"every usable photo is held out by {settings.heldout}")
    for photo_id, split in assign_splits(trainable, settings.split_fractions, settings.seed).items():
        index.loc[photo_id, "split"] = split
    index = index.reset_index(drop=True)
    write_csv_atomic(index, path)
    return index


def shard_plan(index: pd.DataFrame, shard_size: int) -> list[tuple[str, str, list[str]]]:
    """-> [(shard name, split, [photo ids])], the same in every process."""
    plan = []
    for split in SPLITS:
        ids = index.loc[(index["status"] == "ok") & (index["split"] == split), "photo_id"].tolist()
        for k in range(0, len(ids), shard_size):
            plan.append((f"{split}-{k // shard_size:05d}", split, ids[k:k + shard_size]))
    return plan


def prepare_image(rgb: np.ndarray, short_side: int = 256, letterbox_size: int | None = None) -> np.ndarray:
    """The stored image: short side `short_side` (aspect kept), or the paper's letterbox to a white square."""
    return letterbox(rgb, letterbox_size) if letterbox_size else resize_short_side(rgb, short_side)


def crop_boxes(photo_id: str, height: int, width: int, settings: DataSettings, split: str) -> np.ndarray:
    """(K, 2) top-left corners (y, x) of the training crops, in the photo resized to short side `train_scale`.

    Training photos get `crops_per_photo` crops drawn with a seed of the photo's own (the same in every process);
    every other split one center crop (validation loss is measured on it). With crops_per_photo = 0 there are none:
    the pipeline then takes random crops and the whole photo's embedding.
    """
    if settings.crops_per_photo == 0:
        return np.zeros((0, 2), np.int64)
    h, w = scaled_size(height, width, settings.train_scale)
    crop = settings.train_crop
    if split != "train":
        return np.array([[(h - crop) // 2, (w - crop) // 2]], np.int64)
    rng = np.random.default_rng(int(_sampling_order(photo_id, settings.seed)[:12], 16))
    return np.stack([rng.integers(0, h - crop + 1, settings.crops_per_photo),
                     rng.integers(0, w - crop + 1, settings.crops_per_photo)], axis=1).astype(np.int64)


def stored_region(image: np.ndarray, y: int, x: int, settings: DataSettings) -> np.ndarray:
    """The part of the stored photo that a training crop (corner y, x at the training scale) covers.

    The classifier sees it at the stored resolution, not at the network's: at test time it sees the whole photo at
    the stored resolution, and a crop upsampled from 64 or 96 px would look to it like another, blurrier kind of
    photo (their embeddings differ far more than the content does).
    """
    factor = min(image.shape[:2]) / settings.train_scale
    top, left, side = (int(round(v * factor)) for v in (y, x, settings.train_crop))
    return image[top:top + side, left:left + side]


def _gray(rgb: np.ndarray) -> np.ndarray:
    return gray_rgb_from_l(rgb_to_lab(rgb)[..., 0])


def _classify(embedder: Callable, images: list[np.ndarray], feature_maps: bool) -> tuple[np.ndarray, Any]:
    """The classifier's float16 embeddings (N, 1000) of the colorless images, and their packed feature maps (N, D)
    where the settings cache them (else None)."""
    if not images:
        return np.zeros((0, 1000), "<f2"), None
    grays = [_gray(image) for image in images]
    if not feature_maps:
        return embedder(grays).astype("<f2"), None
    logits, maps = embedder.features(grays)  # type: ignore[attr-defined]
    return logits.astype("<f2"), maps.astype("<f2")


def write_shard(name: str, split: str, photo_ids: Sequence[str], photos_by_id: dict, embedder: Callable,
                out_dir: str, settings: DataSettings, quality: int = 95) -> None:
    """Write one shard atomically, with its sidecar. Photos that fail now are reported in the sidecar."""
    images, kept, failed, boxes, crops = [], [], {}, [], []
    for photo_id in photo_ids:
        try:
            rgb = read_photo(photos_by_id[photo_id].read_bytes(), name=photo_id)
        except PhotoError as error:
            failed[photo_id] = error.reason
            continue
        image = prepare_image(rgb, settings.short_side, settings.letterbox_size)
        corners = crop_boxes(photo_id, image.shape[0], image.shape[1], settings, split)
        crops += [stored_region(image, y, x, settings) for y, x in corners]
        images.append(image)
        boxes.append(corners)
        kept.append(photo_id)
    embeddings, maps = _classify(embedder, images, settings.feature_maps)
    crop_embeddings, crop_maps = _classify(embedder, crops, settings.feature_maps)
    serialized, start = [], 0
    for k, (photo_id, image, corners) in enumerate(zip(kept, images, boxes)):
        features = {"jpeg": encode_jpeg(image, quality), "embedding": embeddings[k].tobytes(),
                    "photo_id": photo_id.encode(), "height": [image.shape[0]], "width": [image.shape[1]]}
        if maps is not None:
            features["feature_maps"] = maps[k].tobytes()
        if len(corners):
            features["crop_boxes"] = corners.ravel()
            features["crop_embeddings"] = crop_embeddings[start:start + len(corners)].tobytes()
            if crop_maps is not None:
                features["crop_feature_maps"] = crop_maps[start:start + len(corners)].tobytes()
            start += len(corners)
        serialized.append(records.encode_example(features))
    path = os.path.join(out_dir, "shards", f"{name}.tfrecord")
    write_bytes_atomic(path, b"".join(records.frame(record) for record in serialized))
    digest = hashlib.sha256(b"".join(serialized)).hexdigest()
    write_json_atomic(path + ".json", {"name": name, "count": len(kept), "photo_ids": kept, "failed": failed,
                                       "sha256": digest})


def prepare(settings: DataSettings, out_dir: str, backbone: str, backbone_weights: str = "imagenet",
            shard_index: int = 0, shard_count: int = 1, progress: bool = True,
            index_from: str | None = None) -> dict[str, Any] | None:
    """Prepare (or finish preparing) a dataset for one classifier. Returns the manifest when every shard is
    done, else None (other processes still have shards to write).

    `index_from`: another prepared dataset of the same settings (for another backbone) whose index is copied
    instead of decoding and de-duplicating every photo again; it also guarantees the same split.
    """
    from tqdm.auto import tqdm

    from ..backbones import Embedder
    from .sources import open_sources

    started = time.time()
    params = {**settings.model_dump(mode="json"), "backbone": backbone}
    os.makedirs(os.path.join(out_dir, "shards"), exist_ok=True)
    params_path = os.path.join(out_dir, "params.json")
    if os.path.exists(params_path):
        with open(params_path) as handle:
            earlier = json.load(handle)
        if earlier != params:
            changed = sorted(k for k in set(earlier) | set(params) if earlier.get(k) != params.get(k))
            raise PrepareError(f"{out_dir} was prepared with other settings ({', '.join(changed)} differ); "
                               f"use another folder or delete it")
    else:
        write_json_atomic(params_path, params)
    if index_from and not os.path.exists(os.path.join(out_dir, "index.csv")):
        _reuse_index(index_from, out_dir, params)
    index = build_index(settings, out_dir, progress=progress)
    plan = shard_plan(index, settings.shard_size)
    mine = [item for k, item in enumerate(plan) if k % shard_count == shard_index]
    todo = [item for item in mine if not os.path.exists(os.path.join(out_dir, "shards", f"{item[0]}.tfrecord.json"))]
    if todo:
        photos_by_id = {p.id: p for p in open_sources(settings.sources)}
        embedder = Embedder(backbone, backbone_weights, feature_maps=settings.feature_maps)
        for name, split, ids in tqdm(todo, desc="shards", unit="shard", disable=not progress):
            write_shard(name, split, ids, photos_by_id, embedder, out_dir, settings)
    log.info("prepared %d shard(s) in %.1f s (%d already done)", len(todo), time.time() - started,
             len(mine) - len(todo))
    return finalize(out_dir, plan, index, params)


INDEX_KEYS = ("sources", "heldout", "max_photos", "split_fractions", "seed")


def _reuse_index(other_dir: str, out_dir: str, params: dict) -> None:
    """Copy the index of another prepared dataset whose photos, minimum size, held-out sources and split agree."""
    with open(os.path.join(other_dir, "params.json")) as handle:
        other = json.load(handle)
    differing = [k for k in INDEX_KEYS if other.get(k) != params.get(k)]
    if _minimum(other) != _minimum(params):
        differing.append("min_side")
    if differing:
        raise PrepareError(f"{other_dir} was indexed with other settings ({', '.join(differing)}); its index "
                           f"cannot be reused")
    with open(os.path.join(other_dir, "index.csv"), "rb") as handle:
        write_bytes_atomic(os.path.join(out_dir, "index.csv"), handle.read())


def _minimum(params: dict) -> int:
    return int(params.get("min_side") or params["train_crop"])


def finalize(out_dir: str, plan: list, index: pd.DataFrame, params: dict) -> dict[str, Any] | None:
    """Write manifest.json if every shard of the plan is done (by whichever process finishes last)."""
    sidecars = {}
    for name, _split, _ids in plan:
        path = os.path.join(out_dir, "shards", f"{name}.tfrecord.json")
        if not os.path.exists(path):
            return None
        with open(path) as handle:
            sidecars[name] = json.load(handle)
    fingerprint = hashlib.sha256("".join(sidecars[n]["sha256"] for n, _, _ in plan).encode()).hexdigest()[:16]
    late_failures = {pid: why for s in sidecars.values() for pid, why in s["failed"].items()}
    counts = {split: sum(sidecars[n]["count"] for n, s, _ in plan if s == split) for split in SPLITS}
    skipped = index[index["status"] != "ok"][["photo_id", "status", "reason"]].to_dict("records")
    skipped += [{"photo_id": pid, "status": "skipped", "reason": why} for pid, why in late_failures.items()]
    manifest = {"params": params, "fingerprint": fingerprint, "counts": counts,
                "shards": {split: [f"shards/{n}.tfrecord" for n, s, _ in plan if s == split] for split in SPLITS},
                "skipped": skipped, "sources": index["source"].value_counts().to_dict(),
                "embedding_dim": 1000}
    if params.get("feature_maps"):
        from ..backbones import feature_shapes

        shapes = feature_shapes(params["backbone"])
        manifest["feature_shapes"] = {level: list(shape) for level, shape in shapes.items()}
    write_json_atomic(os.path.join(out_dir, "manifest.json"), manifest)
    return manifest


def is_prepared(data_dir: str | os.PathLike) -> bool:
    """Whether a dataset is complete: every shard written and its manifest too."""
    return os.path.exists(os.path.join(data_dir, "manifest.json"))


def load_manifest(data_dir: str) -> dict[str, Any]:
    path = os.path.join(data_dir, "manifest.json")
    if not os.path.exists(path):
        raise PrepareError(f"{data_dir}: not a prepared dataset (no manifest.json; run `koala prepare`)")
    with open(path) as handle:
        return json.load(handle)


def read_index(data_dir: str | os.PathLike) -> pd.DataFrame:
    """A prepared dataset's index: every photo considered, with its source, split, status and reason."""
    return pd.read_csv(os.path.join(data_dir, "index.csv"), keep_default_na=False)


def prepare_record(settings: DataSettings, manifests: dict[str, dict[str, Any]], index: pd.DataFrame) -> Any:
    """Stage 1's record (`stages.PrepareRecord`) from the manifests of its prepared datasets and their index."""
    from ..stages import PrepareRecord

    first = manifests[settings.backbones[0]]
    return PrepareRecord(
        counts=first["counts"], fingerprints={b: m["fingerprint"] for b, m in manifests.items()},
        backbones=list(manifests),
        embedding_shapes={b: [int(m.get("embedding_dim", 1000))] for b, m in manifests.items()},
        feature_shapes={b: m["feature_shapes"] for b, m in manifests.items() if m.get("feature_shapes")},
        excluded=int((index["status"] != "ok").sum()), duplicates=int((index["status"] == "duplicate").sum()),
        unreadable_or_too_small=int((index["status"] == "skipped").sum()),
        stored_size=settings.letterbox_size or settings.short_side, letterbox=settings.letterbox_size is not None,
        train_scale=settings.train_scale, train_crop=settings.train_crop, crops_per_photo=settings.crops_per_photo)


def colorless_photos(data_dir: str | os.PathLike, settings: DataSettings) -> list[tuple[str, np.ndarray]]:
    """The photos that preparation left out as black-and-white: born gray, they are the study's historical photos
    (nothing to score them against, but a real application of the method). -> [(photo id, uint8 RGB)]."""
    from .sources import open_sources

    index = read_index(data_dir)
    wanted = set(index.loc[index["reason"].str.startswith("colorless"), "photo_id"])
    if not wanted:
        return []
    photos = [p for p in open_sources(settings.sources) if p.id in wanted]
    return [(photo.id, read_photo(photo.read_bytes(), name=photo.id)) for photo in sorted(photos, key=lambda p: p.id)]
