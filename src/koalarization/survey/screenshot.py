"""A PNG of the survey's question page, as a participant sees it (for results/demo and the README).

The app runs with a throw-away answers database, so taking a screenshot never adds a participant to the real one.
"""
import tempfile
from pathlib import Path

from .app import create_app
from .server import running_in_thread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


def launch_chromium(playwright, executable_path=CHROMIUM):
    """Headless Chromium: Debian's build by default (Playwright's own download is not available offline)."""
    return playwright.chromium.launch(executable_path=executable_path, args=CHROMIUM_ARGS, headless=True)


def screenshot_survey(survey_dir, out_png, width=400, height=740, page="question", executable_path=CHROMIUM):
    """Start the app on a free local port, open the consent page, start, and save the first question page
    (page="question") or the consent page (page="landing") as a PNG. The default size is a phone's."""
    from playwright.sync_api import sync_playwright

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="koala-survey-shot-") as scratch:
        app = create_app(survey_dir, db_path=Path(scratch) / "screenshot.sqlite")
        with running_in_thread(app) as base_url, sync_playwright() as playwright:
            browser = launch_chromium(playwright, executable_path)
            try:
                view = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=2)
                view.goto(base_url + "/")
                if page == "question":
                    view.check("input[name=consent]")
                    view.click("#start")
                    view.wait_for_selector("#answer-real:not([disabled])")
                view.screenshot(path=str(out_png), full_page=True)
            finally:
                browser.close()
    return out_png
