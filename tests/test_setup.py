"""Set-up that waits its turn: the Debian install waits for another package manager's dpkg lock, saying so."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "apt-install.sh"
LOCK = Path("/var/lib/dpkg/lock-frontend")


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not LOCK.exists(), reason="needs root and dpkg (CI machines have both)")
def test_apt_install_waits_for_a_held_dpkg_lock():
    hold = 4
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"f = open('{LOCK}', 'a'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep({hold})")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    result = subprocess.run(["bash", str(SCRIPT), "koala-no-such-package"], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "KOALA_APT_LOCK_TIMEOUT": "120"})
    elapsed = time.monotonic() - started
    holder.wait()
    output = result.stdout + result.stderr
    assert "waiting up to 120s for the dpkg lock: another package manager is running" in output
    assert elapsed >= hold - 0.5  # it waited instead of giving up at once
    assert result.returncode == 1 and "dpkg lock was still held" not in output  # it failed later, on the name


def test_make_lab_passes_allow_root_as_root():
    makefile = (ROOT / "Makefile").read_text()
    lab = makefile[makefile.index("\nlab:"):].split("\n\n")[0]
    assert "--allow-root" in lab and "id -u" in lab
    result = subprocess.run(["make", "-n", "lab", "STAMP=/dev/null"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0
    assert ("--allow-root" in result.stdout) == (os.geteuid() == 0) or "id -u" in result.stdout


def make_dry_run(*args):
    result = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


def test_backend_choice_picks_the_environment_and_the_extras():
    code, auto = make_dry_run("venv", "STAMP=/nonexistent/.installed")
    assert code == 0 and '-e ".[cpu,jax,dev,lab,survey]"' in auto and ".venv/bin/python" in auto
    code, jax = make_dry_run("venv", "BACKEND=jax", "STAMP=/nonexistent/.installed")
    assert code == 0 and '-e ".[jax,dev,lab,survey]"' in jax and ".venv-jax/bin/python" in jax
    assert "cpu" not in jax.split('-e ".[')[1].split("]")[0]  # no TensorFlow on the JAX route
    code, bad = make_dry_run("venv", "BACKEND=torch")
    assert code != 0 and "BACKEND must be auto or jax" in bad


def test_the_study_needs_no_apt_and_only_a_root_test_run_installs_packages():
    for target in ("study", "test-jax", "bench", "lab"):
        code, plan = make_dry_run(target, "STAMP=/dev/null")
        assert code == 0, plan
        assert "apt-install.sh" not in plan and "apt-get" not in plan, target
    code, plan = make_dry_run("test", "STAMP=/dev/null")
    assert "apt-install.sh --optional" in plan  # root only; a note and exit 0 for anyone else


def test_optional_debian_packages_are_a_note_for_an_unprivileged_user(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "id").write_text("#!/bin/sh\necho 1000\n")  # as a normal user would see it
    (fake / "id").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    optional = subprocess.run(["bash", str(SCRIPT), "--optional", "koala-no-such-package"], capture_output=True,
                              text=True, env=env, timeout=60)
    assert optional.returncode == 0
    assert "not installing koala-no-such-package (needs apt-get as root)" in optional.stdout
    if shutil.which("sudo") is None:  # without --optional and with no sudo to try: the one-line instruction
        required = subprocess.run(["bash", str(SCRIPT), "koala-no-such-package"], capture_output=True, text=True,
                                  env=env, timeout=60)
        assert required.returncode == 1 and "apt-get install koala-no-such-package" in required.stderr


def test_keras_backend_is_jax_where_tensorflow_is_missing(monkeypatch, tmp_path):
    from koalarization import _backend

    # choose_default_backend writes os.environ itself, which monkeypatch cannot undo (its delenv of an absent
    # variable records nothing): the whole environment is restored instead, or KERAS_BACKEND=jax leaks into every
    # later test of this process, the ci study's notebooks included.
    monkeypatch.setattr(os, "environ", os.environ.copy())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    installed = {"jax"}
    monkeypatch.setattr(_backend.importlib.util, "find_spec", lambda name: object() if name in installed else None)
    assert _backend.choose_default_backend() == "jax" and os.environ["KERAS_BACKEND"] == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # the user's choice wins
    assert _backend.choose_default_backend() is None and os.environ["KERAS_BACKEND"] == "torch"
    monkeypatch.delenv("KERAS_BACKEND")
    (tmp_path / "keras.json").write_text('{"backend": "tensorflow"}')  # what Keras writes itself: no choice
    assert _backend.choose_default_backend() == "jax"
    monkeypatch.delenv("KERAS_BACKEND")
    (tmp_path / "keras.json").write_text('{"backend": "torch"}')
    assert _backend.choose_default_backend() is None
    (tmp_path / "keras.json").unlink()
    installed.add("tensorflow")  # TensorFlow installed: Keras's own default stands
    assert _backend.choose_default_backend() is None and "KERAS_BACKEND" not in os.environ


def test_browser_is_debian_s_else_playwright_s_else_one_line_naming_the_command(monkeypatch):
    from koalarization import browser

    monkeypatch.setattr(browser, "debian_chromium", lambda: None)
    monkeypatch.setattr(browser, "playwright_chromium", lambda: "/home/u/.cache/ms-playwright/chrome")
    assert browser.find_chromium() == "/home/u/.cache/ms-playwright/chrome"
    monkeypatch.setattr(browser, "playwright_chromium", lambda: None)
    assert browser.find_chromium() is None
    assert "python -m playwright install chromium" in browser.MISSING and "\n" not in browser.MISSING
