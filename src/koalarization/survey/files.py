"""The survey folder's layout, and the error for a survey folder or input that is not what it should be.

A survey folder has two halves: `public/` (what the web app may serve) and `private/` (truth labels, the
answers database, the organiser token), so that nothing private can be served by mistake.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import KoalaError

SURVEY_JSON = "public/survey.json"
IMAGES_DIR = "public/images"
TRUTH_CSV = "private/truth.csv"
MANIFEST_JSON = "private/manifest.json"
DEFAULT_DB = "private/responses.sqlite"
TOKEN_FILE = "private/organiser_token"


class SurveyDataError(KoalaError, ValueError):
    """Candidates, photos or a survey folder that cannot make or serve a survey; the message says what to change."""


class SurveySettingsError(KoalaError, ValueError):
    """A limit or timeout of the survey server that makes no sense (from the command line or a caller)."""


def load_public_survey(survey_dir: str | Path) -> dict[str, Any]:
    """The public half of a survey: its settings and opaque image ids, never the truth."""
    path = Path(survey_dir) / SURVEY_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {survey_dir} a survey folder made by `koala survey build`?")
    return json.loads(path.read_text(encoding="utf-8"))
