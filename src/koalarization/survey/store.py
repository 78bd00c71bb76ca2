"""Answers in SQLite: one row per participant and photo, committed as soon as it arrives.

WAL mode lets the organiser read progress while participants write; `synchronous=FULL` makes a committed answer
survive a power cut. Each call opens its own short-lived connection, so the web app's worker threads never share
one. A participant's photo order is a shuffle seeded by the participant id (reproducible, different per person),
and it is stored too, so a later change of shuffling code cannot change an existing participant's order.
"""
import datetime as _dt
import json
import logging
import random
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import KoalaError
from .files import DEFAULT_DB, SurveyDataError, load_public_survey

log = logging.getLogger(__name__)

ANSWERS = ("real", "fake")
AGE_BRACKETS = ("", "under 18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
COLOUR_VISION = ("", "normal", "colour-blind", "not sure")
MAX_COMMENT = 2000
MAX_RESPONSE_MS = 3_600_000
PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    sequence TEXT NOT NULL,
    age_bracket TEXT NOT NULL DEFAULT '',
    colour_vision TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS answers (
    answer_id INTEGER PRIMARY KEY,
    participant_id TEXT NOT NULL REFERENCES participants(participant_id),
    image_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('real', 'fake')),
    response_ms INTEGER CHECK (response_ms IS NULL OR response_ms >= 0),
    answered_at TEXT NOT NULL,
    UNIQUE (participant_id, image_id)
);
"""


class SurveyError(KoalaError):
    """A request that cannot be honoured; `status` is the HTTP status the app answers with, `headers` any extra
    response headers (Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class AnswerResult:
    stored: bool  # False: the same answer was already stored (an idempotent repeat)
    position: int
    answered: int
    total: int

    @property
    def finished(self) -> bool:
        return self.answered >= self.total


def utc_now() -> str:
    """UTC time, ISO 8601 with milliseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sequence_for(participant_id: str, image_ids) -> list:
    """The participant's photo order: a shuffle seeded by the participant id (reproducible, different per person,
    independent of the order the ids are given in)."""
    order = sorted(image_ids)
    random.Random(f"koala-survey:{participant_id}").shuffle(order)
    return order


def validate_profile(age_bracket: str = "", colour_vision: str = "", comment: str = "") -> tuple:
    """Optional participant fields: fixed choices or bounded free text. Raises SurveyError(422).

    The web app's pydantic models check the same before a request reaches the store; this keeps the database
    clean for callers that use the Store directly."""
    age_bracket, colour_vision, comment = (str(v or "").strip() for v in (age_bracket, colour_vision, comment))
    if age_bracket not in AGE_BRACKETS:
        raise SurveyError(422, f"age bracket must be one of {[a for a in AGE_BRACKETS if a]} or empty")
    if colour_vision not in COLOUR_VISION:
        raise SurveyError(422, f"colour vision must be one of {[c for c in COLOUR_VISION if c]} or empty")
    if len(comment) > MAX_COMMENT:
        raise SurveyError(422, f"comment is longer than {MAX_COMMENT} characters")
    return age_bracket, colour_vision, comment


class Store:
    """The answers database of one survey (bound to its survey id at first use)."""

    def __init__(self, db_path, survey_id: str, image_ids):
        self.db_path = str(db_path)
        self.survey_id = survey_id
        self.image_ids = tuple(image_ids)
        Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('survey_id', ?)", (survey_id,))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (utc_now(),))
            bound = db.execute("SELECT value FROM meta WHERE key = 'survey_id'").fetchone()[0]
        if bound != survey_id:
            raise SurveyDataError(f"{db_path} holds answers for survey {bound}, not for survey {survey_id}")

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection, committed on success, rolled back on error, always closed."""
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    # participants -------------------------------------------------------------------------------------------

    def create_participant(self, age_bracket: str = "", colour_vision: str = "", comment: str = "",
                           user_agent: str = "", max_participants: int | None = None) -> str:
        """A new participant with a random id and its own photo order; returns the id.

        `max_participants`: refuse (SurveyError 403) once the survey has that many, checked in the same
        transaction as the insert so that simultaneous starts cannot overshoot it.
        """
        age_bracket, colour_vision, comment = validate_profile(age_bracket, colour_vision, comment)
        participant_id = secrets.token_urlsafe(18)
        sequence = sequence_for(participant_id, self.image_ids)
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            if max_participants is not None:
                count = db.execute("SELECT COUNT(*) FROM participants").fetchone()[0]
                if count >= max_participants:
                    db.execute("ROLLBACK")
                    log.warning("new participation refused: the survey has its %d participants", max_participants)
                    raise SurveyError(403, f"this survey is closed: it has all the {max_participants} participants"
                                           " it needs. Thank you for your interest!")
            db.execute(
                "INSERT INTO participants (participant_id, created_at, sequence, age_bracket, colour_vision, comment,"
                " user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (participant_id, utc_now(), json.dumps(sequence), age_bracket, colour_vision, comment,
                 str(user_agent or "")[:300]),
            )
            db.execute("COMMIT")
        return participant_id

    def participant(self, participant_id: str) -> dict:
        """The participant's row as a dict (with its sequence and answered image ids), or SurveyError(404)."""
        if not isinstance(participant_id, str) or not PARTICIPANT_ID.match(participant_id):
            raise SurveyError(404, "unknown participant")
        with self.connect() as db:
            row = db.execute("SELECT * FROM participants WHERE participant_id = ?", (participant_id,)).fetchone()
            if row is None:
                raise SurveyError(404, "unknown participant")
            answered = {r[0]: r[1] for r in db.execute(
                "SELECT image_id, answer FROM answers WHERE participant_id = ?", (participant_id,))}
        info = dict(row)
        info["sequence"] = json.loads(info["sequence"])
        info["answered"] = answered
        return info

    def progress(self, participant_id: str) -> tuple:
        """(position of the next photo from 0, its image id or None when finished, total)."""
        info = self.participant(participant_id)
        for position, image_id in enumerate(info["sequence"]):
            if image_id not in info["answered"]:
                return position, image_id, len(info["sequence"])
        return len(info["sequence"]), None, len(info["sequence"])

    def add_comment(self, participant_id: str, comment: str) -> None:
        """A closing comment from the thank-you page (appended, so nothing said earlier is lost)."""
        _, _, comment = validate_profile(comment=comment)
        if not comment:
            return
        self.participant(participant_id)
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            current = db.execute("SELECT comment FROM participants WHERE participant_id = ?",
                                 (participant_id,)).fetchone()[0]
            joined = f"{current}\n{comment}" if current else comment
            if len(joined) > MAX_COMMENT:
                db.execute("ROLLBACK")
                raise SurveyError(422, f"comments together are longer than {MAX_COMMENT} characters")
            db.execute("UPDATE participants SET comment = ? WHERE participant_id = ?", (joined, participant_id))
            db.execute("COMMIT")

    # answers ------------------------------------------------------------------------------------------------

    def record_answer(self, participant_id: str, image_id: str, answer: str,
                      response_ms: int | None = None) -> AnswerResult:
        """Store one answer, in its own transaction. A repeat of a stored answer is a no-op (stored=False).

        400: the image is not in this participant's sequence (unknown ids included), or the answer is not real/fake;
        404: unknown participant;
        409: a different answer is already stored, or the photo is not the one being shown now.
        """
        if answer not in ANSWERS:
            raise SurveyError(400, "answer must be 'real' or 'fake'")
        if response_ms is not None:
            if isinstance(response_ms, bool) or not isinstance(response_ms, int):
                raise SurveyError(422, "response_ms must be an integer number of milliseconds")
            if not 0 <= response_ms <= MAX_RESPONSE_MS:
                raise SurveyError(422, f"response_ms must be between 0 and {MAX_RESPONSE_MS}")
        if not isinstance(participant_id, str) or not PARTICIPANT_ID.match(participant_id):
            raise SurveyError(404, "unknown participant")
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = self._record(db, participant_id, image_id, answer, response_ms)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return result

    @staticmethod
    def _record(db, participant_id, image_id, answer, response_ms):
        row = db.execute("SELECT sequence FROM participants WHERE participant_id = ?", (participant_id,)).fetchone()
        if row is None:
            raise SurveyError(404, "unknown participant")
        sequence = json.loads(row[0])
        if image_id not in sequence:
            raise SurveyError(400, "this photo is not in your survey")
        answered = {r[0]: r[1] for r in db.execute(
            "SELECT image_id, answer FROM answers WHERE participant_id = ?", (participant_id,))}
        position = sequence.index(image_id)
        if image_id in answered:
            if answered[image_id] != answer:
                raise SurveyError(409, "you already answered this photo differently; answers cannot be changed")
            return AnswerResult(False, position, len(answered), len(sequence))
        current = next(i for i in sequence if i not in answered)
        if image_id != current:
            raise SurveyError(409, "this is not the photo being shown now; reload the page to continue")
        now = utc_now()
        db.execute(
            "INSERT INTO answers (participant_id, image_id, position, answer, response_ms, answered_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (participant_id, image_id, position, answer, response_ms, now),
        )
        if len(answered) + 1 == len(sequence):
            db.execute("UPDATE participants SET finished_at = ? WHERE participant_id = ?", (now, participant_id))
        return AnswerResult(True, position, len(answered) + 1, len(sequence))

    # organiser side ------------------------------------------------------------------------------------------

    def summary(self) -> dict:
        """Counts for the organiser's progress view."""
        with self.connect() as db:
            participants = db.execute("SELECT COUNT(*), COUNT(finished_at) FROM participants").fetchone()
            answers = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            last = db.execute("SELECT MAX(answered_at) FROM answers").fetchone()[0]
        return {"participants": participants[0], "finished": participants[1], "answers": answers,
                "photos_per_participant": len(self.image_ids), "last_answer_at": last}

    def participants_rows(self) -> list:
        """Every participant with the optional details and the number of answers (organiser side only)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT p.participant_id, p.created_at, p.finished_at, p.age_bracket, p.colour_vision, p.comment,"
                " (SELECT COUNT(*) FROM answers a WHERE a.participant_id = p.participant_id) AS answered"
                " FROM participants p ORDER BY p.created_at").fetchall()
        return [dict(r) for r in rows]

    def answers_rows(self) -> list:
        """Every stored answer with its participant's details, in the order they arrived."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT a.participant_id, a.image_id, a.position, a.answer, a.response_ms, a.answered_at,"
                " p.finished_at IS NOT NULL AS participant_finished, p.age_bracket, p.colour_vision"
                " FROM answers a JOIN participants p USING (participant_id)"
                " ORDER BY a.answered_at, a.answer_id").fetchall()
        return [dict(r) for r in rows]


def open_store(survey_dir, db_path=None) -> Store:
    """The Store for a survey folder (default database: private/responses.sqlite)."""
    survey = load_public_survey(survey_dir)
    return Store(db_path or Path(survey_dir) / DEFAULT_DB, survey["survey_id"], survey["images"])
