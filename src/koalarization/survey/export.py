"""Answers joined with the private truth labels: the responses CSV that the tabulation reads (`koala survey export`)."""
from pathlib import Path

import pandas as pd

from ..atomic import write_csv_atomic
from .build import load_truth
from .store import open_store

RESPONSE_COLUMNS = ["participant_id", "image_id", "photo_id", "kind", "answer", "response_ms", "answered_at",
                    "position", "participant_finished", "age_bracket", "colour_vision"]
PARTICIPANT_COLUMNS = ["participant_id", "created_at", "finished_at", "answered", "age_bracket", "colour_vision",
                       "comment"]


def export_responses(survey_dir, db_path=None, out_csv=None, store=None) -> pd.DataFrame:
    """One row per stored answer with its photo and kind (real/colorized); written to `out_csv` when given.

    An answer whose image is missing from truth.csv keeps empty photo_id/kind, so the tabulation reports it
    instead of it vanishing here. `store`: an already open Store (the web app passes its own).
    """
    store = store or open_store(survey_dir, db_path)
    answers = pd.DataFrame(store.answers_rows(), columns=[c for c in RESPONSE_COLUMNS if c not in ("photo_id", "kind")])
    truth = load_truth(survey_dir)[["image_id", "photo_id", "kind"]]
    frame = answers.merge(truth, on="image_id", how="left", validate="many_to_one")[RESPONSE_COLUMNS]
    frame["response_ms"] = frame["response_ms"].astype("Int64")
    frame["participant_finished"] = frame["participant_finished"].astype(bool)
    if out_csv is not None:
        write_csv_atomic(frame, Path(out_csv))
    return frame


def export_participants(survey_dir, db_path=None, out_csv=None) -> pd.DataFrame:
    """One row per participant with the optional details they gave (comments included: keep this file private)."""
    store = open_store(survey_dir, db_path)
    frame = pd.DataFrame(store.participants_rows(), columns=PARTICIPANT_COLUMNS)
    if out_csv is not None:
        write_csv_atomic(frame, Path(out_csv))
    return frame
