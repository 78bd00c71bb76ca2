"""Set-up that waits its turn: the Debian install waits for another package manager's dpkg lock, saying so."""
import os
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
