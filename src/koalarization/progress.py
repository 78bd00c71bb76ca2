"""Stage 2's progress in the terminal: the training stage runs inside a notebook, where its output is not seen until
it ends, so it writes how far it has got to a small file after every network and `koala study` reads it from there.

On a 2-core CPU the demo's twelve networks take from about 15 minutes (Intel AMX) to about two hours (AVX2 only, no
native bf16): a user should learn which, from this machine's own pace, after the first network, not at the end.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .atomic import write_json_atomic

REUSED_SECONDS = 5.0  # a network already trained is found and indexed in well under this
POLL_SECONDS = 10.0


def write_progress(path: Path, total: int, seconds: dict[Any, float], last: str, at_once: int = 1) -> None:
    """After each network (and once before the first): how many of `total` are done, the time of each, the last,
    and how many train at once."""
    write_json_atomic(path, {"total": total, "done": len(seconds), "last": last, "seconds": list(seconds.values()),
                             "at_once": at_once})


def progress_line(progress: dict[str, Any]) -> str:
    """Networks done, the last one's time, and the time left at the pace of the networks trained so far in this run
    (reused ones aside)."""
    done, total, spent = progress["done"], progress["total"], progress["seconds"]
    if not done:
        return f"{total} networks to train or reuse; progress follows as they finish"
    text = f"{done} of {total} networks ({progress['last']}: {duration(spent[-1])})"
    trained = [s for s in spent if s > REUSED_SECONDS]
    if trained and done < total:
        at_once = progress.get("at_once", 1)
        text += f"; about {duration((total - done) * sum(trained) / len(trained) / at_once)} left at this pace"
    return text


def duration(seconds: float) -> str:
    """'42 s', '9 min', '1 h 05 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


@contextmanager
def reporting(path: Path, echo: Callable[[str], None], prefix: str, poll: float = POLL_SECONDS) -> Iterator[None]:
    """While the block runs, echo `prefix` + a progress line whenever the file at `path` says more is done (a stale
    file from an earlier run is removed first; a half-read or missing file is skipped)."""
    path.unlink(missing_ok=True)
    stop = threading.Event()

    def watch() -> None:
        shown = -1
        while not stop.wait(poll):
            try:
                progress = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if progress.get("done", -1) != shown:
                shown = progress["done"]
                echo(f"{prefix}{progress_line(progress)}")

    watcher = threading.Thread(target=watch, name="stage-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
