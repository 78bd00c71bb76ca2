"""The demo's photos as stored in the repository, so that the study needs neither Debian, apt-get nor root.

`photos/system/` (beside `src/`) holds a copy of every reviewed photo of the Debian packages listed in
`resources/system_photos.csv`: a photo whose short side is at most 512 px keeps its file exactly as the package
ships it; a larger one is decoded (EXIF orientation applied), resized to a short side of 512 px (Lanczos) and
encoded once as JPEG, quality 92, without chroma subsampling (the study learns and scores the chroma). The demo
stores its photos at 256 px, so 512 leaves a factor of two of headroom.

`resources/photo_collection.csv` lists each stored photo: its id (exactly the id it had when it was read from the
package), the file under `photos/`, kind and scene group, package, version and location it was copied from, its
licence, and checksums: of the package's file, of the stored file, and of the stored file's decoded pixels
(`pixels_sha256`). A copy of the packages no longer changes with what Debian ships tomorrow; `koala photos
rebuild --check` (`data/rebuild.py`) makes it again from the installed packages and reports any difference.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import KoalaError
from ..images import PhotoError, read_photo
from .sources import Photo

COLLECTION_CSV = "resources/photo_collection.csv"
PHOTOS_ENV = "KOALA_PHOTOS"  # another folder holding the stored photos (a clone's photos/)
SHORT_SIDE = 512
JPEG_QUALITY = 92
COLUMNS = ["id", "file", "kind", "group", "package", "version", "origin", "license", "original_width",
           "original_height", "original_sha256", "stored", "width", "height", "file_sha256", "pixels_sha256"]
STORED_AS_IS, STORED_RESIZED = "as shipped", f"resized to {SHORT_SIDE} px, JPEG q{JPEG_QUALITY} 4:4:4"


class CollectionError(KoalaError, FileNotFoundError):
    """The stored photos cannot be found or do not match their list; the message says what to do."""


def pixels_sha256(rgb: np.ndarray) -> str:
    """SHA-256 of decoded pixels: uint8 RGB, rows top to bottom, as `images.read_photo` returns them.

    The file's own checksum changes with any re-encoding; this one changes only when a pixel does.
    """
    return hashlib.sha256(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()).hexdigest()


def default_photos_dir() -> Path:
    """Where the stored photos are: $KOALA_PHOTOS, else photos/ of the clone this package runs from, else ./photos."""
    if os.environ.get(PHOTOS_ENV):
        return Path(os.environ[PHOTOS_ENV]).expanduser().resolve()
    beside_source = Path(__file__).resolve().parents[3] / "photos"  # src/koalarization/data/ -> the clone
    return beside_source if beside_source.is_dir() else Path.cwd() / "photos"


def collection_rows() -> list[dict[str, str]]:
    """The committed list of stored photos (columns COLUMNS), in the review list's order."""
    return _read_rows(resources.files("koalarization").joinpath(COLLECTION_CSV).read_text(encoding="utf-8"))


@functools.cache
def _read_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def stored_photos(kinds: tuple[str, ...], photos_dir: Path | None = None) -> list[Photo]:
    """The stored photos of the given kinds as Photos (origin: the stored file). An error if the folder is missing."""
    root = photos_dir or default_photos_dir()
    if not root.is_dir():
        raise CollectionError(
            f"the stored photo collection is not at {root}: the photos travel with the repository, not with the "
            f"installed package; run from a clone of it (pip install -e .) or set {PHOTOS_ENV}=<clone>/photos")
    photos = []
    for row in collection_rows():
        if row["kind"] in kinds:
            photos.append(Photo(row["id"], "system", str(root / row["file"]), row["license"], row["group"]))
    return photos


def verify_stored(photos_dir: Path | None = None, pixels: bool = False) -> list[str]:
    """Problems of the stored copy against its list, one line each (empty when every file is there and intact).

    Checks each file's SHA-256, and with `pixels` also decodes it and checks `pixels_sha256` and its size.
    """
    root = photos_dir or default_photos_dir()
    problems = []
    for row in collection_rows():
        path = root / row["file"]
        try:
            data = path.read_bytes()
        except OSError as error:
            problems.append(f"{row['id']}: cannot read {path} ({error.strerror or error})")
            continue
        if hashlib.sha256(data).hexdigest() != row["file_sha256"]:
            problems.append(f"{row['id']}: {path} is not the stored file (its SHA-256 differs from the list)")
        elif pixels:
            try:
                rgb = read_photo(data, name=row["id"])
            except PhotoError as error:
                problems.append(f"{row['id']}: {error.reason}")
                continue
            if rgb.shape[:2] != (int(row["height"]), int(row["width"])) or pixels_sha256(rgb) != row["pixels_sha256"]:
                problems.append(f"{row['id']}: {path} decodes to other pixels than the list records")
    return problems


def package_status(photos_dir: Path | None = None) -> list[dict[str, object]]:
    """Per Debian package of the collection: the version the copy was made from, its photos, how many are stored
    here, and their licences. One dict per package, in the list's order (for a study's manifest)."""
    root = photos_dir or default_photos_dir()
    rows = collection_rows()
    status = []
    for package in dict.fromkeys(row["package"] for row in rows):
        own = [row for row in rows if row["package"] == package]
        status.append({"package": package, "version": own[0]["version"], "photos": len(own),
                       "found": sum(1 for row in own if (root / row["file"]).is_file()),
                       "licenses": sorted({row["license"] for row in own})})
    return status
