"""A machine baseline: how well a trivial pixel statistic tells the survey's real photos from its colorized ones.

The detector, stated in full: convert the shown JPEG to CIE L*a*b*, take the Sobel gradient magnitude of the
lightness L* and of the colour (a*, b*) at every pixel, and score the photo by their Pearson correlation. In a real
photo colour edges sit on lightness edges (an object's boundary changes both); a colorization predicts a*b* at low
resolution and blurs colour across boundaries, so the two edge maps agree less. A higher score says "real". It is
read two ways: the probability that a random real photo outscores a random colorized one (AUC; 50% is chance), and
the accuracy when the k highest scores are called real, k being the number of real photos shown (a detector told k;
participants are not told it, so this flatters the detector). Participants' accuracy on the same photos is printed
beside it: a fooling rate means little if a one-line statistic sees through the colorizations.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import sobel
from skimage.color import rgb2lab

from ..images import read_photo
from .build import load_truth
from .files import IMAGES_DIR
from .imaging import CANVAS_COLOUR

DETECTOR = ("correlation of lightness edges with colour edges (Sobel magnitudes of L* and of a*b*, Pearson, over "
            "the photo's pixels; higher = more likely real)")


def trim_margin(rgb: np.ndarray, tolerance: int = 8) -> np.ndarray:
    """The photo without the canvas margin around it (whole rows and columns of the frame colour, as build.py
    centres photos of another aspect ratio)."""
    near = np.all(np.abs(rgb.astype(int) - np.asarray(CANVAS_COLOUR)) <= tolerance, axis=-1)
    rows, cols = np.flatnonzero(~near.all(axis=1)), np.flatnonzero(~near.all(axis=0))
    if rows.size == 0 or cols.size == 0:
        return rgb
    return rgb[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def edge_correlation(rgb: np.ndarray) -> float:
    """The detector's score of one photo (the canvas margin left out)."""
    lab = rgb2lab(trim_margin(np.asarray(rgb, dtype=np.uint8)))
    lightness = np.hypot(sobel(lab[..., 0], 0), sobel(lab[..., 0], 1)).ravel()
    colour = np.sqrt(sum(sobel(lab[..., c], axis) ** 2 for c in (1, 2) for axis in (0, 1))).ravel()
    if lightness.std() == 0 or colour.std() == 0:
        return float("nan")
    return float(np.corrcoef(lightness, colour)[0, 1])


def score_survey(survey_dir: str | Path) -> pd.DataFrame:
    """One row per shown image (real and colorized; catch images left out): image_id, photo_id, kind, condition,
    group and the detector's score."""
    truth = load_truth(survey_dir)
    truth = truth[truth["kind"].isin(["real", "colorized"])].copy()
    truth["score"] = [edge_correlation(read_photo(Path(survey_dir) / IMAGES_DIR / f"{i}.jpg"))
                      for i in truth["image_id"]]
    columns = [c for c in ("image_id", "photo_id", "kind", "condition", "group", "score") if c in truth.columns]
    return truth[columns].reset_index(drop=True)


def auc(real: np.ndarray, colorized: np.ndarray) -> float:
    """P(a real photo's score > a colorized one's), ties counted half."""
    if len(real) == 0 or len(colorized) == 0:
        return float("nan")
    diff = np.asarray(real)[:, None] - np.asarray(colorized)[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def group_result(scores: pd.DataFrame) -> dict[str, float]:
    """The detector on one participant group's photos (what one participant sees)."""
    real, fake = scores[scores["kind"] == "real"]["score"], scores[scores["kind"] == "colorized"]["score"]
    k = len(real)
    called_real = set(scores.nlargest(k, "score")["image_id"]) if k else set()
    correct = sum((i in called_real) == (kind == "real") for i, kind in zip(scores["image_id"], scores["kind"]))
    reals_on_top = len(called_real & set(scores[scores["kind"] == "real"]["image_id"]))
    return {"photos": len(scores), "real_photos": k, "auc_pct": 100 * auc(real.to_numpy(), fake.to_numpy()),
            "accuracy_top_k_pct": 100 * correct / len(scores) if len(scores) else float("nan"),
            "real_in_top_k": reals_on_top,
            "chance_all_real_on_top": 1 / math.comb(len(scores), k) if k else float("nan")}


def baseline_table(scores: pd.DataFrame, clean: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per participant group: the detector's (`DETECTOR`) AUC and top-k accuracy, and participants' accuracy
    on the same photos (share of correct answers on real and colorized photos), when there are answers."""
    groups = sorted(scores["group"].unique()) if "group" in scores.columns else [0]
    rows = []
    for group in groups:
        own = scores[scores["group"] == group] if "group" in scores.columns else scores
        row = {"group": int(group), **group_result(own)}
        answered = None if clean is None else clean[clean["image_id"].isin(own["image_id"])
                                                    & clean["kind"].isin(["real", "colorized"])]
        row["participants"] = 0 if answered is None else int(answered["participant_id"].nunique())
        row["participants_accuracy_pct"] = (100 * float(answered["correct"].mean())
                                            if answered is not None and len(answered) else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)
