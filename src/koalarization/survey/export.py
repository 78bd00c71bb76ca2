"""Answers joined with the private truth labels: the responses CSV that the tabulation reads (`koala survey export`),
and the participants CSV.

Text that a participant or a link supplied (comments, the browser's name, a crowd platform's ids) is written so
that a spreadsheet shows it as text: a cell that starts like a formula (`=`, `+`, `-`, `@`, tab, carriage return)
gets a leading apostrophe (OWASP's advice for CSV injection), and control characters (NUL and the rest of C0 and C1,
except a line break) and Unicode bidirectional overrides, which can make a cell read differently from what it
holds, become U+FFFD. The database keeps what was typed; only the exported copy is neutralised.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import write_csv_atomic
from .build import load_truth
from .store import Store, open_store

RESPONSE_COLUMNS = ["participant_id", "image_id", "photo_id", "kind", "answer", "response_ms", "answered_at",
                    "position", "participant_finished", "age_bracket", "colour_vision", "condition", "server_ms",
                    "shown_at", "times_served", "photo_sent", "group_index", "external_id", "external_params"]
PARTICIPANT_COLUMNS = ["participant_id", "external_id", "external_params", "group_index", "created_at",
                       "finished_at", "answered", "age_bracket", "colour_vision", "comment", "user_agent"]
FREE_TEXT = ("comment", "user_agent", "external_id", "external_params")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def spreadsheet_safe(value: Any) -> Any:
    """Text as a spreadsheet must show it (see the module docstring); anything that is not text is returned as
    it is."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_START):
        value = "'" + value
    return UNSAFE.sub("\ufffd", value)


def _neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    for column in FREE_TEXT:
        if column in frame.columns:
            frame[column] = frame[column].map(spreadsheet_safe)
    return frame


def export_responses(survey_dir: str | Path, db_path: str | Path | None = None, out_csv: str | Path | None = None,
                     store: Store | None = None) -> pd.DataFrame:
    """One row per stored answer with its photo, kind (real/colorized/catch), condition (the model, for a
    colorized photo) and the participant's crowd-platform id; written to `out_csv` when given.

    An answer whose image is missing from truth.csv keeps empty photo_id/kind, so the tabulation reports it
    instead of it vanishing here. `store`: an already open Store (the web app passes its own).
    """
    store = store or open_store(survey_dir, db_path)
    answers = pd.DataFrame(store.answers_rows())
    truth = load_truth(survey_dir)
    if "condition" not in truth.columns:
        truth["condition"] = ""
    if answers.empty:
        answers = pd.DataFrame(columns=[c for c in RESPONSE_COLUMNS if c not in ("photo_id", "kind", "condition")])
    frame = answers.merge(truth[["image_id", "photo_id", "kind", "condition"]], on="image_id", how="left",
                          validate="many_to_one")[[c for c in RESPONSE_COLUMNS if c != "photo_sent"]]
    for column in ("response_ms", "server_ms", "times_served"):
        frame[column] = frame[column].astype("Int64")
    frame["photo_sent"] = photo_sent(frame, store.photos_recorded_since())
    frame = frame[RESPONSE_COLUMNS]
    frame["participant_finished"] = frame["participant_finished"].astype(bool)
    frame["external_params"] = frame["external_params"].map(_params_text)
    frame = _neutralise(frame)
    if out_csv is not None:
        write_csv_atomic(frame, Path(out_csv))
    return frame


def photo_sent(frame: pd.DataFrame, recorded_since: str) -> list[str]:
    """Per answer: "yes" (the server sent the photo to that participant before the answer), "no" (it never did: an
    answer given without seeing the photo), "unknown" (stored before the database recorded what it sent)."""
    sent = frame["times_served"].fillna(0).astype(int) >= 1
    before = frame["answered_at"].astype(str) < recorded_since
    return ["yes" if s else ("unknown" if b else "no") for s, b in zip(sent, before)]


def _params_text(value: Any) -> str:
    """The extra crowd parameters as `NAME=value; ...` (empty when there are none)."""
    try:
        params = json.loads(value) if isinstance(value, str) and value else {}
    except ValueError:
        return str(value)
    return "; ".join(f"{k}={v}" for k, v in sorted(params.items()))


def export_participants(survey_dir: str | Path, db_path: str | Path | None = None,
                        out_csv: str | Path | None = None) -> pd.DataFrame:
    """One row per participant with the optional details they gave (comments included: keep this file private)."""
    store = open_store(survey_dir, db_path)
    frame = pd.DataFrame(store.participants_rows(), columns=PARTICIPANT_COLUMNS)
    frame["external_params"] = frame["external_params"].map(_params_text)
    frame = _neutralise(frame)
    if out_csv is not None:
        write_csv_atomic(frame, Path(out_csv))
    return frame
