"""Answers in SQLite: one row per participant and photo, committed as soon as it arrives.

WAL mode lets the organiser read progress while participants write; `synchronous=FULL` makes a committed answer
survive a power cut. Each call opens its own short-lived connection, so the web app's worker threads never share
one. A participant's photo order is a shuffle seeded by the participant id (reproducible, different per person),
and it is stored too, so a later change of shuffling code cannot change an existing participant's order.

The server, not the browser, decides when a photo may be seen: a photo is served only for the participant's current
question (and, with an exposure time, only within that time from its first serving), and each answer stores the
server's own milliseconds since the photo was first sent beside the time the browser measured. A database that
cannot be written gives a 503 that says so (never a 500 and a reset connection), and `check_writable` lets
`/healthz` say it too.
"""
from __future__ import annotations

import json
import logging
import random
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import KoalaError
from .files import DEFAULT_DB, SurveyDataError, load_public_survey
from .schema import create_or_upgrade, utc_now

log = logging.getLogger(__name__)

ANSWERS = ("real", "fake")
AGE_BRACKETS = ("", "under 18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
COLOUR_VISION = ("", "normal", "colour-blind", "not sure")
MAX_COMMENT = 2000
MAX_RESPONSE_MS = 3_600_000
RESPONSE_SLACK_MS = 1000  # a browser's time can exceed the server's only by clock noise: this much is tolerated
PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
UNAVAILABLE = ("the survey cannot save answers right now; your answers so far are safe. Please try again in a "
               "minute.")


class SurveyError(KoalaError):
    """A request that cannot be honoured; `status` is the HTTP status the app answers with, `headers` any extra
    response headers (Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
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


@dataclass(frozen=True)
class Enrolment:
    """A participant as `Store.enrol` found or made it: `created` is False when the external id was known."""

    participant_id: str
    created: bool
    group_index: int


def sequence_for(participant_id: str, image_ids: Iterable[str]) -> list[str]:
    """The participant's photo order: a shuffle seeded by the participant id (reproducible, different per person,
    independent of the order the ids are given in)."""
    order = sorted(image_ids)
    random.Random(f"koala-survey:{participant_id}").shuffle(order)
    return order


def validate_profile(age_bracket: str = "", colour_vision: str = "", comment: str = "") -> tuple[str, str, str]:
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


def _check_participant_id(participant_id: object) -> str:
    if not isinstance(participant_id, str) or not PARTICIPANT_ID.match(participant_id):
        raise SurveyError(404, "unknown participant")
    return participant_id


class Store:
    """The answers database of one survey (bound to its survey id at first use).

    `groups`: the image ids each group of participants sees (several conditions: one group per rotation of the
    conditions over the photos, see build.py); a new participant joins the group with the fewest participants so
    far. None: one group of all `image_ids`.
    """

    def __init__(self, db_path: str | Path, survey_id: str, image_ids: Iterable[str],
                 groups: Sequence[Sequence[str]] | None = None, clock: Callable[[], float] = time.time):
        self.db_path = str(db_path)
        self.survey_id = survey_id
        self.image_ids = tuple(image_ids)
        self.groups = [tuple(group) for group in groups] if groups else [self.image_ids]
        self.clock = clock
        folder = Path(self.db_path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with self._connect_raw() as db:
                db.execute("PRAGMA journal_mode=WAL")
                create_or_upgrade(db)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('survey_id', ?)", (survey_id,))
                db.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (utc_now(),))
                bound = db.execute("SELECT value FROM meta WHERE key = 'survey_id'").fetchone()[0]
        except (sqlite3.Error, OSError) as error:
            raise SurveyDataError(f"cannot keep the answers in {folder}: {error} (the user running the survey "
                                  "server must be able to create and write files there)") from None
        if bound != survey_id:
            raise SurveyDataError(f"{db_path} holds answers for survey {bound}, not for survey {survey_id}")

    @contextmanager
    def _connect_raw(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection, always closed. A database error becomes SurveyError(503), which the app answers
        like any other refusal (the connection stays usable), and the server log gets the reason."""
        try:
            with self._connect_raw() as db:
                yield db
        except sqlite3.Error as error:
            log.error("the answers database %s cannot be used: %s", self.db_path, error)
            raise SurveyError(503, UNAVAILABLE, headers={"Retry-After": "30"}) from error

    @staticmethod
    @contextmanager
    def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (the error is raised again)."""
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def check_writable(self) -> None:
        """Write to the database in a transaction, as an answer would; SurveyError(503) when that fails."""
        with self.connect() as db, self.transaction(db):
            db.execute("INSERT OR REPLACE INTO meta VALUES ('checked_at', ?)", (utc_now(),))

    # participants -------------------------------------------------------------------------------------------

    def enrol(self, age_bracket: str = "", colour_vision: str = "", comment: str = "", user_agent: str = "",
              max_participants: int | None = None, external_id: str | None = None,
              external_params: dict[str, str] | None = None) -> Enrolment:
        """A new participant with a random id, a group and its own photo order, or, for an `external_id` (a crowd
        platform's participant id) that is already known, that participant (created=False: not counted twice).

        `max_participants`: refuse (SurveyError 403) once the survey has that many, checked in the same
        transaction as the insert so that simultaneous starts cannot overshoot it.
        """
        age_bracket, colour_vision, comment = validate_profile(age_bracket, colour_vision, comment)
        if external_id is not None and not EXTERNAL_ID.match(external_id):
            raise SurveyError(422, "the participant id given by the crowd platform is malformed")
        # a letter first: an id starting with '-' would be read as a formula by a spreadsheet opening the export
        participant_id = "p" + secrets.token_urlsafe(18)
        with self.connect() as db, self.transaction(db):
            known = self._external(db, external_id)
            if known is not None:
                return known
            count = db.execute("SELECT COUNT(*) FROM participants").fetchone()[0]
            if max_participants is not None and count >= max_participants:
                log.warning("new participation refused: the survey has its %d participants", max_participants)
                raise SurveyError(403, f"this survey is closed: it has all the {max_participants} participants"
                                       " it needs. Thank you for your interest!")
            group = self._next_group(db)
            db.execute(
                "INSERT INTO participants (participant_id, created_at, sequence, age_bracket, colour_vision, comment,"
                " user_agent, external_id, external_params, group_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (participant_id, utc_now(), json.dumps(sequence_for(participant_id, self.groups[group])),
                 age_bracket, colour_vision, comment, str(user_agent or "")[:300], external_id,
                 json.dumps(external_params or {}, sort_keys=True), group))
        return Enrolment(participant_id, True, group)

    def _next_group(self, db: sqlite3.Connection) -> int:
        """The group with the fewest participants so far (the lowest index on a tie): groups stay balanced."""
        counts = dict(db.execute("SELECT group_index, COUNT(*) FROM participants GROUP BY group_index").fetchall())
        return min(range(len(self.groups)), key=lambda g: (counts.get(g, 0), g))

    @staticmethod
    def _external(db: sqlite3.Connection, external_id: str | None) -> Enrolment | None:
        if external_id is None:
            return None
        row = db.execute("SELECT participant_id, group_index FROM participants WHERE external_id = ?",
                         (external_id,)).fetchone()
        return None if row is None else Enrolment(row[0], False, row[1])

    def create_participant(self, age_bracket: str = "", colour_vision: str = "", comment: str = "",
                           user_agent: str = "", max_participants: int | None = None) -> str:
        """A new participant (no external id); returns its id. See `enrol`."""
        return self.enrol(age_bracket, colour_vision, comment, user_agent, max_participants).participant_id

    def find_external(self, external_id: str) -> str | None:
        """The participant who arrived with this crowd-platform id, if any."""
        if not EXTERNAL_ID.match(external_id):
            return None
        with self.connect() as db:
            known = self._external(db, external_id)
        return known.participant_id if known else None

    def participant(self, participant_id: str) -> dict[str, Any]:
        """The participant's row as a dict (with its sequence and answered image ids), or SurveyError(404)."""
        _check_participant_id(participant_id)
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

    def progress(self, participant_id: str) -> tuple[int, str | None, int]:
        """(position of the next photo from 0, its image id or None when finished, total)."""
        info = self.participant(participant_id)
        for position, image_id in enumerate(info["sequence"]):
            if image_id not in info["answered"]:
                return position, image_id, len(info["sequence"])
        return len(info["sequence"]), None, len(info["sequence"])

    def update_details(self, participant_id: str, age_bracket: str = "", colour_vision: str = "",
                       comment: str = "") -> None:
        """Details given on the consent page again by a browser that had already started: a given age or colour
        vision replaces the stored one, a comment is appended (nothing the participant typed is dropped)."""
        age_bracket, colour_vision, comment = validate_profile(age_bracket, colour_vision, comment)
        _check_participant_id(participant_id)
        with self.connect() as db, self.transaction(db):
            for column, value in (("age_bracket", age_bracket), ("colour_vision", colour_vision)):
                if value:
                    db.execute(f"UPDATE participants SET {column} = ? WHERE participant_id = ?",
                               (value, participant_id))
        self.add_comment(participant_id, comment)

    def add_comment(self, participant_id: str, comment: str) -> None:
        """A closing comment from the thank-you page (appended, so nothing said earlier is lost)."""
        _, _, comment = validate_profile(comment=comment)
        if not comment:
            return
        self.participant(participant_id)
        with self.connect() as db, self.transaction(db):
            current = db.execute("SELECT comment FROM participants WHERE participant_id = ?",
                                 (participant_id,)).fetchone()[0]
            joined = f"{current}\n{comment}" if current else comment
            if len(joined) > MAX_COMMENT:
                raise SurveyError(422, f"comments together are longer than {MAX_COMMENT} characters")
            db.execute("UPDATE participants SET comment = ? WHERE participant_id = ?", (joined, participant_id))

    # photos shown --------------------------------------------------------------------------------------------

    def serve_image(self, participant_id: str, image_id: str, exposure_ms: int | None = None,
                    record: bool = True) -> None:
        """Allow sending a photo to a participant, and record the serving (`record=False`: a HEAD request).

        404: not the participant's current photo (another participant's, a later one, an answered one);
        410: the survey has an exposure time and it has passed since the photo was first sent.
        """
        _check_participant_id(participant_id)
        now_ms = self.clock() * 1000
        with self.connect() as db, self.transaction(db):
            if self._current(db, participant_id) != image_id:
                raise SurveyError(404, "this photo is not the one being shown now; reload the page to continue")
            shown = db.execute("SELECT first_served_ms FROM shown WHERE participant_id = ? AND image_id = ?",
                               (participant_id, image_id)).fetchone()
            if shown is not None and exposure_ms and now_ms - shown[0] > exposure_ms:
                raise SurveyError(410, f"this photo was shown for its {exposure_ms / 1000:g} seconds; answer from "
                                       "memory")
            if record and shown is None:
                db.execute("INSERT INTO shown VALUES (?, ?, ?, ?, 1)",
                           (participant_id, image_id, utc_now(), now_ms))
            elif record:
                db.execute("UPDATE shown SET times_served = times_served + 1 WHERE participant_id = ? AND "
                           "image_id = ?", (participant_id, image_id))

    def exposure_left_ms(self, participant_id: str, image_id: str, exposure_ms: int | None) -> int | None:
        """Milliseconds the photo may still be seen (0: its exposure time is over); None without an exposure time
        or before the photo was first sent."""
        if not exposure_ms:
            return None
        with self.connect() as db:
            shown = db.execute("SELECT first_served_ms FROM shown WHERE participant_id = ? AND image_id = ?",
                               (participant_id, image_id)).fetchone()
        if shown is None:
            return None
        return max(0, int(shown[0] + exposure_ms - self.clock() * 1000))

    @staticmethod
    def _current(db: sqlite3.Connection, participant_id: str) -> str | None:
        row = db.execute("SELECT sequence FROM participants WHERE participant_id = ?", (participant_id,)).fetchone()
        if row is None:
            raise SurveyError(404, "unknown participant")
        answered = {r[0] for r in db.execute("SELECT image_id FROM answers WHERE participant_id = ?",
                                             (participant_id,))}
        return next((i for i in json.loads(row[0]) if i not in answered), None)

    # answers ------------------------------------------------------------------------------------------------

    def record_answer(self, participant_id: str, image_id: str, answer: str,
                      response_ms: int | None = None) -> AnswerResult:
        """Store one answer, in its own transaction. A repeat of a stored answer is a no-op (stored=False).

        400: the image is not in this participant's sequence (unknown ids included), or the answer is not real/fake;
        404: unknown participant;
        409: a different answer is already stored, or the photo is not the one being shown now;
        422: a response time out of range, or longer than the server's own time since it first sent the photo.
        """
        if answer not in ANSWERS:
            raise SurveyError(400, "answer must be 'real' or 'fake'")
        if response_ms is not None:
            if isinstance(response_ms, bool) or not isinstance(response_ms, int):
                raise SurveyError(422, "response_ms must be an integer number of milliseconds")
            if not 0 <= response_ms <= MAX_RESPONSE_MS:
                raise SurveyError(422, f"response_ms must be between 0 and {MAX_RESPONSE_MS}")
        _check_participant_id(participant_id)
        with self.connect() as db, self.transaction(db):
            return self._record(db, participant_id, image_id, answer, response_ms, self.clock() * 1000)

    @staticmethod
    def _record(db: sqlite3.Connection, participant_id: str, image_id: str, answer: str, response_ms: int | None,
                now_ms: float) -> AnswerResult:
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
        shown = db.execute("SELECT first_served_ms, first_served_at FROM shown WHERE participant_id = ? AND "
                           "image_id = ?", (participant_id, image_id)).fetchone()
        server_ms = None if shown is None else max(0, round(now_ms - shown[0]))
        if response_ms is not None and server_ms is not None and response_ms > server_ms + RESPONSE_SLACK_MS:
            raise SurveyError(422, f"response_ms {response_ms} is longer than the {server_ms} ms since the server "
                                   "sent the photo")
        now = utc_now()
        db.execute(
            "INSERT INTO answers (participant_id, image_id, position, answer, response_ms, answered_at, server_ms,"
            " shown_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (participant_id, image_id, position, answer, response_ms, now, server_ms,
             None if shown is None else shown[1]))
        if len(answered) + 1 == len(sequence):
            db.execute("UPDATE participants SET finished_at = ? WHERE participant_id = ?", (now, participant_id))
        return AnswerResult(True, position, len(answered) + 1, len(sequence))

    # organiser side ------------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts for the organiser's progress view."""
        with self.connect() as db:
            participants = db.execute("SELECT COUNT(*), COUNT(finished_at) FROM participants").fetchone()
            answers = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            last = db.execute("SELECT MAX(answered_at) FROM answers").fetchone()[0]
        return {"participants": participants[0], "finished": participants[1], "answers": answers,
                "photos_per_participant": len(self.groups[0]), "last_answer_at": last}

    def participants_rows(self) -> list[dict[str, Any]]:
        """Every participant with the optional details and the number of answers (organiser side only)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT p.participant_id, p.created_at, p.finished_at, p.age_bracket, p.colour_vision, p.comment,"
                " p.user_agent, p.external_id, p.external_params, p.group_index,"
                " (SELECT COUNT(*) FROM answers a WHERE a.participant_id = p.participant_id) AS answered"
                " FROM participants p ORDER BY p.created_at").fetchall()
        return [dict(r) for r in rows]

    def photos_recorded_since(self) -> str:
        """When this database began to record the photos it sent (its creation, or its upgrade to this version)."""
        with self.connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'photos_recorded_since'").fetchone()
        return row[0] if row else ""

    def answers_rows(self) -> list[dict[str, Any]]:
        """Every stored answer with its participant's details and the serving of its photo, in arrival order."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT a.participant_id, a.image_id, a.position, a.answer, a.response_ms, a.server_ms, a.shown_at,"
                " s.times_served, a.answered_at, p.finished_at IS NOT NULL AS participant_finished, p.age_bracket,"
                " p.colour_vision, p.external_id, p.external_params, p.group_index"
                " FROM answers a JOIN participants p USING (participant_id)"
                " LEFT JOIN shown s ON s.participant_id = a.participant_id AND s.image_id = a.image_id"
                " ORDER BY a.answered_at, a.answer_id").fetchall()
        return [dict(r) for r in rows]


def open_store(survey_dir: str | Path, db_path: str | Path | None = None) -> Store:
    """The Store for a survey folder (default database: private/responses.sqlite)."""
    survey = load_public_survey(survey_dir)
    return Store(db_path or Path(survey_dir) / DEFAULT_DB, survey["survey_id"], survey["images"],
                 groups=survey.get("groups"))
