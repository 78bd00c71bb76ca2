"""A PNG of the survey's question page, as a participant sees it (for results/ and for checking a survey on a phone
and a computer before sending the link).

The app runs with a throw-away answers database, so taking a screenshot never adds a participant to the real one.
"""
from __future__ import annotations

import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from ..browser import debian_chromium
from .app import create_app
from .server import running_in_thread

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

log = logging.getLogger(__name__)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
PHONE = (390, 844)
DESKTOP = (1280, 800)


def launch_chromium(playwright: Playwright, executable_path: str | None = None) -> Browser:
    """Headless Chromium: Debian's build where installed (it works offline), else Playwright's own for this user
    (`python -m playwright install chromium`, no root); koalarization.browser finds them."""
    return playwright.chromium.launch(executable_path=executable_path or debian_chromium(), args=CHROMIUM_ARGS,
                                      headless=True)


def screenshot_survey(survey_dir: str | Path, out_png: str | os.PathLike, viewport: tuple[int, int] = PHONE,
                      page: str = "question", executable_path: str | None = None, browser: Browser | None = None,
                      device_scale_factor: float = 2) -> Path:
    """Start the app on a free local port, open the consent page, start, and save the first question page
    (page="question") or the consent page (page="landing") as a PNG of the whole page.

    `viewport`: (width, height) in CSS pixels; PHONE (390x844) by default, DESKTOP is 1280x800. The PNG is
    `device_scale_factor` times larger. `browser`: an already launched Playwright browser to use instead of
    launching Chromium here.
    """
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in viewport)
    with tempfile.TemporaryDirectory(prefix="koala-survey-shot-") as scratch:
        app = create_app(survey_dir, db_path=Path(scratch) / "screenshot.sqlite")
        with running_in_thread(app) as base_url:
            shoot = (base_url, out_png, width, height, page, device_scale_factor)
            if browser is not None:
                _shoot(browser, *shoot)
            else:
                # Playwright's sync API refuses to run in a thread with an asyncio loop (a Jupyter kernel has
                # one), so the browser is driven from a worker thread of its own.
                with ThreadPoolExecutor(max_workers=1) as worker:
                    worker.submit(_launch_and_shoot, executable_path, *shoot).result()
    log.info("survey %s page at %dx%d -> %s", page, width, height, out_png)
    return out_png


def _launch_and_shoot(executable_path, *shoot):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = launch_chromium(playwright, executable_path)
        try:
            _shoot(launched, *shoot)
        finally:
            launched.close()


def _shoot(browser, base_url, out_png, width, height, page, device_scale_factor):
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=device_scale_factor)
    try:
        view = context.new_page()
        view.goto(base_url + "/")
        if page == "question":
            view.check("input[name=consent]")
            view.click("#start")
            view.wait_for_selector("#answer-form[data-ready]")
        view.screenshot(path=str(out_png), full_page=True)
    finally:
        context.close()
