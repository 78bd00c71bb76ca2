"""Small file helpers shared by the survey modules: atomic writes and the survey folder's layout.

A survey folder has two halves: `public/` (what the web app may serve) and `private/` (truth labels, the
answers database, the organiser token), so that nothing private can be served by mistake.
"""
import json
import os
import tempfile
from pathlib import Path

SURVEY_JSON = "public/survey.json"
IMAGES_DIR = "public/images"
TRUTH_CSV = "private/truth.csv"
MANIFEST_JSON = "private/manifest.json"
DEFAULT_DB = "private/responses.sqlite"
TOKEN_FILE = "private/organiser_token"


def write_bytes_atomic(path, data, mode=None):
    """Write to a temporary file in the same folder, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path, text, mode=None):
    return write_bytes_atomic(path, text.encode("utf-8"), mode=mode)


def write_json_atomic(path, obj, mode=None):
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n", mode=mode)


def write_csv_atomic(frame, path):
    """pandas DataFrame -> CSV, atomically."""
    return write_text_atomic(path, frame.to_csv(index=False))


def load_public_survey(survey_dir):
    """The public half of a survey: its settings and opaque image ids, never the truth."""
    path = Path(survey_dir) / SURVEY_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {survey_dir} a survey folder made by `koala survey build`?")
    return json.loads(path.read_text(encoding="utf-8"))
