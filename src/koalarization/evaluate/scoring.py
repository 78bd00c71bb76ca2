"""Scoring one photo's colorizations: the evaluation's numpy half, light enough to run in worker processes (it
imports neither Keras nor TensorFlow) while the main process runs the networks on the next photo: each predicted
a*b* joined to the photo's L, the images the figures and the survey show written, every metric computed with what
they need of the truth computed once (`metrics.Truth`)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..stages import PerPhotoRow
from .metrics import Truth, score

PNG_LEVEL = 1  # zlib's fastest for the evaluation's images: the same pixels, 3-4x faster to write than level 6


def score_photo(photo_id: str, truth: np.ndarray, predictions: dict[tuple[str, int | None], np.ndarray]
                ) -> tuple[list[PerPhotoRow], list[dict[str, Any]]]:
    """Per-photo rows of every (model, seed) prediction, and each one's CIEDE2000 split by true chroma."""
    reference = Truth(truth)
    rows, bands = [], []
    for (model, seed), prediction in predictions.items():
        scores, by_band = score(prediction, reference)
        rows.append(PerPhotoRow(model=model, seed=seed, photo_id=photo_id, **scores))
        bands += [{"model": model, "seed": seed, "photo_id": photo_id, **band} for band in by_band]
    return rows, bands


def join_and_score(photo_id: str, truth: np.ndarray, l_full: np.ndarray,
                   predicted: dict[tuple[str, int | None], np.ndarray], save: dict[tuple[str, int | None], str],
                   truth_path: str | os.PathLike | None = None
                   ) -> tuple[list[PerPhotoRow], list[dict[str, Any]]]:
    """Every prediction's a*b* (at the network's resolution, or one (2,) value for the whole photo: a baseline)
    joined to the photo's own L (`colorize.join`), the images named in `save` (and the truth) written as PNG, then
    scored (`score_photo`)."""
    from ..colorize import join
    from ..images import save_image_atomic

    predictions = {key: join(l_full, ab if ab.ndim == 3 else np.broadcast_to(ab, l_full.shape + (2,)))
                   for key, ab in predicted.items()}
    for key, path in save.items():
        save_image_atomic(predictions[key], path, compress_level=PNG_LEVEL)
    if truth_path is not None:
        save_image_atomic(truth, truth_path, compress_level=PNG_LEVEL)
    return score_photo(photo_id, truth, predictions)
