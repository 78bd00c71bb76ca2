"""Which headless Chromium the survey's screenshots and browser tests use, found without root.

Debian's `chromium` where it is installed (it works offline), otherwise the Chromium that `python -m playwright
install chromium` downloads into the user's own cache (no root; needs the internet once). Where neither is there,
`MISSING` is the one line that says what to run.
"""
from __future__ import annotations

import os
import shutil

DEBIAN_CHROMIUM = "/usr/bin/chromium"
MISSING = ("no Chromium for the browser tests: run `.venv/bin/python -m playwright install chromium` (or, on Debian "
           "as root, `apt-get install chromium`)")


def debian_chromium() -> str | None:
    """The system's Chromium (Debian's package, or another `chromium` on PATH), None where there is none."""
    if os.path.exists(DEBIAN_CHROMIUM):
        return DEBIAN_CHROMIUM
    return shutil.which("chromium")


def playwright_chromium() -> str | None:
    """The Chromium Playwright installed for this user, None where it has none (or Playwright is not installed)."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as playwright:
            path = playwright.chromium.executable_path
    except Error:
        return None
    return path if os.path.exists(path) else None


def find_chromium() -> str | None:
    """The Chromium to launch: Debian's, else Playwright's own; None where neither is installed."""
    return debian_chromium() or playwright_chromium()
