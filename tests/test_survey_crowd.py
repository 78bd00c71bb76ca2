"""The user study as a crowd study (issue 21): a scripted crowd arriving from Prolific completes a two-condition survey
with catch images through the real server; the analysis recovers what the simulation put in.

Every answer here is simulated (test data only), from a known model: P(real) = expit(b0 + condition + u + v) with a
participant effect u and a photo effect v; attentive participants call catch images real 2% of the time,
inattentive ones answer at random. Nothing simulated is written outside pytest's temporary folders.
"""
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from survey_fixtures import browser_client, make_condition_candidates

from koalarization.survey.analysis import fit_for, generalization_table
from koalarization.survey.app import create_app
from koalarization.survey.build import build_survey, load_truth
from koalarization.survey.crowd import CrowdSettings
from koalarization.survey.export import export_responses
from koalarization.survey.inference import answer_matrices, percentile_interval, two_way_draws
from koalarization.survey.security import ParticipationLimits, RateLimit
from koalarization.survey.server import running_in_thread
from koalarization.survey.tabulate import tabulate_responses

CROWD = 64
INATTENTIVE = set(range(0, CROWD, 8))  # 8 of 64 click through
B0, EFFECT, SD_PARTICIPANT, SD_PHOTO = logit(0.45), {"paper": 0.0, "ablation": -0.7}, 0.5, 0.8
CODE = "C1A2B3C4"


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crowd")
    candidates = make_condition_candidates(folder / "run", n=16)
    out = folder / "survey"
    build_survey(candidates, out, conditions=["paper", "ablation"], n_fake=9, n_real=3, n_catch=2,
                 catch_max_real=0, target_participants=CROWD)
    return out


def simulated_world(seed, truth):
    """The simulation's hidden truth: effects per participant and photo, and a fixed uniform draw per participant,
    photo and condition, so that an answer does not depend on the order people arrive or answer in."""
    rng = np.random.default_rng(seed)
    photos = sorted(truth["photo_id"].unique())
    return {"u": rng.normal(0, SD_PARTICIPANT, CROWD), "v": dict(zip(photos, rng.normal(0, SD_PHOTO, len(photos)))),
            "draw": {(i, p, c): rng.random() for i in range(CROWD) for p in photos for c in ("", "paper", "ablation")}}


def simulated_answer(world, index, row):
    """A simulated participant's answer to one image (test data only)."""
    draw = world["draw"][(index, row["photo_id"], row["condition"])]
    if index in INATTENTIVE:
        return "real" if draw < 0.5 else "fake"
    if row["kind"] == "catch":
        chance = 0.02
    elif row["kind"] == "real":
        chance = expit(logit(0.7) + world["u"][index])
    else:
        chance = expit(B0 + EFFECT[row["condition"]] + world["u"][index] + world["v"][row["photo_id"]])
    return "real" if draw < chance else "fake"


def prolific_id(index):
    return f"{index:024x}"


def arrive(base_url, index):
    """A participant opens the study link from Prolific and gives consent; returns their browser (an httpx client
    with its cookies) and their survey page."""
    client = browser_client(base_url, timeout=30, follow_redirects=True)
    landing = client.get(f"/?PROLIFIC_PID={prolific_id(index)}&STUDY_ID=study01&SESSION_ID=s{index:04d}")
    assert landing.status_code == 200 and str(landing.url).endswith("/") and prolific_id(index) not in landing.text
    page = client.post("/start", data={"consent": "yes"})
    assert page.status_code == 200 and "/p/" in str(page.url)
    return client, page


def answer_all(client, page, index, world, truth, acknowledged, lock, stop_after=None):
    """Answer every question as a browser would: load the photo, then post the answer."""
    answered = 0
    while "/done" not in str(page.url):
        assert prolific_id(index) not in page.text  # never shown on a page
        image_id = re.search(r'name="image_id" value="([0-9a-f]{16})"', page.text).group(1)
        src = re.search(r'<img id="photo" src="([^"]+)"', page.text).group(1)
        assert client.get(src).status_code == 200
        answer = simulated_answer(world, index, truth.loc[image_id])
        action = re.search(r'<form method="post" action="([^"]+)" id="answer-form"', page.text).group(1)
        page = client.post(action, data={"image_id": image_id, "answer": answer, "response_ms": "800"})
        assert page.status_code == 200
        with lock:
            acknowledged.add((prolific_id(index), image_id, answer))
        answered += 1
        if stop_after is not None and answered == stop_after:
            return page
    assert "Your completion code: <strong" in page.text and CODE in page.text
    assert 'href="https://app.prolific.com/submissions/complete?cc=C1A2B3C4"' in page.text
    assert prolific_id(index) not in page.text
    return page


@pytest.fixture(scope="module")
def crowd_run(survey, tmp_path_factory):
    """64 participants from Prolific through the real server; participant 1 leaves after 4 photos and comes back
    through the study link in another browser."""
    truth = load_truth(survey).set_index("image_id")
    world = simulated_world(7, truth)
    db = tmp_path_factory.mktemp("crowd-db") / "answers.sqlite"
    crowd = CrowdSettings(completion_code=CODE, completion_url=f"https://app.prolific.com/submissions/complete?cc={CODE}",
                          require_id=True)
    app = create_app(survey, db_path=db, crowd=crowd, limits=ParticipationLimits(
        per_client=RateLimit(200, 1.0), overall=RateLimit(200, 1.0), max_participants=None))
    acknowledged, lock = set(), threading.Lock()
    with running_in_thread(app) as base_url:
        arrivals = [arrive(base_url, i) for i in range(CROWD)]  # in order: groups alternate deterministically
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(answer_all, client, page, i, world, truth, acknowledged, lock,
                                   4 if i == 1 else None) for i, (client, page) in enumerate(arrivals)]
            for future in futures:
                future.result()
        again = browser_client(base_url, timeout=30, follow_redirects=True)  # another device, same id
        page = again.get(f"/?PROLIFIC_PID={prolific_id(1)}&STUDY_ID=study01&SESSION_ID=s0001")
        assert "Photo 5 of 14" in page.text
        answer_all(again, page, 1, world, truth, acknowledged, lock)
        blocked = httpx.post(f"{base_url}/start", data={"consent": "yes"})  # no Prolific id: not this study's
        assert blocked.status_code == 403
    for client, _ in arrivals:
        client.close()
    return {"db": db, "truth": truth, "world": world, "acknowledged": acknowledged, "app": app}


def test_every_answer_is_exported_with_its_prolific_id(survey, crowd_run):
    frame = export_responses(survey, crowd_run["db"])
    exported = set(zip(frame["external_id"], frame["image_id"], frame["answer"]))
    assert exported == crowd_run["acknowledged"] and len(frame) == CROWD * 14  # nothing lost, nothing twice
    assert frame["external_id"].nunique() == frame["participant_id"].nunique() == CROWD  # the returner counted once
    assert (frame["external_params"] == [f"SESSION_ID=s{int(pid, 16):04d}; STUDY_ID=study01"
                                         for pid in frame["external_id"]]).all()
    per_group = frame.groupby("group_index")["participant_id"].nunique()
    assert per_group.tolist() == [CROWD // 2, CROWD // 2]  # conditions balanced over participants
    colorized = frame[frame["kind"] == "colorized"]
    assert colorized.groupby("participant_id")["photo_id"].nunique().eq(9).all()  # no scene twice
    assert colorized.groupby(["participant_id", "condition"]).size().unstack().isin([4, 5]).all().all()
    assert frame["server_ms"].notna().all() and frame["times_served"].ge(1).all()


def test_the_excluded_are_exactly_those_the_preregistered_rule_names(survey, crowd_run, tmp_path):
    export_responses(survey, crowd_run["db"], tmp_path / "responses.csv")
    tables = tabulate_responses(tmp_path / "responses.csv", survey_dir=survey)
    truth, world = crowd_run["truth"], crowd_run["world"]
    catch = truth[truth["kind"] == "catch"]
    expected = set()
    for index in range(CROWD):
        group = index % 2
        called = sum(simulated_answer(world, index, row) == "real" for _, row in catch[catch["group"] == group]
                     .iterrows())
        if called > 0:  # the rule in the manifest: more than 0 of the 2 catch images called real
            expected.add(prolific_id(index))
    frame = pd.read_csv(tmp_path / "responses.csv", dtype=str)
    to_external = dict(zip(frame["participant_id"], frame["external_id"]))
    excluded = {to_external[p] for p in tables.excluded["participant_id"]}
    assert excluded == expected and len(expected) >= 3
    assert "more than 0 of the 2 catch image(s)" in tables.exclusion_rule
    assert tables.generalization["participants"].max() == CROWD - len(expected) or (
        tables.generalization["participants"] <= CROWD - len(expected)).all()
    assert not set(tables.per_photo["kind"]) - {"colorized", "real", "catch"}
    assert set(tables.overall["photos"]) == {"colorized", "real"}  # catch answers never enter the fooling rate


def test_the_analysis_recovers_the_simulated_truth(survey, crowd_run, tmp_path):
    export_responses(survey, crowd_run["db"], tmp_path / "responses.csv")
    tables = tabulate_responses(tmp_path / "responses.csv", survey_dir=survey)
    rows = tables.generalization.set_index("condition")
    for condition in ("paper", "ablation"):
        truth = 100 * expit(B0 + EFFECT[condition])  # a typical participant on a typical photo
        assert rows.loc[condition, "mixed_low_pct"] <= truth <= rows.loc[condition, "mixed_high_pct"], condition
    comparison = tables.conditions.set_index("condition").loc["ablation"]
    assert comparison["against"] == "paper" and comparison["photos_paired"] == 9
    difference = 100 * (marginal_truth("ablation") - marginal_truth("paper"))  # the population's pooled shares
    assert comparison["two_way_low"] < difference < comparison["two_way_high"]
    assert not tables.baseline.empty and tables.baseline["participants"].sum() > 0


def simulated_answers(seed, participants=60, photos=9, conditions=("paper", "ablation")):
    """A survey's answers drawn straight from the model (no server), in the survey's design: groups alternate, photo
    i shown by condition (i + group) mod 2; test data only."""
    rng = np.random.default_rng(seed)
    u, v = rng.normal(0, SD_PARTICIPANT, participants), rng.normal(0, SD_PHOTO, photos)
    rows = []
    for p in range(participants):
        for i in range(photos):
            condition = conditions[(i + p) % len(conditions)]
            chance = expit(B0 + EFFECT[condition] + u[p] + v[i])
            rows.append({"participant_id": f"p{p}", "photo_id": f"i{i}", "condition": condition, "kind": "colorized",
                         "judged_real": bool(rng.random() < chance)})
    return pd.DataFrame(rows)


def marginal_truth(condition):
    """The pooled share the population of participants and photos would give: E[expit(b0 + c + u + v)]."""
    x, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / w.sum()
    return sum(wa * wb * expit(B0 + EFFECT[condition] + SD_PARTICIPANT * a + SD_PHOTO * b)
               for a, wa in zip(x, w) for b, wb in zip(x, w))


def test_intervals_cover_the_simulated_truth_over_seeded_repetitions():
    """20 simulated studies of 60 participants and 9 photos: the mixed model's interval holds the typical-photo
    truth, and the two-way bootstrap's the population share, in at least 17 of 20 (a 95% interval covers 19 on
    average; 17 or more happens 98% of the time)."""
    mixed_covered, two_way_covered = {"paper": 0, "ablation": 0}, {"paper": 0, "ablation": 0}
    for seed in range(20):
        clean = simulated_answers(seed)
        fit = fit_for(clean)
        table = generalization_table(clean, fit, seed=seed).set_index("condition")
        draws = two_way_draws(answer_matrices(clean, ["paper", "ablation"]), seed=seed)
        for condition in ("paper", "ablation"):
            truth = 100 * expit(B0 + EFFECT[condition])
            mixed_covered[condition] += table.loc[condition, "mixed_low_pct"] <= truth <= table.loc[
                condition, "mixed_high_pct"]
            low, high = percentile_interval(draws[condition])
            two_way_covered[condition] += low <= marginal_truth(condition) <= high
    assert min(mixed_covered.values()) >= 17, mixed_covered
    assert min(two_way_covered.values()) >= 17, two_way_covered


def test_crowd_ids_resume_and_are_never_shown(survey, tmp_path):
    """Through the pages with a test client: the id leaves the address, resumes on any device, is on no page, and a
    browser that took part before without an id gets a new participant for the crowd id."""
    from fastapi.testclient import TestClient

    app = create_app(survey, db_path=tmp_path / "a.sqlite", crowd=CrowdSettings(completion_code=CODE))
    browser = TestClient(app)
    browser.post("/start", data={"consent": "yes"})  # an earlier participation without an id
    first = browser.get("/?PROLIFIC_PID=abcdefabcdefabcdefabcdef&STUDY_ID=s1", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    assert "koala_crowd" in first.headers["set-cookie"]
    started = browser.post("/start", data={"consent": "yes", "comment": "from Prolific"}, follow_redirects=False)
    crowd_pid = started.headers["location"].rsplit("/", 1)[1]
    rows = {r["participant_id"]: r for r in app.state.store.participants_rows()}
    assert len(rows) == 2 and rows[crowd_pid]["external_id"] == "abcdefabcdefabcdefabcdef"
    other_device = TestClient(app)
    back = other_device.get("/?PROLIFIC_PID=abcdefabcdefabcdefabcdef", follow_redirects=False)
    assert back.headers["location"] == f"/p/{crowd_pid}"
    for page in (other_device.get(f"/p/{crowd_pid}"), other_device.get("/"), browser.get(f"/p/{crowd_pid}/done")):
        assert "abcdefabcdefabcdefabcdef" not in page.text
    forged = TestClient(app)
    forged.cookies.set("koala_crowd", "eyJQUk9MSUZJQ19QSUQiOiAiZXZpbCJ9.0000")  # a cookie not signed by the survey
    forged.post("/start", data={"consent": "yes"})
    assert all(r["external_id"] in (None, "abcdefabcdefabcdefabcdef") for r in app.state.store.participants_rows())


def test_answers_on_photos_never_sent_are_set_apart(survey, tmp_path):
    """A script that answers without loading the photos is stored (nothing is lost) but marked, and the analysis
    leaves it out with the reason."""
    app = create_app(survey, db_path=tmp_path / "a.sqlite")
    store = app.state.store
    seen, blind = store.create_participant(), store.create_participant()
    for participant, load in ((seen, True), (blind, False)):
        for _ in range(3):
            _, image_id, _ = store.progress(participant)
            if load:
                store.serve_image(participant, image_id)
            store.record_answer(participant, image_id, "real")
    frame = export_responses(survey, tmp_path / "a.sqlite")
    assert frame.groupby("participant_id")["photo_sent"].agg(set).to_dict() == {seen: {"yes"}, blind: {"no"}}
    tables = tabulate_responses(frame)
    assert set(tables.rejected["participant_id"]) == {blind}
    assert (tables.rejected["reason"] == "the survey server never sent this photo to the participant").all()
