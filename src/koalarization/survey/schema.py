"""The answers database's tables, and the additions that bring a database made by an older version up to date.

One row per participant (`participants`), one per answer (`answers`, unique per participant and photo), one per
photo served to a participant (`shown`: when the server first sent it and how often, so that exposure and response
times are measured by the server's own clock, not only by the participant's browser).
"""
from __future__ import annotations

import datetime as _dt
import sqlite3

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
CREATE TABLE IF NOT EXISTS shown (
    participant_id TEXT NOT NULL REFERENCES participants(participant_id),
    image_id TEXT NOT NULL,
    first_served_at TEXT NOT NULL,
    first_served_ms REAL NOT NULL,
    times_served INTEGER NOT NULL,
    PRIMARY KEY (participant_id, image_id)
);
"""

ADDED_COLUMNS = {  # columns added after the first version; a database made before gets them on opening
    "participants": [("external_id", "TEXT"), ("external_params", "TEXT NOT NULL DEFAULT '{}'"),
                     ("group_index", "INTEGER NOT NULL DEFAULT 0")],
    "answers": [("server_ms", "INTEGER"), ("shown_at", "TEXT")],
}
INDEXES = ("CREATE UNIQUE INDEX IF NOT EXISTS participants_external_id ON participants(external_id)"
           " WHERE external_id IS NOT NULL",)


def create_or_upgrade(db: sqlite3.Connection) -> None:
    """Create the tables, add the columns and indexes of newer versions (in one transaction)."""
    db.execute("BEGIN IMMEDIATE")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    for statement in INDEXES:
        db.execute(statement)
    # answers stored before this version have no record of their photo being sent: the export says "unknown" then
    db.execute("INSERT OR IGNORE INTO meta VALUES ('photos_recorded_since', ?)", (utc_now(),))
    db.execute("COMMIT")


def utc_now() -> str:
    """UTC time, ISO 8601 with milliseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
