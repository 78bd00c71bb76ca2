"""Build a real-vs-fake survey set from a run's per-photo results (`koala survey build`).

The paper showed each participant 9 colorized photos (picked among the model's best results) and 3 real ones.
Here the pick is an explicit, recorded rule: `best` by a stated metric, or `random`, both seeded. Real photos are
always drawn at random (seeded) among the photos *not* shown colorized, so no scene appears twice.

Participants judge the photos at the size they are shown, so each is shown whole (aspect kept, never cropped)
with one common short side. Nothing but the pixels may tell real from colorized: every image is re-encoded the
same way (JPEG q=92 4:2:0, no EXIF or ICC profile), placed on one common canvas (so all have the same width and
height), padded to one common byte length with JPEG comment segments of zero bytes (real photos have more colour
detail, so their JPEGs would otherwise be larger), given one file time, and stored under an opaque random id. The
truth goes to `private/`, which the web app never serves.
"""
import datetime as _dt
import hashlib
import io
import logging
import os
import random
import secrets
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .. import __version__
from ..atomic import replace_directory, write_csv_atomic, write_json_atomic, write_text_atomic
from ..images import read_photo, resize_short_side
from .files import DEFAULT_DB, IMAGES_DIR, MANIFEST_JSON, SURVEY_JSON, TRUTH_CSV, SurveyDataError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("photo_id", "colorized_path", "real_path")
JPEG_QUALITY = 92
JPEG_SUBSAMPLING = "4:2:0"
SELECTIONS = ("best", "random")
CANVAS_COLOUR = (221, 221, 221)  # the page's photo frame (#ddd), so a canvas margin looks like the frame
COM_MAX_PAYLOAD = 65533  # a JPEG segment's length field counts itself (2 bytes) and is at most 65535
SELECTION_RULES = {
    "best": "the n_fake candidates with the best value of `metric` (lowest unless higher_is_better), ties broken "
            "by photo_id; candidates without a value are left out (user_study/PROTOCOL.md, section 2)",
    "random": "a seeded random draw of n_fake candidates (user_study/PROTOCOL.md, section 2)",
}


def load_candidates(candidates: pd.DataFrame | str | os.PathLike) -> tuple:
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
        raise SurveyDataError(f"candidates lack column(s) {missing}; need {list(REQUIRED_COLUMNS)} plus metric columns")
    frame = frame.dropna(subset=list(REQUIRED_COLUMNS)).copy()
    frame["photo_id"] = frame["photo_id"].astype(str)
    duplicated = frame["photo_id"][frame["photo_id"].duplicated()].unique().tolist()
    if duplicated:
        raise SurveyDataError(f"photo_id must be unique among candidates; repeated: {duplicated[:5]}")
    for column in ("colorized_path", "real_path"):
        frame[column] = [str(p if Path(p).is_absolute() else (base / p).resolve()) for p in frame[column].astype(str)]
    return frame.sort_values("photo_id", kind="stable").reset_index(drop=True), source


def select_photos(frame: pd.DataFrame, selection: str = "best", metric: str = "ciede2000",
                  lower_is_better: bool = True, n_fake: int = 9, n_real: int = 3, seed: int = 0) -> tuple:
    """Pick the photos to show colorized and the different photos to show real (the protocol's selection rule).

    Returns (fake rows, real rows, number of candidates left out of `best` for lacking the metric).
    """
    if selection not in SELECTIONS:
        raise SurveyDataError(f"selection must be one of {SELECTIONS}, not {selection!r}")
    if n_fake < 0 or n_real < 0 or n_fake + n_real < 1:
        raise SurveyDataError(f"need n_fake >= 0, n_real >= 0 and at least one photo (got {n_fake}, {n_real})")
    if len(frame) < n_fake + n_real:
        raise SurveyDataError(
            f"too few candidates: {len(frame)} distinct photos, but {n_fake} colorized + {n_real} real "
            f"= {n_fake + n_real} different photos are needed (a scene is never shown twice)"
        )
    rng = np.random.default_rng(seed)
    n_without_metric = 0
    if selection == "best":
        if metric not in frame.columns:
            raise SurveyDataError(f"metric column {metric!r} not in candidates (columns: {list(frame.columns)})")
        scores = pd.to_numeric(frame[metric], errors="coerce")
        scored = frame[scores.notna()].assign(_score=scores[scores.notna()])
        n_without_metric = len(frame) - len(scored)
        if len(scored) < n_fake:
            raise SurveyDataError(
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


def place_on_canvas(rgb: np.ndarray, canvas: tuple) -> np.ndarray:
    """The photo centred on a (width, height) canvas of the page frame's colour. Where every photo has the same
    aspect ratio the canvas is the photos' own size and there is no margin at all."""
    height, width = rgb.shape[:2]
    out = np.empty((canvas[1], canvas[0], 3), np.uint8)
    out[...] = CANVAS_COLOUR
    top, left = (canvas[1] - height) // 2, (canvas[0] - width) // 2
    out[top:top + height, left:left + width] = rgb
    return out


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """A fresh baseline JPEG that carries pixels only (no EXIF, ICC profile or comment), encoded the one way every
    survey image is encoded."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(
        buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING, optimize=False, progressive=False)
    return buffer.getvalue()


def pad_jpeg(data: bytes, length: int) -> bytes:
    """`data` grown to exactly `length` bytes with JPEG comment (COM) segments of zero bytes, inserted after the
    JFIF header. Decoders skip COM segments, so the image and its pixels are unchanged. Needs `length` to be the
    same as `len(data)` or at least 4 bytes more (a COM segment is at least 4 bytes)."""
    extra = length - len(data)
    if extra == 0:
        return data
    if extra < 4:
        raise SurveyDataError(f"cannot pad a JPEG by {extra} bytes: a comment segment takes at least 4")
    if data[:2] != b"\xff\xd8":
        raise SurveyDataError("not a JPEG (no start-of-image marker)")
    at = 2
    if data[2:4] == b"\xff\xe0":  # JFIF must stay the first segment
        at = 4 + struct.unpack(">H", data[4:6])[0]
    segments = []
    while extra:
        payload = min(extra - 4, COM_MAX_PAYLOAD)
        if 0 < extra - (payload + 4) < 4:  # never leave a remainder too small for one more segment
            payload -= 4
        segments.append(b"\xff\xfe" + struct.pack(">H", payload + 2) + bytes(payload))
        extra -= payload + 4
    return data[:at] + b"".join(segments) + data[at:]


def _opaque_ids(count: int) -> list:
    ids = set()
    while len(ids) < count:
        ids.add(secrets.token_hex(8))
    return sorted(ids)  # sorted random ids: the listed order says nothing about the truth


def build_survey(candidates, out_dir, selection: str = "best", metric: str = "ciede2000",
                 lower_is_better: bool = True, n_fake: int = 9, n_real: int = 3, seed: int = 0,
                 exposure_ms: int | None = None, short_side: int = 256, allow_upscale: bool = False,
                 title: str = "Real or fake?", contact: str | None = None, overwrite: bool = False) -> dict:
    """Write a survey folder: `public/` (images + survey.json, no truth) and `private/` (truth.csv, manifest.json).

    `candidates`: DataFrame or CSV with photo_id, colorized_path, real_path and metric columns. Each shown photo
    is whole, with its short side scaled to `short_side` pixels; a source smaller than that is an error unless
    `allow_upscale`, since enlarged photos look soft and participants would judge the scaling, not the colours.
    The folder is built beside `out_dir` and swapped into place. Returns the manifest (a dict).
    """
    out_dir = Path(out_dir)
    if exposure_ms is not None and (int(exposure_ms) != exposure_ms or not 50 <= exposure_ms <= 600_000):
        raise SurveyDataError(f"exposure_ms must be an integer from 50 to 600000 or None, not {exposure_ms!r}")
    if int(short_side) != short_side or not 16 <= short_side <= 4096:
        raise SurveyDataError(f"short_side must be a whole number of pixels from 16 to 4096, not {short_side!r}")
    if out_dir.exists() and any(out_dir.iterdir()):
        if (out_dir / DEFAULT_DB).exists():
            raise FileExistsError(f"{out_dir} holds collected answers ({DEFAULT_DB}): move it away first")
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True to replace it")

    frame, source = load_candidates(candidates)
    fake, real, n_without_metric = select_photos(frame, selection, metric, lower_is_better, n_fake, n_real, seed)
    shown = [(row, "colorized", row["colorized_path"], rank) for rank, (_, row) in enumerate(fake.iterrows(), 1)]
    shown += [(row, "real", row["real_path"], None) for _, row in real.iterrows()]
    missing = [path for _, _, path, _ in shown if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} selected image file(s) missing, e.g. {missing[:3]}")

    photos = [read_photo(path) for _, _, path, _ in shown]
    small = [(min(p.shape[:2]), path) for p, (_, _, path, _) in zip(photos, shown) if min(p.shape[:2]) < short_side]
    if small and not allow_upscale:
        side, path = min(small)
        raise SurveyDataError(
            f"{len(small)} selected photo(s) have a short side below short_side={short_side} px (smallest {side} px:"
            f" {path}); pass a smaller short_side (--short-side {side}) or allow_upscale=True (--allow-upscale)")
    resized = [resize_short_side(photo, short_side) for photo in photos]  # whole photo, aspect kept, Lanczos
    canvas = (max(r.shape[1] for r in resized), max(r.shape[0] for r in resized))
    encoded = [encode_jpeg(place_on_canvas(photo, canvas)) for photo in resized]
    length = max(len(data) for data in encoded) + 4  # every image gets at least one comment segment
    encoded = [pad_jpeg(data, length) for data in encoded]

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
            target = staging / IMAGES_DIR / f"{image_id}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(encoded[index])
            rows.append({
                "image_id": image_id, "photo_id": row["photo_id"], "kind": kind,
                "selection_score": float(row[metric]) if scored else None,
                "selection_rank": rank if scored else None,
                "shown_path": path, "colorized_path": row["colorized_path"], "real_path": row["real_path"],
                "source_width": photos[index].shape[1], "source_height": photos[index].shape[0],
                "sha256": hashlib.sha256(encoded[index]).hexdigest(),
            })
        stamp = created.timestamp()
        for target in (staging / IMAGES_DIR).iterdir():
            os.utime(target, (stamp, stamp))  # same file time for all: write order must not leak
        public = {
            "survey_id": survey_id, "format_version": 2, "title": title,
            "question": "Is this photo real, or was it colorized by a computer?",
            "images": ids, "exposure_ms": None if exposure_ms is None else int(exposure_ms), "contact": contact,
            "image_size": list(canvas),
        }
        manifest = {
            "survey_id": survey_id, "created_utc": created.isoformat().replace("+00:00", "Z"),
            "selection": {
                "rule": selection, "metric": metric if selection == "best" else None,
                "lower_is_better": bool(lower_is_better) if selection == "best" else None, "seed": int(seed),
                "real_photos": "seeded random draw among the candidates not shown colorized",
                "description": SELECTION_RULES[selection],
            },
            "n_fake": int(n_fake), "n_real": int(n_real), "exposure_ms": public["exposure_ms"],
            "order": "randomized per participant, seeded by the participant id",
            "encoding": {
                "format": "JPEG", "quality": JPEG_QUALITY, "subsampling": JPEG_SUBSAMPLING,
                "short_side": int(short_side), "allow_upscale": bool(allow_upscale), "upscaled": len(small),
                "canvas": list(canvas), "canvas_colour": "#{:02x}{:02x}{:02x}".format(*CANVAS_COLOUR), "bytes": length,
                "fit": "whole photo, aspect kept, short side scaled (Lanczos), centred on one common canvas",
                "metadata": "none (EXIF and ICC stripped); zero-byte comment segments pad every file to one length",
            },
            "candidates": {"source": source, "n": int(len(frame)), "n_without_metric": int(n_without_metric)},
            "koalarization_version": __version__,
        }
        write_json_atomic(staging / SURVEY_JSON, public)
        truth = pd.DataFrame(rows)
        truth["selection_rank"] = truth["selection_rank"].astype("Int64")
        write_csv_atomic(truth, staging / TRUTH_CSV)
        write_json_atomic(staging / MANIFEST_JSON, manifest)
        write_text_atomic(staging / "private" / ".gitignore", "# truth labels and answers: never commit\n*\n")
        os.chmod(staging / "private", 0o700)
        replace_directory(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("survey %s built in %s: %d colorized + %d real photos, %dx%d px, %d bytes each", survey_id, out_dir,
             n_fake, n_real, canvas[0], canvas[1], length)
    return manifest


def load_truth(survey_dir) -> pd.DataFrame:
    """The private truth table of a survey folder (organiser side only)."""
    path = Path(survey_dir) / TRUTH_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the truth labels of {survey_dir} are missing")
    return pd.read_csv(path, dtype={"image_id": str, "photo_id": str})
