"""Build a real-vs-fake survey set from a run's per-photo results (`koala survey build`).

The paper showed each participant 9 colorized photos (picked among the model's best results) and 3 real ones.
Here the pick is an explicit, recorded rule: `best` by a stated metric (its direction comes from the metric,
`evaluate.metrics`), or `random`, both seeded. Real photos are always drawn at random (seeded) among the photos
*not* shown colorized, and catch images (attention checks) among the rest, so no scene appears twice.

Several models (conditions) can be judged in one survey, by the same people: participants are split into as many
groups as there are conditions, and group g sees the i-th selected photo colorized by condition (i + g) mod K. Every
participant sees each scene once, every condition on about the same number of photos, and every photo in every
condition across groups (a Latin square), so conditions can be compared photo by photo. With several conditions
`best` ranks photos by the metric averaged over the conditions, so that no condition's own best photos are picked.

Participants judge the photos at the size they are shown, so each is shown whole (aspect kept, never cropped)
with one common short side. Nothing but the pixels may tell real from colorized (`imaging.py`): one canvas, one
encoding, one byte length, one file time for every image of every group and condition, each stored under an opaque
random id. The truth goes to `private/`, which the web app never serves; so does the exclusion rule of the
attention checks, written into the manifest before any answer can exist.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import random
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..atomic import replace_directory, write_csv_atomic, write_json_atomic, write_text_atomic
from ..evaluate.metrics import METRICS
from ..images import read_photo, resize_short_side
from .files import DEFAULT_DB, IMAGES_DIR, MANIFEST_JSON, SURVEY_JSON, TRUTH_CSV, SurveyDataError
from .imaging import (  # noqa: F401  (re-exported: callers and tests know them from here)
    CANVAS_COLOUR,
    JPEG_QUALITY,
    JPEG_SUBSAMPLING,
    absurd_colouring,
    encode_jpeg,
    pad_jpeg,
    place_on_canvas,
)

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("photo_id", "colorized_path", "real_path")
SELECTIONS = ("best", "random")
SELECTION_RULES = {
    "best": "the n_fake photos with the best value of `metric` (its direction from evaluate.metrics; averaged over the "
            "conditions when there are several), ties broken by photo_id; photos without a value are left out "
            "(user_study/PROTOCOL.md, section 2)",
    "random": "a seeded random draw of n_fake photos (user_study/PROTOCOL.md, section 2)",
}
QUESTION = "Is this photo real, or was it colorized by a computer?"


def metric_direction(metric: str, lower_is_better: bool | None = None) -> bool:
    """Whether lower values of `metric` are better, from the metric itself (`evaluate.metrics.METRICS`). A direction
    given by the caller must agree with it; for a metric the package does not know, it must be given."""
    info = METRICS.get(metric)
    if info is None:
        if lower_is_better is None:
            raise SurveyDataError(f"metric {metric!r} is not one of the package's metrics {sorted(METRICS)}: say "
                                  "whether lower is better (lower_is_better=..., --lower-is-better or "
                                  "--higher-is-better)")
        return bool(lower_is_better)
    if info.higher_is_better is None:
        raise SurveyDataError(f"metric {metric!r} has no better direction (its ideal is matching the truth): pick "
                              "photos by a metric that has one, e.g. ciede2000, psnr or ssim")
    if lower_is_better is not None and bool(lower_is_better) == info.higher_is_better:
        raise SurveyDataError(f"metric {metric!r} is {'higher' if info.higher_is_better else 'lower'}-is-better; "
                              f"lower_is_better={lower_is_better} contradicts it")
    return not info.higher_is_better


def load_candidates(candidates: pd.DataFrame | str | os.PathLike) -> tuple[pd.DataFrame, str]:
    """DataFrame or CSV path -> (DataFrame with absolute paths and a `condition` column, description of the source).

    One row per photo, or with several models one row per photo and `condition` (the model's id). Relative paths
    in a CSV are resolved against the CSV's folder, so a run folder can be moved whole.
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
    frame["condition"] = frame["condition"].fillna("").astype(str) if "condition" in frame.columns else ""
    duplicated = frame[frame.duplicated(["photo_id", "condition"])]["photo_id"].unique().tolist()
    if duplicated:
        raise SurveyDataError(f"photo_id must be unique among candidates (per condition); repeated: {duplicated[:5]}")
    for column in ("colorized_path", "real_path"):
        frame[column] = [str(p if Path(p).is_absolute() else (base / p).resolve()) for p in frame[column].astype(str)]
    return frame.sort_values(["photo_id", "condition"], kind="stable").reset_index(drop=True), source


def condition_candidates(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One candidates table for several models: each model's table (`evaluate.run.survey_candidates`) with its id
    in `condition`."""
    return pd.concat([frame.assign(condition=model) for model, frame in frames.items()], ignore_index=True)


@dataclass(frozen=True)
class Selection:
    """The photos of a survey: shown colorized (in rank order), shown real, and used for catch images."""

    fake: pd.DataFrame
    real: pd.DataFrame
    catch: pd.DataFrame
    n_without_metric: int


def _photos(frame: pd.DataFrame, conditions: list[str], metric: str | None) -> tuple[pd.DataFrame, int]:
    """One row per photo that every condition colorized: its real path, the metric averaged over the conditions
    (`_score`), and each condition's colorized path (`colorized_path:<condition>`)."""
    present = frame[frame["condition"].isin(conditions)]
    counts = present.groupby("photo_id")["condition"].nunique()
    complete = present[present["photo_id"].isin(counts[counts == len(conditions)].index)]
    photos = complete.groupby("photo_id", sort=True).agg(real_path=("real_path", "first")).reset_index()
    for condition in conditions:
        paths = complete[complete["condition"] == condition].set_index("photo_id")["colorized_path"]
        photos[f"colorized_path:{condition}"] = photos["photo_id"].map(paths)
    photos["colorized_path"] = photos[f"colorized_path:{conditions[0]}"]
    if metric is not None:
        scores = pd.to_numeric(complete[metric], errors="coerce").groupby(complete["photo_id"]).mean()
        photos["_score"] = photos["photo_id"].map(scores)
    return photos, int(frame["photo_id"].nunique() - len(photos))


def select_photos(frame: pd.DataFrame, selection: str = "best", metric: str = "ciede2000",
                  lower_is_better: bool | None = None, n_fake: int = 9, n_real: int = 3, seed: int = 0,
                  n_catch: int = 0, conditions: list[str] | None = None) -> Selection:
    """Pick the photos to show colorized, the different photos to show real, and others for the catch images (the
    protocol's selection rule). `conditions`: the models judged (default: the candidates' one condition)."""
    if selection not in SELECTIONS:
        raise SurveyDataError(f"selection must be one of {SELECTIONS}, not {selection!r}")
    if min(n_fake, n_real, n_catch) < 0 or n_fake + n_real < 1:
        raise SurveyDataError(f"need n_fake >= 0, n_real >= 0, n_catch >= 0 and at least one photo (got {n_fake}, "
                              f"{n_real}, {n_catch})")
    conditions = conditions or sorted(frame["condition"].unique())
    if selection == "best" and metric not in frame.columns:
        raise SurveyDataError(f"metric column {metric!r} not in candidates (columns: {list(frame.columns)})")
    lower = metric_direction(metric, lower_is_better) if selection == "best" else True
    photos, _ = _photos(frame, conditions, metric if selection == "best" else None)
    needed = n_fake + n_real + n_catch
    if len(photos) < needed:
        raise SurveyDataError(
            f"too few candidates: {len(photos)} distinct photos, but {n_fake} colorized + {n_real} real + {n_catch} "
            f"catch = {needed} different photos are needed (a scene is never shown twice)")
    rng = np.random.default_rng(seed)
    n_without_metric = 0
    if selection == "best":
        scored = photos[photos["_score"].notna()]
        n_without_metric = len(photos) - len(scored)
        if len(scored) < n_fake:
            raise SurveyDataError(f"too few candidates with a numeric {metric!r}: {len(scored)}, need {n_fake} "
                                  f"({n_without_metric} lack it)")
        ordered = scored.sort_values(["_score", "photo_id"], ascending=[lower, True], kind="stable")
        fake = ordered.head(n_fake)
    else:
        fake = photos.iloc[np.sort(rng.permutation(len(photos))[:n_fake])]
    rest = photos[~photos["photo_id"].isin(fake["photo_id"])]
    real = rest.iloc[np.sort(rng.permutation(len(rest))[:n_real])]
    rest = rest[~rest["photo_id"].isin(real["photo_id"])]
    catch = rest.iloc[np.sort(rng.permutation(len(rest))[:n_catch])]
    return Selection(fake.reset_index(drop=True), real.reset_index(drop=True), catch.reset_index(drop=True),
                     n_without_metric)


def latin_square(n_fake: int, conditions: list[str]) -> list[list[str]]:
    """For each group of participants, the condition of each selected photo in rank order: photo i is shown by
    condition (i + g) mod K to group g."""
    count = len(conditions)
    return [[conditions[(i + g) % count] for i in range(n_fake)] for g in range(count)]


@dataclass(frozen=True)
class Item:
    """One image of the survey: a photo as one group sees it."""

    group: int
    photo_id: str
    kind: str  # colorized, real or catch
    condition: str
    path: str
    rank: int | None
    score: float | None
    colorized_path: str
    real_path: str


def survey_items(chosen: Selection, conditions: list[str], scored: bool) -> list[Item]:
    """Every image of every group (each group sees every photo once, see `latin_square`)."""
    items = []
    for group, plan in enumerate(latin_square(len(chosen.fake), conditions)):
        for rank, ((_, row), condition) in enumerate(zip(chosen.fake.iterrows(), plan), 1):
            items.append(Item(group, row["photo_id"], "colorized", condition, row[f"colorized_path:{condition}"],
                              rank if scored else None, float(row["_score"]) if scored else None,
                              row[f"colorized_path:{condition}"], row["real_path"]))
        for kind, rows in (("real", chosen.real), ("catch", chosen.catch)):
            items += [Item(group, row["photo_id"], kind, "", row["real_path"], None, None, row["colorized_path"],
                           row["real_path"]) for _, row in rows.iterrows()]
    return items


def render_images(items: list[Item], short_side: int, allow_upscale: bool) -> tuple[list[bytes], dict[str, Any]]:
    """Each item's JPEG, all of one canvas and one byte length, and what was done (for the manifest).

    A source smaller than `short_side` is an error unless `allow_upscale`: enlarged photos look soft, and
    participants would judge the scaling rather than the colours."""
    sources = {(item.path, item.kind == "catch") for item in items}
    photos = {key: read_photo(key[0]) for key in sorted(sources)}
    small = sorted((min(p.shape[:2]), key[0]) for key, p in photos.items() if min(p.shape[:2]) < short_side)
    if small and not allow_upscale:
        side, path = small[0]
        raise SurveyDataError(
            f"{len(small)} selected photo(s) have a short side below short_side={short_side} px (smallest {side} px:"
            f" {path}); pass a smaller short_side (--short-side {side}) or allow_upscale=True (--allow-upscale)")
    resized = {key: resize_short_side(photo, short_side) for key, photo in photos.items()}  # whole, Lanczos
    resized = {key: absurd_colouring(image) if key[1] else image for key, image in resized.items()}
    canvas = (max(r.shape[1] for r in resized.values()), max(r.shape[0] for r in resized.values()))
    encoded = {key: encode_jpeg(place_on_canvas(image, canvas)) for key, image in resized.items()}
    length = max(len(data) for data in encoded.values()) + 4  # every image gets at least one comment segment
    padded = {key: pad_jpeg(data, length) for key, data in encoded.items()}
    sizes = {key[0]: (p.shape[1], p.shape[0]) for key, p in photos.items()}
    done = {"canvas": list(canvas), "bytes": length, "upscaled": len(small), "sizes": sizes}
    return [padded[(item.path, item.kind == "catch")] for item in items], done


def _opaque_ids(count: int) -> list[str]:
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(secrets.token_hex(8))
    return sorted(ids)  # sorted random ids: the listed order says nothing about the truth


def build_survey(candidates: pd.DataFrame | str | os.PathLike, out_dir: str | os.PathLike, selection: str = "best",
                 metric: str = "ciede2000", lower_is_better: bool | None = None, n_fake: int = 9, n_real: int = 3,
                 seed: int = 0, exposure_ms: int | None = None, short_side: int = 256, allow_upscale: bool = False,
                 title: str = "Real or fake?", contact: str | None = None, overwrite: bool = False,
                 conditions: list[str] | None = None, n_catch: int = 0, catch_max_real: int = 0,
                 target_participants: int = 60) -> dict[str, Any]:
    """Write a survey folder: `public/` (images + survey.json, no truth) and `private/` (truth.csv, manifest.json).

    `candidates`: DataFrame or CSV with photo_id, colorized_path, real_path and metric columns (and `condition` for
    several models; `conditions` picks and orders them). `lower_is_better`: only for a metric the package does
    not know (the package's metrics know their direction). `n_catch` catch images per participant, and the
    exclusion rule `catch_max_real` (a participant who calls more of them real is excluded), recorded in the
    manifest. `target_participants`: the sample the server's limits are sized for. Each shown photo is whole, with
    its short side scaled to `short_side` pixels. The folder is built beside `out_dir` and swapped into place.
    Returns the manifest (a dict).
    """
    out_dir = Path(out_dir)
    _check_settings(out_dir, exposure_ms, short_side, catch_max_real, n_catch, target_participants, overwrite)
    frame, source = load_candidates(candidates)
    conditions = _conditions(frame, conditions)
    chosen = select_photos(frame, selection, metric, lower_is_better, n_fake, n_real, seed, n_catch, conditions)
    items = survey_items(chosen, conditions, scored=selection == "best")
    missing = sorted({item.path for item in items if not Path(item.path).is_file()})
    if missing:
        raise FileNotFoundError(f"{len(missing)} selected image file(s) missing, e.g. {missing[:3]}")
    encoded, done = render_images(items, short_side, allow_upscale)
    survey_id = secrets.token_hex(8)
    public = {"survey_id": survey_id, "format_version": 3, "title": title, "question": QUESTION,
              "exposure_ms": None if exposure_ms is None else int(exposure_ms), "contact": contact,
              "image_size": done["canvas"], "target_participants": int(target_participants)}
    manifest = {
        "survey_id": survey_id, "created_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        .replace("+00:00", "Z"),
        "selection": {"rule": selection, "metric": metric if selection == "best" else None,
                      "lower_is_better": metric_direction(metric, lower_is_better) if selection == "best" else None,
                      "seed": int(seed), "real_photos": "seeded random draw among the candidates not shown colorized",
                      "description": SELECTION_RULES[selection]},
        "n_fake": int(n_fake), "n_real": int(n_real), "n_catch": int(n_catch), "exposure_ms": public["exposure_ms"],
        "conditions": conditions, "design": design_text(conditions),
        "exclusion": exclusion_rule(n_catch, catch_max_real), "target_participants": int(target_participants),
        "order": "randomized per participant, seeded by the participant id",
        "encoding": _encoding(short_side, allow_upscale, done),
        "candidates": {"source": source, "n": int(frame["photo_id"].nunique()),
                       "n_without_metric": chosen.n_without_metric},
        "koalarization_version": __version__,
    }
    _write_folder(out_dir, items, encoded, done["sizes"], public, manifest)
    log.info("survey %s built in %s: %d colorized (%d condition(s)) + %d real + %d catch photos per participant, "
             "%dx%d px, %d bytes each", survey_id, out_dir, n_fake, len(conditions), n_real, n_catch,
             *done["canvas"], done["bytes"])
    return manifest


def _check_settings(out_dir: Path, exposure_ms: int | None, short_side: int, catch_max_real: int, n_catch: int,
                    target: int, overwrite: bool) -> None:
    if exposure_ms is not None and (int(exposure_ms) != exposure_ms or not 50 <= exposure_ms <= 600_000):
        raise SurveyDataError(f"exposure_ms must be an integer from 50 to 600000 or None, not {exposure_ms!r}")
    if int(short_side) != short_side or not 16 <= short_side <= 4096:
        raise SurveyDataError(f"short_side must be a whole number of pixels from 16 to 4096, not {short_side!r}")
    if n_catch and not 0 <= catch_max_real < n_catch:
        raise SurveyDataError(f"catch_max_real must be from 0 to n_catch - 1 = {n_catch - 1}, not {catch_max_real}")
    if int(target) != target or target < 1:
        raise SurveyDataError(f"target_participants must be a whole number >= 1, not {target!r}")
    if out_dir.exists() and any(out_dir.iterdir()):
        if (out_dir / DEFAULT_DB).exists():
            raise FileExistsError(f"{out_dir} holds collected answers ({DEFAULT_DB}): move it away first")
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True to replace it")


def _conditions(frame: pd.DataFrame, conditions: list[str] | None) -> list[str]:
    present = sorted(frame["condition"].unique())
    if not conditions:
        if len(present) > 1:
            raise SurveyDataError(f"the candidates hold several conditions {present}: name the ones to judge")
        return present
    if len(set(conditions)) != len(conditions):
        raise SurveyDataError(f"conditions must be distinct, not {conditions}")
    unknown = [c for c in conditions if c not in present]
    if unknown:
        raise SurveyDataError(f"condition(s) {unknown} have no candidates (the candidates hold {present})")
    return list(conditions)


def design_text(conditions: list[str]) -> str:
    """How conditions are spread over participants, in words (the manifest's `design`)."""
    if len(conditions) < 2:
        return "one condition: every participant sees the same photos"
    return (f"{len(conditions)} conditions ({', '.join(conditions)}) within participants: participants are split "
            "into as many groups, new participants join the smallest group, and group g sees the i-th selected photo "
            "colorized by condition (i + g) mod K; no participant sees a scene twice")


def exclusion_rule(n_catch: int, catch_max_real: int) -> dict[str, Any]:
    """The pre-registered exclusion rule of the attention checks (the manifest's `exclusion`)."""
    if not n_catch:
        return {"catch_images": 0, "max_real": None, "rule": "no attention checks: nobody is excluded"}
    return {"catch_images": int(n_catch), "max_real": int(catch_max_real),
            "rule": f"a participant who calls more than {catch_max_real} of the {n_catch} catch image(s) (photos "
                    "with an absurd, obviously false colouring) real is excluded from every analysis; their answers "
                    "stay in the export. Participants who stop before a catch image are judged on those they "
                    "answered."}


def _encoding(short_side: int, allow_upscale: bool, done: dict[str, Any]) -> dict[str, Any]:
    return {"format": "JPEG", "quality": JPEG_QUALITY, "subsampling": JPEG_SUBSAMPLING,
            "short_side": int(short_side), "allow_upscale": bool(allow_upscale), "upscaled": done["upscaled"],
            "canvas": done["canvas"], "canvas_colour": "#{:02x}{:02x}{:02x}".format(*CANVAS_COLOUR),
            "bytes": done["bytes"],
            "fit": "whole photo, aspect kept, short side scaled (Lanczos), centred on one common canvas",
            "metadata": "none (EXIF and ICC stripped); zero-byte comment segments pad every file to one length",
            "catch": "the photo's lightness with bands of saturated hues across the frame (imaging.absurd_colouring)"}


def _write_folder(out_dir: Path, items: list[Item], encoded: list[bytes], sizes: dict[str, tuple[int, int]],
                  public: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Write public/ and private/ into a staging folder beside `out_dir`, then swap it into place."""
    ids = _opaque_ids(len(items))
    order = list(range(len(items)))
    random.SystemRandom().shuffle(order)  # not seeded: a known seed would let anyone map sorted ids to kinds
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(os.path.realpath(out_dir.parent)) / f".{out_dir.name}.building-{secrets.token_hex(4)}"
    try:
        (staging / IMAGES_DIR).mkdir(parents=True)
        rows: list[dict[str, Any]] = []
        groups: list[list[str]] = [[] for _ in range(1 + max(item.group for item in items))]
        for image_id, index in zip(ids, order):
            item = items[index]
            (staging / IMAGES_DIR / f"{image_id}.jpg").write_bytes(encoded[index])
            groups[item.group].append(image_id)
            rows.append({"image_id": image_id, "photo_id": item.photo_id, "kind": item.kind,
                         "condition": item.condition, "group": item.group, "selection_score": item.score,
                         "selection_rank": item.rank, "shown_path": item.path, "colorized_path": item.colorized_path,
                         "real_path": item.real_path, "source_width": sizes[item.path][0],
                         "source_height": sizes[item.path][1], "sha256": hashlib.sha256(encoded[index]).hexdigest()})
        stamp = _dt.datetime.fromisoformat(manifest["created_utc"].replace("Z", "+00:00")).timestamp()
        for target in (staging / IMAGES_DIR).iterdir():
            os.utime(target, (stamp, stamp))  # same file time for all: write order must not leak
        write_json_atomic(staging / SURVEY_JSON, {**public, "images": ids, "groups": [sorted(g) for g in groups]})
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


def load_truth(survey_dir: str | os.PathLike) -> pd.DataFrame:
    """The private truth table of a survey folder (organiser side only)."""
    path = Path(survey_dir) / TRUTH_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the truth labels of {survey_dir} are missing")
    return pd.read_csv(path, dtype={"image_id": str, "photo_id": str, "condition": str},
                       keep_default_na=False, na_values={"selection_score": [""], "selection_rank": [""]})
