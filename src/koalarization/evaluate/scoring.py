"""Scoring one photo's colorizations: the evaluation's numpy half, light enough to run in worker processes (it
imports neither Keras nor TensorFlow) while the main process runs the networks on the next photo."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..stages import PerPhotoRow
from .metrics import rgb_to_lab, score


def score_photo(photo_id: str, truth: np.ndarray, predictions: dict[tuple[str, int | None], np.ndarray]
                ) -> tuple[list[PerPhotoRow], list[dict[str, Any]]]:
    """Per-photo rows of every (model, seed) prediction, and each one's CIEDE2000 split by true chroma."""
    truth_lab = rgb_to_lab(truth)
    rows, bands = [], []
    for (model, seed), prediction in predictions.items():
        scores, by_band = score(prediction, truth, truth_lab)
        rows.append(PerPhotoRow(model=model, seed=seed, photo_id=photo_id, **scores))
        bands += [{"model": model, "seed": seed, "photo_id": photo_id, **band} for band in by_band]
    return rows, bands
