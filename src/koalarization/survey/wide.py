"""`koala survey import`: the wide CSV that form tools export (Google Forms, Microsoft Forms, LimeSurvey...) as a
responses CSV the tabulation reads.

A form export has one row per participant and one column per image, holding "Real" or "Fake" (any case; a blank
cell is a missing answer, kept as such so that the tabulation can report it). A mapping CSV says what each image
column asked about: `column` (its header in the form export), `kind` (colorized, real or catch), `photo_id`, and
optionally `condition` (the model). Columns of the export that the mapping does not name (a timestamp, an e-mail
field) are left out and listed; a mapped column the export lacks is an error.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..atomic import write_csv_atomic
from .files import SurveyDataError

MAPPING_COLUMNS = ("column", "kind", "photo_id")
VALUES = {"real": "real", "fake": "fake"}


def load_mapping(mapping: str | Path | pd.DataFrame) -> pd.DataFrame:
    """The mapping CSV (or DataFrame), checked: the columns it needs, known kinds, one row per form column."""
    frame = mapping.copy() if isinstance(mapping, pd.DataFrame) else pd.read_csv(mapping, dtype=str,
                                                                                keep_default_na=False)
    missing = [c for c in MAPPING_COLUMNS if c not in frame.columns]
    if missing:
        raise SurveyDataError(f"the mapping lacks column(s) {missing}; it needs column, kind, photo_id "
                              "(and optionally condition)")
    frame["kind"] = frame["kind"].str.strip().str.lower()
    bad = sorted(set(frame["kind"]) - {"colorized", "real", "catch"})
    if bad:
        raise SurveyDataError(f"unknown kind(s) {bad} in the mapping: use colorized, real or catch")
    repeated = frame["column"][frame["column"].duplicated()].tolist()
    if repeated:
        raise SurveyDataError(f"the mapping names column(s) {repeated} twice")
    if "condition" not in frame.columns:
        frame["condition"] = ""
    return frame


def import_wide(wide: str | Path | pd.DataFrame, mapping: str | Path | pd.DataFrame, out_csv: str | Path | None = None,
                id_column: str | None = None) -> tuple[pd.DataFrame, str]:
    """(long responses, a note): one row per participant and mapped column, in the columns of `koala survey
    export` (participant_id, image_id, photo_id, kind, answer, condition, source_row). `id_column`: the column
    that identifies participants (default: "row<N>", the row number). Written to `out_csv` when given."""
    table = wide.copy() if isinstance(wide, pd.DataFrame) else pd.read_csv(wide, dtype=str, keep_default_na=False)
    plan = load_mapping(mapping)
    absent = [c for c in plan["column"] if c not in table.columns]
    if absent:
        raise SurveyDataError(f"the form export has no column(s) {absent} (its columns: {list(table.columns)})")
    if id_column is not None and id_column not in table.columns:
        raise SurveyDataError(f"--id-column {id_column!r} is not a column of the form export")
    ids = (table[id_column].astype(str) if id_column else pd.Series([f"row{i + 1:04d}" for i in range(len(table))]))
    if ids.duplicated().any():
        raise SurveyDataError(f"participant ids repeat in {id_column!r}: {sorted(set(ids[ids.duplicated()]))[:5]}")
    rows = []
    for _, spec in plan.iterrows():
        for row, (participant, value) in enumerate(zip(ids, table[spec["column"]])):
            text = "" if pd.isna(value) else str(value).strip()
            rows.append({"participant_id": participant, "image_id": _image_id(spec["column"]),
                         "photo_id": spec["photo_id"], "kind": spec["kind"],
                         "answer": VALUES.get(text.lower(), text), "condition": spec["condition"],
                         "source_row": row + 2})  # the row in the CSV file, its header being row 1
    frame = pd.DataFrame(rows)
    ignored = [c for c in table.columns if c not in set(plan["column"]) and c != id_column]
    blanks = int((frame["answer"] == "").sum())
    note = (f"{len(table)} participants x {len(plan)} image columns; {blanks} blank answer(s) kept as missing"
            + (f"; columns not in the mapping, left out: {ignored}" if ignored else ""))
    if out_csv is not None:
        write_csv_atomic(frame, Path(out_csv))
    return frame, note


def _image_id(column: str) -> str:
    """An image id from a form column's header (the tabulation needs one per image; headers can be any text)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", column).strip("_").lower() or "column"
