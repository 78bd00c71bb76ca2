"""The demo's photos where they came from: the reviewed photos of eight Debian packages, read where installed.

The study itself reads the copy stored in the repository (`data/collection.py`); this module is the provenance:
`koala photos rebuild` reads the originals through it to make that copy again and to check the stored one.

`resources/system_photos.csv` is the review's list (package, location, kind, listed size, near_duplicate,
licence). A location is an installed path, or "rcc:<resource path>" for gcompris, whose photos live inside Qt
resource bundles under /usr/share/gcompris-qt/rcc/ (read by `data/rcc.py`, without Qt).
"""
from __future__ import annotations

import csv
import functools
import glob
import io
import logging
import os
import shutil
import subprocess
from importlib import resources

from ..images import PhotoError, read_photo
from .rcc import RccError, list_rcc
from .sources import Photo

log = logging.getLogger(__name__)

GCOMPRIS_RCC_DIR = "/usr/share/gcompris-qt/rcc"
REPEAT_HAMMING = 8  # a near_duplicate row joins the group of the listed photo whose phash is at most this far


def review_rows() -> list[dict[str, str]]:
    """The committed list of reviewed photos in Debian packages, as dicts (columns of system_photos.csv)."""
    text = resources.files("koalarization").joinpath("resources/system_photos.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def installed_versions(packages: list[str] | set[str]) -> dict[str, str]:
    """Package -> installed version (dpkg-query), for those of `packages` that dpkg says are installed.

    Empty where there is no dpkg-query (not a Debian system). A package dpkg does not know is simply absent.
    """
    if not packages or not shutil.which("dpkg-query"):
        return {}
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${db:Status-Status}\t${Version}\n",
                                 *sorted(packages)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("Debian photos: cannot ask dpkg-query for package versions: %s", error)
        return {}
    versions = {}
    for line in result.stdout.splitlines():  # exit status 1 when some package is unknown: the rest still print
        package, status, version = (line.split("\t") + ["", ""])[:3]
        if status == "installed" and version:
            versions[package.split(":")[0]] = version
    return versions


def gcompris_resources(rcc_dir: str = GCOMPRIS_RCC_DIR) -> dict[str, str]:
    """Resource path -> bundle path over every bundle (the first bundle, in name order, wins a clash)."""
    where: dict[str, str] = {}
    for bundle in sorted(glob.glob(os.path.join(rcc_dir, "*.rcc"))):
        try:
            entries = list_rcc(bundle)
        except RccError as error:
            log.warning("skipping unreadable gcompris bundle: %s", error)
            continue
        for resource in entries:
            where.setdefault(resource, bundle)
    return where


def photo_id(row: dict[str, str]) -> str:
    """The photo's id, the same whether read from the package or from the stored copy ("system:<package>/<path>")."""
    return f"system:{row['package']}/{row['location'].removeprefix('rcc:').lstrip('/')}"


def original_photo(row: dict[str, str], gcompris: dict[str, str]) -> Photo | None:
    """The Photo of one row as installed (origin: the path, or "rcc:<bundle>!<resource>"), None when absent."""
    location = row["location"]
    if location.startswith("rcc:"):
        resource = location[len("rcc:"):]
        if resource not in gcompris:
            return None
        origin = f"rcc:{gcompris[resource]}!{resource}"
    else:
        if not os.path.isfile(location):
            return None
        origin = location
    identity = photo_id(row)
    return Photo(identity, "system", origin, row["license"], identity)


def original_photos(rows: list[dict[str, str]]) -> list[Photo | None]:
    """One entry per row: its installed Photo with its scene group (see `repeated_group`), or None when absent."""
    gcompris = gcompris_resources() if any(r["location"].startswith("rcc:") for r in rows) else {}
    found = [original_photo(row, gcompris) for row in rows]
    grouped: list[Photo | None] = []
    for index, (row, photo) in enumerate(zip(rows, found)):
        if photo is not None and row["near_duplicate"] == "true":
            photo = Photo(photo.id, photo.source, photo.origin, photo.license, repeated_group(index, rows, found))
        grouped.append(photo)
    return grouped


@functools.cache
def _phash_of(photo: Photo) -> int:
    from .dedup import perceptual_hash
    return perceptual_hash(read_photo(photo.read_bytes(), name=photo.id))


def _same_shape_scaled(a: dict[str, str], b: dict[str, str]) -> bool:
    """Could one row's photo be the other's resized (same aspect ratio up to one pixel of rounding)?"""
    (wa, ha), (wb, hb) = sorted([(int(a["width"]), int(a["height"])), (int(b["width"]), int(b["height"]))])
    return abs(wa * hb / wb - ha) <= 1 and abs(ha * wb / hb - wa) <= 1


def repeated_group(index: int, rows: list[dict[str, str]], photos: list[Photo | None]) -> str:
    """The group of the earlier row that near_duplicate row `index` repeats, else the row's own group.

    The list marks a row near_duplicate when it nearly repeats an earlier row. That row is looked for by phash
    (distance <= REPEAT_HAMMING, the closest wins) among the earlier, installed rows of the same package that
    could be a resized copy (same aspect ratio) and are not near duplicates themselves. Photos of one scene must
    share a group, and so a split: the stored copy keeps the group found here.
    """
    row, photo = rows[index], photos[index]
    assert photo is not None
    best: tuple[int, str] | None = None
    for other_row, other in zip(rows[:index], photos[:index]):
        if (other is None or other_row["package"] != row["package"] or other_row["near_duplicate"] == "true"
                or not _same_shape_scaled(row, other_row)):
            continue
        try:
            distance = (_phash_of(photo) ^ _phash_of(other)).bit_count()
        except PhotoError as error:
            log.warning("cannot compare near-duplicate %s: %s", photo.id, error)
            return photo.group
        if distance <= REPEAT_HAMMING and (best is None or distance < best[0]):
            best = (distance, other.group)
    return best[1] if best else photo.group
