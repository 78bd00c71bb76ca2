"""`koala prepare`: photos -> a prepared dataset of sharded TFRecords with cached classifier embeddings.

Two phases, both resumable:
1. index (one process): decode every photo once, report unreadable ones, drop exact and near duplicates, split
   train/validation/test by source photo with a fixed seed. Written to `index.csv`; reused when present, so the
   split never changes under a run.
2. shards (any number of processes or machines: --shard-index i --shard-count n): each photo is resized (short
   side kept, or the paper's white letterbox), stored as JPEG bytes with the frozen backbone's embedding (float16)
   of its colorless gray version and its provenance. A finished shard has a `.json` sidecar and is never redone.
`manifest.json` is written once every shard is done; its fingerprint identifies the prepared data.
"""
import hashlib
import json
import logging
import os
import time

import numpy as np
import pandas as pd

from ..atomic import write_bytes_atomic, write_csv_atomic, write_json_atomic
from ..color import gray_rgb_from_l, rgb_to_lab
from ..images import PhotoError, encode_jpeg, letterbox, read_photo, resize_short_side
from ..errors import KoalaError

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")
FEATURES = ("jpeg", "embedding", "photo_id", "height", "width")


class PrepareError(KoalaError, RuntimeError):
    pass


def build_index(sources, out_dir, seed=0, fractions=(0.8, 0.1, 0.1), near_hamming=6, progress=True):
    """Decode, de-duplicate and split. Returns the index DataFrame (one row per photo, with status and reason)."""
    from tqdm.auto import tqdm

    from .dedup import find_duplicates
    from .sources import open_sources
    from .split import assign_splits

    path = os.path.join(out_dir, "index.csv")
    if os.path.exists(path):
        return pd.read_csv(path, keep_default_na=False)
    photos = open_sources(sources)
    if not photos:
        raise PrepareError(f"no photos found in sources {sources}")
    rows, good, thumbnails = [], [], {}
    for photo in tqdm(photos, desc="index", unit="photo", disable=not progress):
        row = {"photo_id": photo.id, "source": photo.source, "origin": photo.origin, "license": photo.license,
               "group": photo.group, "label": photo.label, "status": "ok", "reason": "", "split": ""}
        try:
            rgb = read_photo(photo.read_bytes(), name=photo.id)
            row.update(height=rgb.shape[0], width=rgb.shape[1])
            thumbnails[photo.id] = resize_short_side(rgb, 64) if min(rgb.shape[:2]) > 64 else rgb
            good.append(photo)
        except PhotoError as error:
            row.update(status="skipped", reason=error.reason, height=0, width=0)
        rows.append(row)
    index = pd.DataFrame(rows).set_index("photo_id", drop=False)
    if not good:
        raise PrepareError(f"every photo in {sources} is unreadable: {index['reason'].value_counts().to_dict()}")
    for dup in find_duplicates(good, lambda p: thumbnails[p.id], hamming=near_hamming):
        index.loc[dup.dropped_id, ["status", "reason"]] = ["duplicate", f"{dup.reason} of {dup.kept_id}"]
    kept = [p for p in good if index.loc[p.id, "status"] == "ok"]
    for photo_id, split in assign_splits(kept, fractions, seed).items():
        index.loc[photo_id, "split"] = split
    index = index.reset_index(drop=True)
    write_csv_atomic(index, path)
    return index


def _reuse_index(other_dir, out_dir, params):
    with open(os.path.join(other_dir, "params.json")) as handle:
        other = json.load(handle)
    same = ("sources", "seed", "fractions")
    if any(other[key] != params[key] for key in same):
        raise PrepareError(f"{other_dir} was indexed with other {'/'.join(same)}; its index cannot be reused")
    with open(os.path.join(other_dir, "index.csv"), "rb") as handle:
        write_bytes_atomic(os.path.join(out_dir, "index.csv"), handle.read())


def shard_plan(index, shard_size):
    """-> [(shard name, split, [photo ids])], the same in every process."""
    plan = []
    for split in SPLITS:
        ids = index.loc[(index["status"] == "ok") & (index["split"] == split), "photo_id"].tolist()
        for k in range(0, len(ids), shard_size):
            plan.append((f"{split}-{k // shard_size:05d}", split, ids[k:k + shard_size]))
    return plan


def _example(jpeg, embedding, photo_id, height, width):
    import tensorflow as tf

    feature = {
        "jpeg": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
        "embedding": tf.train.Feature(bytes_list=tf.train.BytesList(value=[embedding.astype("<f2").tobytes()])),
        "photo_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[photo_id.encode()])),
        "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[height])),
        "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[width])),
    }
    # deterministic=True: protobuf map order otherwise varies between processes, and so would the fingerprint
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def prepare_image(rgb, short_side=256, letterbox_size=None):
    """The stored image: short side `short_side` (aspect kept), or the paper's letterbox to a white square."""
    return letterbox(rgb, letterbox_size) if letterbox_size else resize_short_side(rgb, short_side)


def write_shard(name, photo_ids, photos_by_id, embedder, out_dir, short_side, letterbox_size, quality=95):
    """Write one shard atomically, with its sidecar. Photos that fail now are reported in the sidecar."""
    import tensorflow as tf

    images, kept, failed = [], [], {}
    for photo_id in photo_ids:
        try:
            rgb = read_photo(photos_by_id[photo_id].read_bytes(), name=photo_id)
        except PhotoError as error:
            failed[photo_id] = error.reason
            continue
        images.append(prepare_image(rgb, short_side, letterbox_size))
        kept.append(photo_id)
    grays = [gray_rgb_from_l(rgb_to_lab(image)[..., 0]) for image in images]
    embeddings = embedder(grays) if images else np.zeros((0, 1000), np.float32)
    path = os.path.join(out_dir, "shards", f"{name}.tfrecord")
    tmp = f"{path}.tmp-{os.getpid()}"
    digest = hashlib.sha256()
    with tf.io.TFRecordWriter(tmp) as writer:
        for photo_id, image, embedding in zip(kept, images, embeddings):
            record = _example(encode_jpeg(image, quality), embedding, photo_id, *image.shape[:2])
            digest.update(record)
            writer.write(record)
    os.replace(tmp, path)
    write_json_atomic(path + ".json", {"name": name, "count": len(kept), "photo_ids": kept, "failed": failed,
                                       "sha256": digest.hexdigest()})


def prepare(sources, out_dir, backbone="efficientnet_lite0", backbone_weights="imagenet", short_side=256,
            letterbox_size=None, shard_size=64, shard_index=0, shard_count=1, seed=0, fractions=(0.8, 0.1, 0.1),
            progress=True, index_from=None):
    """Prepare (or finish preparing) a dataset. Returns the manifest when every shard is done, else None.

    `index_from`: another prepared dataset of the same sources, seed and split (e.g. for another backbone) whose
    index is copied instead of decoding and de-duplicating every photo again; it also guarantees the same split.
    """
    from tqdm.auto import tqdm

    from ..backbones import Embedder
    from .sources import open_sources

    started = time.time()
    params = {"sources": list(sources), "backbone": backbone, "short_side": short_side,
              "letterbox_size": letterbox_size, "shard_size": shard_size, "seed": seed, "fractions": list(fractions)}
    os.makedirs(os.path.join(out_dir, "shards"), exist_ok=True)
    params_path = os.path.join(out_dir, "params.json")
    if os.path.exists(params_path):
        with open(params_path) as handle:
            if json.load(handle) != json.loads(json.dumps(params)):
                raise PrepareError(f"{out_dir} was prepared with other parameters ({params_path}); "
                                   f"use another folder or delete it")
    else:
        write_json_atomic(params_path, params)
    if index_from and not os.path.exists(os.path.join(out_dir, "index.csv")):
        _reuse_index(index_from, out_dir, params)
    index = build_index(sources, out_dir, seed, fractions, progress=progress)
    plan = shard_plan(index, shard_size)
    mine = [item for k, item in enumerate(plan) if k % shard_count == shard_index]
    todo = [item for item in mine if not os.path.exists(os.path.join(out_dir, "shards", f"{item[0]}.tfrecord.json"))]
    if todo:
        photos_by_id = {p.id: p for p in open_sources(sources)}
        embedder = Embedder(backbone, backbone_weights)
        for name, _split, ids in tqdm(todo, desc="shards", unit="shard", disable=not progress):
            write_shard(name, ids, photos_by_id, embedder, out_dir, short_side, letterbox_size)
    log.info("prepared %d shard(s) in %.1f s (%d already done)", len(todo), time.time() - started,
             len(mine) - len(todo))
    return finalize(out_dir, plan, index, params)


def finalize(out_dir, plan, index, params):
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
                "skipped": skipped, "sources": index["source"].value_counts().to_dict()}
    write_json_atomic(os.path.join(out_dir, "manifest.json"), manifest)
    return manifest


def load_manifest(data_dir):
    path = os.path.join(data_dir, "manifest.json")
    if not os.path.exists(path):
        raise PrepareError(f"{data_dir}: not a prepared dataset (no manifest.json; run `koala prepare`)")
    with open(path) as handle:
        return json.load(handle)


def register(subparsers):
    parser = subparsers.add_parser("prepare", help="prepare photos into shards with cached embeddings",
                                   description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", required=True,
                        help="samples | system | folder:PATH | imagenet:PATH[?classes=..&per_class=N] (repeatable)")
    parser.add_argument("--out", required=True, help="output folder of the prepared dataset")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--backbone-weights", default="imagenet")
    parser.add_argument("--short-side", type=int, default=256)
    parser.add_argument("--letterbox", type=int, default=None, help="the paper's white letterbox to this size (299)")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--shard-index", type=int, default=0)
    parser.add_argument("--shard-count", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=_main)


def _main(args):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    manifest = prepare(args.source, args.out, args.backbone, args.backbone_weights, args.short_side, args.letterbox,
                       args.shard_size, args.shard_index, args.shard_count, args.seed)
    index = pd.read_csv(os.path.join(args.out, "index.csv"), keep_default_na=False)
    for row in index[index["status"] != "ok"].itertuples():
        print(f"skipped {row.photo_id}: {row.status}: {row.reason}")
    if manifest is None:
        print(f"shard {args.shard_index}/{args.shard_count} done; other shards still missing, no manifest yet")
    else:
        print(f"prepared {manifest['counts']} photos into {args.out} (fingerprint {manifest['fingerprint']})")
    return 0
