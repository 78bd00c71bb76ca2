"""Split photos into train / validation / test by source photo (group), reproducibly.

Each group gets u = SHA-256(seed, group) read as a number in [0, 1), and falls in the bucket of the fractions:
train for u < f_train, validation for u < f_train + f_validation, test above. A group's split therefore depends
only on the seed and the group's own name: adding photos never moves the ones already assigned (except through
the small-set rule below), and every photo of a group lands in the same split, so no crop or near copy of a
test photo is ever trained on.

Small sets: with 3 or more groups, every split whose fraction is above zero gets at least one group (in the
order train, validation, test). An empty split takes, from the split holding the most groups (train first on ties),
the group whose u lies nearest to the empty split's interval. This is deterministic and moves as few groups as possible.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sources import Photo

SPLITS = ("train", "validation", "test")


class SplitAssignment(dict):
    """photo id -> split, as a plain dict."""


def group_position(group: str, seed: int = 0) -> float:
    """The group's place in [0, 1): the first 8 bytes of SHA-256("seed:group"), as a fraction of 2**64."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def _check_fractions(fractions):
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6 or fractions[0] <= 0:
        raise ValueError(f"fractions must be 3 numbers >= 0 (train > 0) summing to 1, got {fractions}")
    return fractions


def _bucket(u, bounds):
    return next((split for split, (low, high) in zip(SPLITS, bounds) if low <= u < high), SPLITS[-1])


def _distance(u, interval):
    low, high = interval
    return max(low - u, u - high, 0.0)


def assign_groups(groups: Iterable[str], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  seed: int = 0) -> dict[str, str]:
    """group -> split for a collection of group names (see the module docstring for the rule)."""
    fractions = _check_fractions(fractions)
    edges = (0.0, fractions[0], fractions[0] + fractions[1], 1.0)
    bounds = list(zip(edges[:-1], edges[1:]))
    position = {group: group_position(group, seed) for group in sorted(set(groups))}
    split_of = {group: _bucket(u, bounds) for group, u in position.items()}
    if len(position) >= 3:
        for empty in SPLITS:
            interval = bounds[SPLITS.index(empty)]
            if fractions[SPLITS.index(empty)] == 0 or empty in split_of.values():
                continue
            sizes = {split: sum(1 for s in split_of.values() if s == split) for split in SPLITS}
            donor = max(SPLITS, key=lambda split: (sizes[split], -SPLITS.index(split)))
            candidates = [group for group, split in split_of.items() if split == donor]
            moved = min(candidates, key=lambda group: (_distance(position[group], interval), group))
            split_of[moved] = empty
    return split_of


def assign_splits(photos: Iterable[Photo], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  seed: int = 0) -> SplitAssignment:
    """photo id -> "train" | "validation" | "test", all photos of a group together (a SplitAssignment)."""
    photos = list(photos)
    split_of = assign_groups((photo.group for photo in photos), fractions, seed)
    return SplitAssignment((photo.id, split_of[photo.group]) for photo in photos)

