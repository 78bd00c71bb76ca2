"""The published user-study figures: the paper's, the 2022 PyTorch replication's, Zhang et al.'s; each with its
source and whether it was read off a chart (`user_study/reference_2017.csv`), and the replication's per-image
answer counts (`user_study/replication_2022_counts.csv`), which are real answers that no one here collected.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .files import SurveyDataError

REFERENCE_RELATIVE = Path("user_study") / "reference_2017.csv"
COUNTS_RELATIVE = Path("user_study") / "replication_2022_counts.csv"
PAPER, REPLICATION = "koalarization_2017", "pytorch_replication"
REFERENCE_COLUMNS = {"study", "image", "kind", "participants", "judged_real_pct", "source", "read_off_chart"}
COUNT_COLUMNS = {"image", "kind", "judged_real", "answers", "source"}


def _find(relative: Path) -> Path:
    """A file of the repository's user_study/ folder: the package's copy (resources/, which a wheel carries) when
    there is one, else user_study/ above the package or above the working directory."""
    packaged = Path(__file__).resolve().parent.parent / "resources" / relative.name
    if packaged.is_file():
        return packaged
    starts = [Path(__file__).resolve(), Path.cwd().resolve()]
    for start in starts:
        for folder in [start, *start.parents]:
            candidate = folder / relative
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"{relative} not found above {starts}; pass its path explicitly")


def default_reference_path() -> Path:
    """The published figures (resources/reference_2017.csv, a link to user_study/reference_2017.csv that a wheel
    carries as a file, else user_study/ above the package or here)."""
    return _find(REFERENCE_RELATIVE)


def load_reference(reference: pd.DataFrame | str | Path | None = None) -> pd.DataFrame:
    """The published figures (paper, PyTorch replication, Zhang et al. 2016), each with its source and whether it
    was read off a chart, as a DataFrame."""
    if isinstance(reference, pd.DataFrame):
        frame = reference.copy()
    else:
        frame = pd.read_csv(reference or default_reference_path())
    missing = REFERENCE_COLUMNS - set(frame.columns)
    if missing:
        raise SurveyDataError(f"reference CSV lacks columns {sorted(missing)}: every published figure needs its"
                              " source and read_off_chart (true/false)")
    frame["read_off_chart"] = frame["read_off_chart"].map(
        lambda v: v if isinstance(v, (bool, np.bool_)) else str(v).strip().lower() in ("true", "1", "yes"))
    return frame


def reference_value(reference: pd.DataFrame, study: str, image: str, column: str = "judged_real_pct") -> float:
    rows = reference[(reference["study"] == study) & (reference["image"] == image)]
    return float(rows[column].iloc[0]) if len(rows) else float("nan")


def reference_source(reference: pd.DataFrame, study: str, image: str | None = None) -> str:
    """Where a published figure comes from, with "read off a chart, approximate" when it was; for image=None the
    source of the study's per-image values ("fake_*")."""
    if image is None:
        rows = reference[(reference["study"] == study) & reference["image"].str.startswith("fake_")]
    else:
        rows = reference[(reference["study"] == study) & (reference["image"] == image)]
    if rows.empty:
        return ""
    source = str(rows["source"].iloc[0])
    return source + ("; read off a chart, approximate" if rows["read_off_chart"].any() else "")


def paper_per_photo(reference: pd.DataFrame) -> pd.Series:
    """The paper's 9 per-photo shares judged real, sorted from most to least convincing."""
    rows = reference[(reference["study"] == PAPER) & reference["image"].str.startswith("fake_")]
    return rows["judged_real_pct"].astype(float).sort_values(ascending=False).reset_index(drop=True)


def load_replication_counts(path: str | Path | None = None) -> pd.DataFrame:
    """The 2022 replication's answers per image (image, kind, judged_real, answers, source): 60 participants, one
    answer missing on one colorized image (its notebook divides by 60 regardless)."""
    frame = pd.read_csv(path or _find(COUNTS_RELATIVE))
    missing = COUNT_COLUMNS - set(frame.columns)
    if missing:
        raise SurveyDataError(f"replication counts lack columns {sorted(missing)}")
    return frame
