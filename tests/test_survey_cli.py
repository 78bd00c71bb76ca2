"""`koala survey build|serve|export|tabulate` end to end (answers here are simulated and stored through the Store)."""
import argparse
import io
import logging
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import uvicorn
from survey_fixtures import make_candidates

from koalarization.survey import cli
from koalarization.survey.build import load_truth
from koalarization.survey.store import open_store


def make_survey_dir(tmp_path):
    from survey_fixtures import make_survey

    return make_survey(tmp_path / "built", n=12)


def run(*argv):
    parser = argparse.ArgumentParser(prog="koala")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["survey", *map(str, argv)])
    return args.func(args)


def test_build_export_tabulate(tmp_path, capsys):
    candidates = make_candidates(tmp_path / "run", n=14)
    survey = tmp_path / "survey"
    assert run("build", "--candidates", candidates, "--out", survey, "--selection", "best", "--metric", "psnr",
               "--higher-is-better", "--seed", 4, "--n-fake", 9, "--n-real", 3) == 0
    assert "9 colorized (best by psnr, seed 4) + 3 real + 0 catch photos" in capsys.readouterr().out
    truth = load_truth(survey)
    assert sorted(truth[truth["kind"] == "colorized"]["photo_id"]) == [f"p{i:02d}" for i in range(9)]

    store = open_store(survey)  # two simulated participants (test data only): one calls everything real
    everything_real, half_done = store.create_participant(), store.create_participant(comment="simulated")
    for participant_id, count in ((everything_real, 12), (half_done, 5)):
        for _ in range(count):
            _, image_id, _ = store.progress(participant_id)
            store.serve_image(participant_id, image_id)  # what the participant's browser does
            store.record_answer(participant_id, image_id, "real", 0)
    out = tmp_path / "responses.csv"
    people = tmp_path / "participants.csv"
    assert run("export", "--survey", survey, "--out", out, "--participants", people) == 0
    assert "17 answers from 2 participants" in capsys.readouterr().out
    frame = pd.read_csv(out, dtype={"photo_id": str})
    assert frame.columns[:7].tolist() == ["participant_id", "image_id", "photo_id", "kind", "answer", "response_ms",
                                          "answered_at"]
    assert len(frame) == 17 and frame.drop_duplicates(["participant_id", "image_id"]).shape[0] == 17
    joined = frame.merge(truth, on="image_id", suffixes=("", "_truth"))
    assert (joined["kind"] == joined["kind_truth"]).all() and (joined["photo_id"] == joined["photo_id_truth"]).all()
    assert pd.read_csv(people)["comment"].fillna("").tolist() == ["", "simulated"]

    tables_dir = tmp_path / "tables"
    assert run("tabulate", "--responses", out, "--out", tables_dir) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("17 answers from 2 participants")
    overall = pd.read_csv(tables_dir / "user_study_overall.csv").set_index("photos")
    answered = frame.groupby("kind").size()
    assert overall.loc["colorized", "answers"] == answered["colorized"]
    assert overall.loc["colorized", "judged_real_pct"] == 100.0  # everyone said "real" to everything
    assert (tables_dir / "user_study.png").exists()


def test_tabulate_without_responses(tmp_path, capsys):
    assert run("tabulate", "--out", tmp_path) == 0
    assert capsys.readouterr().out.startswith("No responses yet")
    assert (tmp_path / "user_study.pdf").exists()


def test_build_refuses_too_few_photos(tmp_path):
    candidates = make_candidates(tmp_path / "run", n=5)
    with pytest.raises(ValueError, match="too few candidates"):
        run("build", "--candidates", candidates, "--out", tmp_path / "survey")


def test_serve_prints_links_and_keeps_one_token(tmp_path, capsys, monkeypatch):
    candidates = make_candidates(tmp_path / "run", n=12)
    survey = tmp_path / "survey"
    run("build", "--candidates", candidates, "--out", survey, "--exposure-ms", 2000)
    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: served.append(self.config))
    run("serve", "--survey", survey, "--port", 8123)
    printed = capsys.readouterr().out
    token_file = survey / "private" / "organiser_token"
    token = token_file.read_text().strip()
    assert len(token) >= 24 and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "participant link: http://127.0.0.1:8123/" in printed and f"organiser token:  {token}" in printed
    assert printed.count(token) == 1 and "token=" not in printed  # the token is printed alone, never in a URL
    assert "http://127.0.0.1:8123/admin " in printed and "X-Organiser-Token" in printed
    config = served[0]
    assert config.port == 8123 and config.host == "127.0.0.1" and config.access_log is False
    assert config.log_config is None  # the library leaves the process's logging alone
    assert config.timeout_keep_alive == 5.0 and config.h11_max_incomplete_event_size == 8192
    assert config.limit_concurrency >= 8 and config.http.request_timeout == 10.0
    run("serve", "--survey", survey, "--public-url", "https://survey.example.org/", "--request-timeout", "3",
        "--limit-concurrency", "40", "--per-client-burst", "60")
    again = capsys.readouterr().out
    assert f"organiser token:  {token}" in again and "participant link: https://survey.example.org/" in again
    assert served[1].http.request_timeout == 3.0 and served[1].limit_concurrency == 40
    app = served[1].app
    assert app.state.context.public_origins == {"https://survey.example.org"}
    assert app.state.context.limiter.limits.per_client.burst == 60
    assert cli.organiser_token(survey, "given") == "given"


class RecordingHandler(logging.StreamHandler):
    closed_by_someone = False

    def close(self):
        RecordingHandler.closed_by_someone = True
        super().close()


def test_server_config_does_not_reconfigure_logging(tmp_path):
    """uvicorn's default log_config runs logging.config.dictConfig, which closes every handler in the process.
    Under pytest, a handler that another library (TensorFlow's absl) attached to a captured stream then writes
    to a closed file and the whole pytest process dies ("lost sys.stderr")."""
    from koalarization.survey.app import create_app
    from koalarization.survey.server import uvicorn_config

    survey = make_survey_dir(tmp_path)
    handler = RecordingHandler(io.StringIO())
    other = logging.getLogger("some.other.library")
    other.addHandler(handler)
    try:
        uvicorn_config(create_app(survey, db_path=tmp_path / "a.sqlite"), "127.0.0.1", 8124)
        assert not RecordingHandler.closed_by_someone and handler in other.handlers
        assert logging.getLogger("uvicorn.access").propagate is False  # still no access log (IP addresses)
    finally:
        other.removeHandler(handler)


def test_survey_serve_without_the_extra_fails_with_one_line(tmp_path, capsys, monkeypatch):
    from koalarization.cli import main

    survey = make_survey_dir(tmp_path)
    for module in ("fastapi", "uvicorn", "python_multipart"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    assert main(["survey", "serve", "--survey", str(survey)]) == 2
    assert main(["survey", "screenshot", "--survey", str(survey), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("pip install koalarization[survey]" in line for line in err), err
    assert err[0].startswith("koala survey: error: the survey web app needs fastapi, uvicorn, python-multipart")
    assert main(["survey", "tabulate", "--out", str(tmp_path / "tables")]) == 0  # no web server needed


def test_survey_cli_module_does_not_import_the_web_app():
    code = ("import sys; import koalarization.survey.cli, koalarization.survey.build, koalarization.survey.tabulate;"
            " print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'multipart') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_serve_after_tensorflow_logged_under_pytest_capture_does_not_crash_pytest(tmp_path):
    """The full suite used to die ("ValueError: I/O operation on closed file ... lost sys.stderr") when the serve
    test ran after a test that imported TensorFlow: uvicorn's logging dictConfig closed TensorFlow's handler."""
    pytest.importorskip("tensorflow")
    probe = tmp_path / "test_tensorflow_first.py"
    probe.write_text("def test_tensorflow_logs():\n    import tensorflow as tf\n\n"
                     "    tf.get_logger().warning('TensorFlow imported under capture')\n")
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe),
         f"{Path(__file__).resolve()}::test_serve_prints_links_and_keeps_one_token"],
        cwd=repo, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "2 passed" in output and "lost sys.stderr" not in output, output[-3000:]


def test_nonsense_limits_fail_with_one_line(tmp_path, capsys):
    from koalarization.cli import main

    survey = make_survey_dir(tmp_path)
    for flags in (["--request-timeout", "0"], ["--per-client-burst", "0"], ["--limit-concurrency", "1"]):
        assert main(["survey", "serve", "--survey", str(survey), *flags]) == 2, flags
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("koala survey: error: "), err
