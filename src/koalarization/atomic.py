"""Atomic file writes: write beside the target, then rename. A crash never leaves half a file behind."""
import json
import os
import tempfile
from pathlib import Path


def write_bytes_atomic(path, data, mode=None):
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
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path, text, mode=None):
    return write_bytes_atomic(path, text.encode("utf-8"), mode=mode)


def write_json_atomic(path, obj, mode=None):
    return write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n", mode=mode)


def write_csv_atomic(frame, path):
    """pandas DataFrame -> CSV (no index, '\\n' line ends), atomically."""
    return write_text_atomic(path, frame.to_csv(index=False, lineterminator="\n"))
