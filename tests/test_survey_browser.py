"""A real headless Chromium completes the survey by mouse and by keyboard; then the stored rows are checked."""
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image
from survey_fixtures import make_survey

from koalarization.browser import MISSING, find_chromium
from koalarization.survey.app import create_app
from koalarization.survey.screenshot import DESKTOP, PHONE, launch_chromium, screenshot_survey
from koalarization.survey.server import running_in_thread
from koalarization.survey.store import sequence_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None, reason=MISSING),
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def survey_dir(tmp_path_factory):
    return make_survey(tmp_path_factory.mktemp("browser"), n=12)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture()
def served(survey_dir, tmp_path):
    db_path = tmp_path / "answers.sqlite"
    with running_in_thread(create_app(survey_dir, db_path=db_path, organiser_token="t")) as base_url:
        yield base_url, db_path


def stored(db_path):
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT participant_id, image_id, position, answer, response_ms FROM answers"
                          " ORDER BY answer_id").fetchall()


def begin(page, base_url):
    page.goto(base_url + "/")
    page.check("input[name=consent]")
    page.click("#start")
    page.wait_for_selector("#progress")
    return page.url.rsplit("/", 1)[1]


def wait_for_photo(page, position):
    sync_api.expect(page.locator("#progress")).to_have_text(f"Photo {position + 1} of 12")
    page.wait_for_selector("#answer-form[data-ready]")  # the script is running and the photo on screen


def image_on_page(page):
    return page.get_attribute("#photo", "src").rsplit("/", 1)[1].removesuffix(".jpg")


def test_whole_survey_by_clicking(browser, served, survey_dir):
    base_url, db_path = served
    page = browser.new_page()
    participant_id = begin(page, base_url)
    pattern = ["real" if i % 3 == 0 else "fake" for i in range(12)]
    shown = []
    for position, answer in enumerate(pattern):
        wait_for_photo(page, position)
        shown.append(image_on_page(page))
        page.click(f"#answer-{answer}")
        if position == 4:  # reload mid-way: the same participant carries on at the next photo
            page.wait_for_url(f"**/p/{participant_id}")
            wait_for_photo(page, 5)
            page.reload()
    page.wait_for_selector("#thanks")
    page.close()
    images = [r[1] for r in stored(db_path)]
    assert shown == sequence_for(participant_id, images) == images
    rows = stored(db_path)
    assert [(r[0], r[2], r[3]) for r in rows] == [(participant_id, i, a) for i, a in enumerate(pattern)]
    assert all(r[4] is not None and 0 <= r[4] < 60_000 for r in rows)  # response times measured in the page


def test_whole_survey_by_keyboard(browser, served):
    base_url, db_path = served
    page = browser.new_page()
    participant_id = begin(page, base_url)
    keys = ["r", "f", "ArrowLeft", "ArrowRight", "R", "F"] * 2
    for position, key in enumerate(keys):
        wait_for_photo(page, position)
        page.keyboard.press(key)
    page.wait_for_selector("#thanks")
    page.close()
    rows = stored(db_path)
    expected = ["real" if k in ("r", "R", "ArrowLeft") else "fake" for k in keys]
    assert [(r[0], r[3]) for r in rows] == [(participant_id, a) for a in expected]
    assert [r[2] for r in rows] == list(range(12)) and all(r[4] is not None for r in rows)


def test_exposure_time_hides_the_photo(browser, tmp_path):
    survey_dir = make_survey(tmp_path / "timed", n=12, exposure_ms=300)
    with running_in_thread(create_app(survey_dir, db_path=tmp_path / "a.sqlite")) as base_url:
        page = browser.new_page(viewport={"width": 390, "height": 760})
        begin(page, base_url)
        wait_for_photo(page, 0)
        page.wait_for_selector("#hidden-note:not([hidden])", timeout=5000)
        assert "hidden-photo" in page.get_attribute("#photo", "class")
        page.click("#answer-fake")
        wait_for_photo(page, 1)
        page.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone-390x844", "desktop-1280x800"])
def test_layout_fits_phone_and_desktop(browser, served, survey_dir, viewport):
    """The whole photo, at its own size where the screen allows, and both buttons, without scrolling sideways
    or down; the photo decodes in Chromium at the size the builder made."""
    base_url, db_path = served
    width, height = viewport
    page = browser.new_page(viewport={"width": width, "height": height})
    begin(page, base_url)
    expected = json.loads((survey_dir / "public/survey.json").read_text())["image_size"]
    for position in range(2):
        wait_for_photo(page, position)
        natural = page.evaluate("[document.getElementById('photo').naturalWidth,"
                                " document.getElementById('photo').naturalHeight]")
        assert natural == expected  # decoded (padding and all) at the survey's size
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
        photo = page.locator("#photo").bounding_box()
        assert photo["x"] >= 0 and photo["x"] + photo["width"] <= width and photo["y"] >= 0
        assert photo["y"] + photo["height"] <= height
        assert photo["width"] / photo["height"] == pytest.approx(expected[0] / expected[1], rel=0.02)  # not stretched
        if width >= 1000:
            assert (photo["width"], photo["height"]) == tuple(expected)  # shown at its own size on a computer
        for selector in ("#answer-real", "#answer-fake"):
            box = page.locator(selector).bounding_box()
            assert box["height"] >= 48 and box["width"] >= 120
            assert box["x"] >= 0 and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height
        page.click("#answer-real" if position else "#answer-fake")
    wait_for_photo(page, 2)
    page.close()
    assert [r[3] for r in stored(db_path)] == ["fake", "real"]


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_screenshot_of_the_question_page(browser, survey_dir, tmp_path, viewport):
    out = screenshot_survey(survey_dir, tmp_path / "demo" / "survey.png", viewport=viewport, browser=browser)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] == 2 * viewport[0] and image.size[1] >= 2 * viewport[1]
        colours = image.convert("RGB").resize((40, 74)).getcolors(40 * 74)
    assert len(colours) > 20  # a rendered page with a photo, not a blank frame
    assert not (survey_dir / "private/responses.sqlite").exists()  # the screenshot did not touch the real database
    keep = os.environ.get("KOALA_KEEP_SCREENSHOTS")
    if keep:  # to look at them: KOALA_KEEP_SCREENSHOTS=/tmp pytest tests/test_survey_browser.py
        shutil.copy(out, Path(keep) / f"survey_{viewport[0]}x{viewport[1]}.png")


def test_reloading_after_the_exposure_time_brings_no_photo_back(browser, tmp_path):
    """The server, not the page, ends the exposure: a reload after it shows the question without the photo, and the
    answer is still taken."""
    survey_dir = make_survey(tmp_path / "timed", n=12, exposure_ms=300)
    with running_in_thread(create_app(survey_dir, db_path=tmp_path / "a.sqlite")) as base_url:
        page = browser.new_page(viewport={"width": 390, "height": 760})
        begin(page, base_url)
        wait_for_photo(page, 0)
        page.wait_for_timeout(700)
        page.reload()
        page.wait_for_selector("#answer-form[data-ready]")
        assert page.query_selector("#photo") is None and "shown for its time" in page.inner_text("#hidden-note")
        page.click("#answer-real")
        wait_for_photo(page, 1)
        page.close()
    with sqlite3.connect(tmp_path / "a.sqlite") as db:
        (server_ms,) = db.execute("SELECT server_ms FROM answers").fetchone()
    assert server_ms >= 700  # the server's own clock saw the whole time


def test_a_prolific_participants_path_on_a_phone(tmp_path):
    """Consent from the Prolific link, a question, the completion code: photographed on a 390 x 844 screen."""
    from survey_fixtures import make_condition_candidates

    from koalarization.survey.build import build_survey
    from koalarization.survey.walkthrough import screenshot_crowd_path

    survey = tmp_path / "survey"
    build_survey(make_condition_candidates(tmp_path / "run", n=16), survey, conditions=["paper", "ablation"],
                 n_catch=2)
    png = screenshot_crowd_path(survey, tmp_path / "path.png")
    with Image.open(png) as image:
        assert image.width > 3 * 390 and image.height > 844
        pixels = image.convert("RGB").getpixel((image.width - 24 - 390 // 2, 44 + 300))
    assert pixels != (244, 244, 242)  # the thank-you screen was drawn
