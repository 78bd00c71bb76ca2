"""Files the study writes and checks: atomic writes (write beside the target, then rename, so a crash never leaves
half a file behind) and checksums of large files."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _default_mode() -> int:
    """The mode a plain open() would give a new file: 0666 less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: str | os.PathLike, data: bytes, mode: int | None = None) -> Path:
    """Write `data` so that readers, and a crash, see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode if mode is not None else _default_mode())  # mkstemp's 0600 is for secrets only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str, mode: int | None = None) -> Path:
    """`write_bytes_atomic` for text (UTF-8)."""
    return write_bytes_atomic(path, text.encode("utf-8"), mode=mode)


def write_json_atomic(path: str | os.PathLike, obj: Any, mode: int | None = None) -> Path:
    """`write_bytes_atomic` for JSON (indented; other values as their str): records that must never be half-written."""
    return write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n", mode=mode)


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """pandas DataFrame -> CSV (no index, '\\n' line ends), atomically."""
    return write_text_atomic(path, frame.to_csv(index=False, lineterminator="\n"))


def replace_directory(staging: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Put the finished folder `staging` where `target` is, so readers see the old folder or the new one, never a mix.

    `staging` must be on the same file system as `target` (build it beside the target). An existing `target` is
    renamed aside first and removed only once the new folder is in place; if that rename-in fails, the old folder
    is put back. Returns the target path.
    """
    staging, target = Path(staging), Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{os.urandom(4).hex()}")
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    _fsync_directory(target.parent)
    if old is not None:
        import shutil

        shutil.rmtree(old, ignore_errors=True)
    return target


def _fsync_directory(path):
    """Make a rename in `path` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks (weights files are hundreds of MB)."""
    import hashlib

    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
