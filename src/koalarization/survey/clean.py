"""Which answers an analysis may use: rows that cannot be used are returned with the reason, never dropped silently;
participants that the survey's pre-registered attention-check rule excludes are listed with theirs.

A row is unusable when an id is missing, the kind is not colorized/real/catch, the answer is not real/fake (a blank
answer is a *missing answer*: it is reported apart, because a published share may have counted it one way or the
other), the response time is negative or not a number, the participant already answered that image, the image maps
to another photo or kind than in its first row, or, in an export of this survey's own server, the server never
sent the photo to that participant (an answer given without seeing it).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .files import SurveyDataError

REQUIRED = ("participant_id", "image_id", "photo_id", "kind", "answer")
KINDS = ("colorized", "real", "catch")
ANSWERS = ("real", "fake")
NO_ANSWER = "no answer"
NEVER_SENT = "the survey server never sent this photo to the participant"


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].map(lambda v: "" if pd.isna(v) else str(v).strip())


def _row_problems(text: dict[str, pd.Series], kind: pd.Series, answer: pd.Series, i: int) -> list[str]:
    reasons = [f"missing {column}" for column in ("participant_id", "image_id", "photo_id") if not text[column].iat[i]]
    if kind.iat[i] not in KINDS:
        reasons.append(f"unknown kind {text['kind'].iat[i]!r}")
    if not answer.iat[i]:
        reasons.append(NO_ANSWER)
    elif answer.iat[i] not in ANSWERS:
        reasons.append(f"answer {text['answer'].iat[i]!r} is not real/fake")
    return reasons


def _time_problems(frame: pd.DataFrame, reasons: list[list[str]]) -> None:
    """Response times are optional (no time without JavaScript) but never negative or text; in place."""
    if "response_ms" not in frame.columns:
        return
    raw = frame["response_ms"].astype(object).map(
        lambda v: np.nan if v is None or v is pd.NA or (isinstance(v, str) and not v.strip()) else v)
    times = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = (raw.notna() & times.isna()) | (times < 0)
    for i in np.flatnonzero(bad.to_numpy()):
        value = raw.iat[i]
        reasons[i].append(f"bad response_ms {value!r}" if isinstance(value, str) else f"bad response_ms {value}")
    frame["response_ms"] = times


def _never_sent(frame: pd.DataFrame, reasons: list[list[str]]) -> None:
    """An export of this survey's server says whether it sent each photo before its answer (`photo_sent`: yes, no,
    or unknown for answers stored before it recorded that); in place."""
    if "photo_sent" not in frame.columns:
        return
    for i in np.flatnonzero((frame["photo_sent"].astype(str).str.strip() == "no").to_numpy()):
        reasons[i].append(NEVER_SENT)


def _repeat_problems(text: dict[str, pd.Series], kind: pd.Series, reasons: list[list[str]]) -> None:
    """A second answer by a participant to an image, or an image that maps to two photos or kinds; in place."""
    first_answer: dict[tuple[str, str], int] = {}
    first_image: dict[str, tuple[tuple[str, str], int]] = {}
    for i in range(len(kind)):
        if reasons[i]:
            continue
        key = (text["participant_id"].iat[i], text["image_id"].iat[i])
        if key in first_answer:
            reasons[i].append(f"duplicate answer by this participant to this image (first at row {first_answer[key]})")
            continue
        identity = (text["photo_id"].iat[i], kind.iat[i])
        seen = first_image.setdefault(key[1], (identity, i))
        if seen[0] != identity:
            reasons[i].append(f"image {key[1]} is {seen[0]} at row {seen[1]} but {identity} here")
            continue
        first_answer[key] = i


def clean_responses(responses: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(usable answers, rejected rows with a `reason`); see the module docstring. A missing answer is a rejected row
    whose reason is exactly "no answer"."""
    frame = responses.copy().reset_index(drop=True)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise SurveyDataError(f"responses lack column(s) {missing}; expected the CSV of `koala survey export`")
    frame.insert(0, "row", np.arange(len(frame)))
    text = {c: _text(frame, c) for c in REQUIRED}
    kind, answer = text["kind"].str.lower(), text["answer"].str.lower()
    reasons = [_row_problems(text, kind, answer, i) for i in range(len(frame))]
    _time_problems(frame, reasons)
    _never_sent(frame, reasons)
    _repeat_problems(text, kind, reasons)
    for column in REQUIRED:
        frame[column] = text[column]
    frame["kind"], frame["answer"] = kind, answer
    frame["condition"] = _text(frame, "condition") if "condition" in frame.columns else ""
    frame["reason"] = ["; ".join(r) for r in reasons]
    rejected = frame[frame["reason"] != ""].reset_index(drop=True)
    clean = frame[frame["reason"] == ""].drop(columns="reason").reset_index(drop=True)
    clean["judged_real"] = clean["answer"] == "real"
    clean["correct"] = clean["judged_real"] == (clean["kind"] == "real")
    return clean, rejected


def missing_answers(rejected: pd.DataFrame) -> pd.DataFrame:
    """The rejected rows that are only a missing answer (a blank cell of a form, for instance)."""
    return rejected[rejected["reason"] == NO_ANSWER] if len(rejected) else rejected


def apply_exclusion(clean: pd.DataFrame, rule: dict[str, Any] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(answers of the participants kept, one row per excluded participant with the reason), by the survey's
    pre-registered rule (the manifest's `exclusion`: more than `max_real` catch images called real). Catch answers
    stay in the kept participants' rows (kind "catch"); no share of real or colorized photos uses them."""
    columns = ["participant_id", "catch_answers", "catch_called_real", "reason"]
    catch = clean[clean["kind"] == "catch"]
    if not rule or rule.get("max_real") is None or catch.empty:
        return clean, pd.DataFrame(columns=columns)
    limit = int(rule["max_real"])
    per = catch.groupby("participant_id")["judged_real"].agg(catch_answers="count", catch_called_real="sum")
    out = per[per["catch_called_real"] > limit].reset_index()
    out["reason"] = [f"called {n} of {k} catch image(s) real; the pre-registered rule allows {limit}"
                     for n, k in zip(out["catch_called_real"], out["catch_answers"])]
    kept = clean[~clean["participant_id"].isin(out["participant_id"])].reset_index(drop=True)
    return kept, out[columns].astype({"catch_answers": int, "catch_called_real": int})
