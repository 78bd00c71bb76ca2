"""Build a real-vs-fake survey set from a run's per-photo results (`koala survey build`).

The paper showed each participant 9 colorized photos (picked among the model's best results) and 3 real ones.
Here the pick is an explicit, recorded rule: `best` by a stated metric, or `random`, both seeded. Real photos are
always drawn at random (seeded) among the photos *not* shown colorized, so no scene appears twice.

Every shown image is re-encoded the same way (centre square crop to one common side, JPEG q=92 4:2:0, no EXIF or
ICC profile, same file time) under an opaque random id, so that neither the file name, the format, the size,
the metadata nor the order gives the answer away. The truth goes to `private/`, which the web app never serves.
"""
import datetime as _dt
import hashlib
import io
import os
import random
import secrets
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from .. import __version__
from .files import IMAGES_DIR, MANIFEST_JSON, SURVEY_JSON, TRUTH_CSV, write_csv_atomic, write_json_atomic

REQUIRED_COLUMNS = ("photo_id", "colorized_path", "real_path")
JPEG_QUALITY = 92
JPEG_SUBSAMPLING = "4:2:0"
SELECTIONS = ("best", "random")


def load_candidates(candidates):
    """DataFrame or CSV path -> (DataFrame with absolute paths, description of the source).

    Relative paths in a CSV are resolved against the CSV's folder, so a run folder can be moved whole.
    """
    if isinstance(candidates, pd.DataFrame):
        frame, base, source = candidates.copy(), Path.cwd(), "DataFrame"
    else:
        path = Path(candidates)
        if not path.is_file():
            raise FileNotFoundError(f"candidates CSV {path} not found")
        frame, base, source = pd.read_csv(path), path.resolve().parent, str(path)
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"candidates lack column(s) {missing}; need {list(REQUIRED_COLUMNS)} plus metric columns")
    frame = frame.dropna(subset=list(REQUIRED_COLUMNS)).copy()
    frame["photo_id"] = frame["photo_id"].astype(str)
    duplicated = frame["photo_id"][frame["photo_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"photo_id must be unique among candidates; repeated: {duplicated[:5]}")
    for column in ("colorized_path", "real_path"):
        frame[column] = [str(p if Path(p).is_absolute() else (base / p).resolve()) for p in frame[column].astype(str)]
    return frame.sort_values("photo_id", kind="stable").reset_index(drop=True), source


def select_photos(frame, selection="best", metric="ciede2000", lower_is_better=True, n_fake=9, n_real=3, seed=0):
    """Pick the photos to show colorized and the different photos to show real.

    Returns (fake rows, real rows, number of candidates left out of `best` for lacking the metric).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, not {selection!r}")
    if n_fake < 0 or n_real < 0 or n_fake + n_real < 1:
        raise ValueError(f"need n_fake >= 0, n_real >= 0 and at least one photo (got {n_fake}, {n_real})")
    if len(frame) < n_fake + n_real:
        raise ValueError(
            f"too few candidates: {len(frame)} distinct photos, but {n_fake} colorized + {n_real} real "
            f"= {n_fake + n_real} different photos are needed (a scene is never shown twice)"
        )
    rng = np.random.default_rng(seed)
    n_without_metric = 0
    if selection == "best":
        if metric not in frame.columns:
            raise ValueError(f"metric column {metric!r} not in candidates (columns: {list(frame.columns)})")
        scores = pd.to_numeric(frame[metric], errors="coerce")
        scored = frame[scores.notna()].assign(_score=scores[scores.notna()])
        n_without_metric = len(frame) - len(scored)
        if len(scored) < n_fake:
            raise ValueError(
                f"too few candidates with a numeric {metric!r}: {len(scored)}, need {n_fake} "
                f"({n_without_metric} lack it)"
            )
        ordered = scored.sort_values(["_score", "photo_id"], ascending=[lower_is_better, True], kind="stable")
        fake = ordered.head(n_fake).drop(columns="_score")
    else:
        fake = frame.iloc[np.sort(rng.permutation(len(frame))[:n_fake])]
    rest = frame[~frame["photo_id"].isin(fake["photo_id"])]
    real = rest.iloc[np.sort(rng.permutation(len(rest))[:n_real])]
    return fake.reset_index(drop=True), real.reset_index(drop=True), n_without_metric


def _open_rgb(path):
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        return image.convert("RGB")


def _encode(image, side):
    """Centre square crop to side x side, then a fresh JPEG that carries pixels only (no EXIF, ICC, comments)."""
    fitted = ImageOps.fit(image, (side, side), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    bare = Image.fromarray(np.asarray(fitted, dtype=np.uint8), mode="RGB")
    buffer = io.BytesIO()
    bare.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING, optimize=False,
              progressive=False)
    return buffer.getvalue()


def _opaque_ids(count):
    ids = set()
    while len(ids) < count:
        ids.add(secrets.token_hex(8))
    return sorted(ids)  # sorted random ids: the listed order says nothing about the truth


def build_survey(candidates, out_dir, selection="best", metric="ciede2000", lower_is_better=True, n_fake=9,
                 n_real=3, seed=0, exposure_ms=None, max_side=512, title="Real or fake?", contact=None,
                 overwrite=False):
    """Write a survey folder: `public/` (images + survey.json, no truth) and `private/` (truth.csv, manifest.json).

    `candidates`: DataFrame or CSV with photo_id, colorized_path, real_path and metric columns. The images share
    one square side: the smallest source side, capped at `max_side`, so no image is upscaled more than another.
    The folder is built beside `out_dir` and renamed into place. Returns the manifest (a dict).
    """
    out_dir = Path(out_dir)
    if exposure_ms is not None and (int(exposure_ms) != exposure_ms or not 50 <= exposure_ms <= 600_000):
        raise ValueError(f"exposure_ms must be an integer from 50 to 600000 or None, not {exposure_ms!r}")
    if out_dir.exists() and any(out_dir.iterdir()):
        if (out_dir / "private" / "responses.sqlite").exists():
            raise FileExistsError(f"{out_dir} holds collected answers (private/responses.sqlite): move it away first")
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True to replace it")

    frame, source = load_candidates(candidates)
    fake, real, n_without_metric = select_photos(frame, selection, metric, lower_is_better, n_fake, n_real, seed)
    shown = [(row, "colorized", row["colorized_path"], rank) for rank, (_, row) in enumerate(fake.iterrows(), 1)]
    shown += [(row, "real", row["real_path"], None) for _, row in real.iterrows()]
    missing = [path for _, _, path, _ in shown if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} selected image file(s) missing, e.g. {missing[:3]}")

    images = [_open_rgb(path) for _, _, path, _ in shown]
    side = int(min(max_side, *(min(image.size) for image in images)))
    ids = _opaque_ids(len(shown))
    order = list(range(len(shown)))
    random.SystemRandom().shuffle(order)  # not seeded: a known seed would let anyone map sorted ids to kinds
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    survey_id = secrets.token_hex(8)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(os.path.realpath(out_dir.parent)) / f".{out_dir.name}.building-{secrets.token_hex(4)}"
    try:
        rows = []
        for image_id, index in zip(ids, order):
            row, kind, path, rank = shown[index]
            scored = kind == "colorized" and selection == "best"
            data = _encode(images[index], side)
            target = staging / IMAGES_DIR / f"{image_id}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            rows.append({
                "image_id": image_id, "photo_id": row["photo_id"], "kind": kind,
                "selection_score": float(row[metric]) if scored else None,
                "selection_rank": rank if scored else None,
                "shown_path": path, "colorized_path": row["colorized_path"], "real_path": row["real_path"],
                "sha256": hashlib.sha256(data).hexdigest(),
            })
        stamp = created.timestamp()
        for target in (staging / IMAGES_DIR).iterdir():
            os.utime(target, (stamp, stamp))  # same file time for all: write order must not leak
        public = {
            "survey_id": survey_id, "format_version": 1, "title": title,
            "question": "Is this photo real, or was it colorized by a computer?",
            "images": ids, "exposure_ms": None if exposure_ms is None else int(exposure_ms), "contact": contact,
        }
        manifest = {
            "survey_id": survey_id, "created_utc": created.isoformat().replace("+00:00", "Z"),
            "selection": {
                "rule": selection, "metric": metric if selection == "best" else None,
                "lower_is_better": bool(lower_is_better) if selection == "best" else None, "seed": int(seed),
                "real_photos": "seeded random draw among the candidates not shown colorized",
            },
            "n_fake": int(n_fake), "n_real": int(n_real), "exposure_ms": public["exposure_ms"],
            "order": "randomized per participant, seeded by the participant id",
            "encoding": {"format": "JPEG", "quality": JPEG_QUALITY, "subsampling": JPEG_SUBSAMPLING,
                         "side": side, "max_side": int(max_side), "fit": "centre square crop, Lanczos",
                         "metadata": "none (EXIF, ICC and comments stripped)"},
            "candidates": {"source": source, "n": int(len(frame)), "n_without_metric": int(n_without_metric)},
            "koalarization_version": __version__,
        }
        write_json_atomic(staging / SURVEY_JSON, public)
        truth = pd.DataFrame(rows)
        truth["selection_rank"] = truth["selection_rank"].astype("Int64")
        write_csv_atomic(truth, staging / TRUTH_CSV)
        write_json_atomic(staging / MANIFEST_JSON, manifest)
        (staging / "private" / ".gitignore").write_text("# truth labels and answers: never commit\n*\n")
        os.chmod(staging / "private", 0o700)
        _swap_into_place(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _swap_into_place(staging, out_dir):
    """Rename the finished folder into place; an old one is moved aside first and removed only afterwards."""
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{secrets.token_hex(4)}"
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_truth(survey_dir):
    """The private truth table of a survey folder (organiser side only)."""
    path = Path(survey_dir) / TRUTH_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the truth labels of {survey_dir} are missing")
    return pd.read_csv(path, dtype={"image_id": str, "photo_id": str})
