"""Stage 2's progress in the terminal (progress.py): the line, and the watcher that prints it while a stage runs."""
import time

from koalarization.layout import Layout
from koalarization.progress import duration, progress_line, reporting, write_progress


def test_the_line_says_how_far_and_how_long_is_left_at_this_pace():
    assert progress_line({"total": 12, "done": 0, "last": "", "seconds": []}).startswith("12 networks to train")
    line = progress_line({"total": 12, "done": 3, "last": "no_fusion seed 0", "seconds": [0.4, 540.0, 600.0]})
    # the reused network (0.4 s) does not set the pace: 9 left at 570 s each
    assert line == "3 of 12 networks (no_fusion seed 0: 10 min); about 1 h 26 min left at this pace"
    assert progress_line({"total": 2, "done": 2, "last": "a seed 1", "seconds": [30.0, 31.0]}) == \
        "2 of 2 networks (a seed 1: 31 s)"
    assert progress_line({"total": 4, "done": 1, "last": "a seed 0", "seconds": [0.5]}) == \
        "1 of 4 networks (a seed 0: 0 s)"  # only reused so far: no pace to go by


def test_durations_read_as_a_person_would_say_them():
    assert [duration(s) for s in (42, 89.4, 95, 3599, 3600, 3900)] == \
        ["42 s", "89 s", "2 min", "1 h 00 min", "1 h 00 min", "1 h 05 min"]


def test_the_watcher_prints_each_network_once_and_ignores_a_stale_file(tmp_path):
    path = Layout.for_profile("demo", tmp_path / "results", tmp_path / "work").training_progress
    path.parent.mkdir(parents=True)
    write_progress(path, 5, {("old", 0): 100.0}, "a stale run")
    lines: list[str] = []

    def shown(count: int) -> None:  # wait for the watcher (a loaded machine may be slow), at most 10 s
        deadline = time.time() + 10
        while len(lines) < count and time.time() < deadline:
            time.sleep(0.01)

    with reporting(path, lines.append, "[02_train] ", poll=0.02):
        seconds: dict = {}
        write_progress(path, 2, seconds, "")
        shown(1)
        seconds[("a", 0)] = 120.0
        write_progress(path, 2, seconds, "a seed 0")
        shown(2)
        time.sleep(0.1)  # more polls of an unchanged file print nothing more
    assert lines == ["[02_train] 2 networks to train or reuse; progress follows as they finish",
                     "[02_train] 1 of 2 networks (a seed 0: 2 min); about 2 min left at this pace"]
