"""Find exact and near-duplicate photos, so that one picture cannot sit in two splits under two names.

Exact: the SHA-256 of the decoded pixels (and shape), so a PNG and a lossless re-encode of it match.
Near: the perceptual hash (imagehash.phash, 64 bits, from luminance only) within a Hamming distance; it matches
resized or recompressed copies and recolored ones too, which for colorization share the same gray input anyway.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import imagehash
import numpy as np
from PIL import Image

from ..images import PhotoError

if TYPE_CHECKING:
    from .sources import Photo


@dataclass(frozen=True)
class Duplicate:
    kept_id: str
    dropped_id: str
    reason: str  # "exact" or "near (distance d)"


def pixel_digest(rgb: np.ndarray) -> str:
    """SHA-256 of the decoded pixels and their shape: equal only for pixel-identical photos."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    return hashlib.sha256(repr(rgb.shape).encode() + rgb.tobytes()).hexdigest()


def perceptual_hash(rgb: np.ndarray) -> int:
    """imagehash.phash of the photo as a 64-bit integer."""
    bits = imagehash.phash(Image.fromarray(np.asarray(rgb, dtype=np.uint8))).hash.flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def find_duplicates(photos: Iterable[Photo], load_rgb: Callable[[Photo], np.ndarray], hamming: int | None = 6,
                    on_error: Callable[[Photo, PhotoError], None] | None = None) -> list[Duplicate]:
    """-> [Duplicate], in input order of the dropped photo. The earlier photo of a pair is always the one kept.

    `load_rgb(photo)` gives the uint8 RGB pixels (a thumbnail is fine: phash looks at 32x32). A photo is compared
    with the photos kept so far only, so a chain A~B~C where A and C differ keeps A and C. `hamming=None` checks
    exact copies only. A photo whose load raises PhotoError goes to `on_error(photo, error)` and is neither kept
    nor dropped; without `on_error` the error propagates. Cost: one vectorized comparison per photo against the
    kept ones (O(n^2 / 2) popcounts, well under a second for a few thousand photos).
    """
    if hamming is not None and not 0 <= hamming <= 64:
        raise ValueError(f"hamming must be between 0 and 64 (bits of a phash), got {hamming}")
    duplicates: list[Duplicate] = []
    verdict_by_digest: dict[str, Any] = {}
    kept_ids: list[str] = []
    kept_hashes = np.zeros(0, dtype=np.uint64)
    for photo in photos:
        try:
            rgb = load_rgb(photo)
        except PhotoError as error:
            if on_error is None:
                raise
            on_error(photo, error)
            continue
        digest = pixel_digest(rgb)
        if digest in verdict_by_digest:  # a pixel copy of a photo seen before shares that photo's verdict
            kept_id, reason = verdict_by_digest[digest]
            duplicates.append(Duplicate(kept_id, photo.id, reason))
            continue
        verdict_by_digest[digest] = (photo.id, "exact")
        if hamming is None:
            continue
        code = perceptual_hash(rgb)
        if kept_ids:
            distances = np.bitwise_count(kept_hashes ^ np.uint64(code))
            nearest = int(np.argmin(distances))  # the closest; among equals, the earliest
            if distances[nearest] <= hamming:
                verdict_by_digest[digest] = (kept_ids[nearest], f"near (distance {distances[nearest]})")
                duplicates.append(Duplicate(kept_ids[nearest], photo.id, verdict_by_digest[digest][1]))
                continue
        kept_ids.append(photo.id)
        kept_hashes = np.append(kept_hashes, np.uint64(code))
    return duplicates
