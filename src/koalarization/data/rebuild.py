"""Make the stored photo collection from the installed Debian packages, or check the stored one against them.

`build_entry` turns one package photo into its stored form (`data/collection.py` says which form and why);
`rebuild` writes every stored file and the list; `check` makes each stored form again in memory and compares it
with the stored copy, photo by photo: the same file, else the same decoded pixels, else a difference with its
reason (the package is not installed, its file changed, or the same pixels encode differently).
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import write_text_atomic
from ..errors import KoalaError
from ..images import PhotoError, read_photo, resize_short_side
from . import collection, debian
from .sources import Photo

log = logging.getLogger(__name__)


class RebuildError(KoalaError, RuntimeError):
    """The collection cannot be made here (packages missing); the message names what to install."""


@dataclass(frozen=True)
class Entry:
    """One photo in its stored form: the row of the list, the bytes of the stored file and its decoded pixels."""
    row: dict[str, str]
    data: bytes
    pixels: np.ndarray


def stored_form(original: bytes, name: str) -> tuple[bytes, str, np.ndarray]:
    """(stored bytes, how it is stored, the pixels it decodes to) for one original file."""
    rgb = read_photo(original, name=name)
    if min(rgb.shape[:2]) <= collection.SHORT_SIDE:
        return original, collection.STORED_AS_IS, rgb
    small = resize_short_side(rgb, collection.SHORT_SIDE)
    buffer = io.BytesIO()
    Image.fromarray(small).save(buffer, format="JPEG", quality=collection.JPEG_QUALITY, subsampling=0,
                                optimize=False, progressive=False)
    data = buffer.getvalue()
    return data, collection.STORED_RESIZED, read_photo(data, name=name)


def stored_file(row: dict[str, str], how: str) -> str:
    """The stored file's path under photos/: the id's path, with a .jpg suffix where it was re-encoded."""
    path = "system/" + debian.photo_id(row).removeprefix("system:")
    return path if how == collection.STORED_AS_IS else os.path.splitext(path)[0] + ".jpg"


def build_entry(row: dict[str, str], photo: Photo, version: str) -> Entry:
    """The stored form of one reviewed photo read from its package (PhotoError when it cannot be read)."""
    original = photo.read_bytes()
    width, height = read_photo(original, name=photo.id).shape[1::-1]
    data, how, rgb = stored_form(original, photo.id)
    origin = photo.origin.removeprefix("rcc:")
    entry = {"id": photo.id, "file": stored_file(row, how), "kind": row["kind"], "group": photo.group,
             "package": row["package"], "version": version, "origin": origin, "license": row["license"],
             "original_width": str(width), "original_height": str(height),
             "original_sha256": hashlib.sha256(original).hexdigest(), "stored": how, "width": str(rgb.shape[1]),
             "height": str(rgb.shape[0]), "file_sha256": hashlib.sha256(data).hexdigest(),
             "pixels_sha256": collection.pixels_sha256(rgb)}
    return Entry(entry, data, rgb)


def _originals() -> tuple[list[dict[str, str]], list[Photo | None], dict[str, str]]:
    rows = debian.review_rows()
    return rows, debian.original_photos(rows), debian.installed_versions({row["package"] for row in rows})


def rebuild(photos_dir: Path, list_path: Path, progress: Callable[[str], None] = log.info) -> list[dict[str, str]]:
    """Write every stored photo under `photos_dir` and the list to `list_path`; every package must be installed."""
    rows, photos, versions = _originals()
    missing = sorted({row["package"] for row, photo in zip(rows, photos) if photo is None})
    if missing:
        raise RebuildError(f"cannot rebuild the collection: {len(missing)} package(s) are not installed or lack "
                           f"listed photos: {' '.join(missing)} (apt-get install {' '.join(missing)})")
    entries = []
    for row, photo in zip(rows, photos):
        assert photo is not None
        entry = build_entry(row, photo, versions.get(row["package"], "unknown"))
        target = photos_dir / entry.row["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != entry.data:
            target.write_bytes(entry.data)
        entries.append(entry.row)
    files = [row["file"] for row in entries]
    if len(set(files)) != len(files):
        raise RebuildError("two photos map to one stored file name; rename rule in data/rebuild.stored_file")
    for stale in sorted(set((photos_dir / "system").rglob("*")) - {photos_dir / name for name in files}):
        if stale.is_file():  # a photo no longer listed, or stored under another name before
            stale.unlink()
            progress(f"removed {stale} (not in the list)")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=collection.COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(entries)
    write_text_atomic(list_path, buffer.getvalue())
    progress(f"{len(entries)} photos written under {photos_dir}, listed in {list_path}")
    return entries


@dataclass(frozen=True)
class Difference:
    """A photo whose rebuilt form is not the stored one, and why."""
    id: str
    reason: str


def _compare(listed: dict[str, str], entry: Entry, photos_dir: Path) -> str | None:
    """None when the rebuilt photo matches the stored file (same bytes, or same decoded pixels) and its list row,
    else the reason."""
    rebuilt = entry.row
    try:
        data = (photos_dir / listed["file"]).read_bytes()
        kept = read_photo(data, name=listed["id"])
    except (OSError, PhotoError) as error:
        return f"the stored file cannot be read ({error})"
    notes = [] if rebuilt["group"] == listed["group"] else [
        f"scene group {rebuilt['group']} here, {listed['group']} in the copy (near-duplicate matching changed)"]
    if data == entry.data or (kept.shape == entry.pixels.shape and np.array_equal(kept, entry.pixels)):
        if (hashlib.sha256(data).hexdigest(), collection.pixels_sha256(kept)) != \
                (listed["file_sha256"], listed["pixels_sha256"]):
            notes.append("the list's checksums are not those of the stored file (run `koala photos rebuild`)")
        return "; ".join(notes) or None  # the same photo, whatever the package's version says
    if rebuilt["version"] != listed["version"]:
        notes.append(f"package version {rebuilt['version']} here, {listed['version']} in the copy")
    if rebuilt["original_sha256"] != listed["original_sha256"]:
        notes.append("the package's file is not the one the copy was made from")
    now = entry.pixels
    if kept.shape != now.shape:
        return "; ".join([*notes, f"size {now.shape[1]}x{now.shape[0]} rebuilt, {kept.shape[1]}x{kept.shape[0]} "
                                  f"stored"])
    step = int(np.abs(kept.astype(np.int16) - now.astype(np.int16)).max())
    if not notes:
        notes.append("the package's file is the one the copy was made from, but its stored form decodes to other "
                     f"pixels (a resize or JPEG encoder other than the copy's: Pillow {Image.__version__} here)")
    return "; ".join([*notes, f"decoded pixels differ by up to {step} levels of 255"])


def check(photos_dir: Path | None = None) -> tuple[int, list[Difference]]:
    """(photos compared, differences): the collection made again from the packages against the stored copy."""
    root = photos_dir or collection.default_photos_dir()
    stored = {row["id"]: row for row in collection.collection_rows()}
    rows, photos, versions = _originals()
    differences = []
    for row, photo in zip(rows, photos):
        identity = debian.photo_id(row)
        if identity not in stored:
            differences.append(Difference(identity, "reviewed and listed, but not in the stored copy"))
        elif photo is None:
            differences.append(Difference(identity, f"not on this machine (is {row['package']} installed?)"))
        else:
            try:
                reason = _compare(stored[identity], build_entry(row, photo, versions.get(row["package"], "unknown")),
                                  root)
            except PhotoError as error:
                reason = f"the package's file cannot be read ({error.reason})"
            if reason:
                differences.append(Difference(identity, reason))
    extra = set(stored) - {debian.photo_id(row) for row in rows}
    differences += [Difference(identity, "in the stored copy but not in the review list") for identity in sorted(extra)]
    return len(rows), differences
