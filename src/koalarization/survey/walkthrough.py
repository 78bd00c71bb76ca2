"""A crowd participant's path through the survey, photographed in headless Chromium on a phone-sized screen: the
study link from Prolific (the consent page, its address already stripped of the Prolific id), a question, and the
thank-you page with the completion code and the link back to Prolific.

It runs the real app on a throw-away answers database with an example Prolific id and completion code; the clicks
that reach the last page are the browser's, and no answer is kept. Used by notebook 05 (`survey_prolific_path`)
and by the organiser before sending the link.
"""
from __future__ import annotations

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from .app import create_app
from .crowd import CrowdSettings
from .screenshot import PHONE, launch_chromium
from .server import running_in_thread

log = logging.getLogger(__name__)

EXAMPLE_CODE = "EXAMPLE1"
EXAMPLE_LINK = "/?PROLIFIC_PID=5f1e2d3c4b5a69788796a5b4&STUDY_ID=65a4b3c2d1e0f9a8b7c6d5e4&SESSION_ID=example01"
STEPS = ("1. Opened from Prolific: consent", "2. One photo at a time", "3. Completion code, back to Prolific")


def screenshot_crowd_path(survey_dir: str | Path, out_png: str | Path, viewport: tuple[int, int] = PHONE,
                          executable_path: str | None = None) -> Path:
    """Save the three screens side by side, captioned, as one PNG; returns its path."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    crowd = CrowdSettings(completion_code=EXAMPLE_CODE, require_id=True,
                          completion_url=f"https://app.prolific.com/submissions/complete?cc={EXAMPLE_CODE}")
    with tempfile.TemporaryDirectory(prefix="koala-crowd-shot-") as scratch:
        app = create_app(survey_dir, db_path=Path(scratch) / "walkthrough.sqlite", crowd=crowd, persist_limits=False)
        with running_in_thread(app) as base_url, ThreadPoolExecutor(max_workers=1) as worker:
            # Playwright's sync API refuses a thread with an asyncio loop (a Jupyter kernel has one)
            shots = worker.submit(_walk, base_url, Path(scratch), viewport, executable_path).result()
        _compose(shots, out_png)
    log.info("a Prolific participant's path at %dx%d -> %s", *viewport, out_png)
    return out_png


def _walk(base_url: str, scratch: Path, viewport: tuple[int, int], executable_path: str | None) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots = [scratch / f"step{i}.png" for i in range(3)]
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, executable_path)
        try:
            page = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}).new_page()
            page.goto(base_url + EXAMPLE_LINK)
            page.wait_for_selector("input[name=consent]")
            page.screenshot(path=str(shots[0]))
            page.check("input[name=consent]")
            page.click("#start")
            page.wait_for_selector("#answer-form[data-ready]")
            page.screenshot(path=str(shots[1]))
            _answer_all(page)
            page.screenshot(path=str(shots[2]))
        finally:
            browser.close()
    return shots


def _answer_all(page: Any) -> None:
    """Click through every photo (the throw-away database keeps nothing) to reach the thank-you page."""
    while not page.query_selector("#thanks"):
        page.wait_for_selector("#answer-form[data-ready], #thanks")
        if page.query_selector("#thanks"):
            break
        progress = page.inner_text("#progress")
        page.click("#answer-fake")
        page.wait_for_function("(before) => !document.querySelector('#progress') || "
                               "document.querySelector('#progress').innerText !== before", arg=progress)
    page.wait_for_selector("#completion-code")


def _compose(shots: list[Path], out_png: Path, gap: int = 24, caption: int = 44) -> None:
    images = [Image.open(path).convert("RGB") for path in shots]
    width = sum(image.width for image in images) + gap * (len(images) + 1)
    height = max(image.height for image in images) + caption + gap
    canvas = Image.new("RGB", (width, height), (244, 244, 242))
    draw = ImageDraw.Draw(canvas)
    x = gap
    for image, text in zip(images, STEPS):
        draw.text((x, 14), text, fill=(27, 27, 27), font_size=20)
        canvas.paste(image, (x, caption))
        draw.rectangle([x - 1, caption - 1, x + image.width, caption + image.height], outline=(160, 160, 160))
        x += image.width + gap
    canvas.save(out_png)
