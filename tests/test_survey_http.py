"""Every endpoint of the survey app through FastAPI's TestClient, good input and bad."""
import json
import re
import sqlite3
import warnings

import pytest
from survey_fixtures import make_survey

from koalarization.survey.app import COOKIE, create_app
from koalarization.survey.build import load_truth
from koalarization.survey.store import sequence_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx versions, raised at import
    from fastapi.testclient import TestClient

TOKEN = "organiser-secret-token"
MARKUP = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture(scope="module")
def survey_dir(tmp_path_factory):
    return make_survey(tmp_path_factory.mktemp("http"), n=15)


@pytest.fixture()
def app(survey_dir, tmp_path):
    return create_app(survey_dir, db_path=tmp_path / "answers.sqlite", organiser_token=TOKEN)


@pytest.fixture()
def client(app):
    with TestClient(app) as test_client:
        yield test_client


def start(client, **fields):
    client.cookies.clear()  # a new participant: the cookie would resume the previous one
    response = client.post("/start", data={"consent": "yes", **fields}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def current_image(client, participant_id):
    return client.get(f"/api/participants/{participant_id}").json()["image_id"]


def rows(db_path, sql="SELECT participant_id, image_id, position, answer, response_ms, answered_at FROM answers"):
    with sqlite3.connect(db_path) as db:
        return db.execute(sql).fetchall()


def survey_images(survey_dir):
    return json.loads((survey_dir / "public/survey.json").read_text())["images"]


# participant flow ------------------------------------------------------------------------------------------------

def test_landing_page_has_consent_viewport_and_no_resume_without_cookie(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "Taking part is voluntary" in html and 'name="consent"' in html and "12 photos" in html
    assert 'id="resume"' not in html
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_start_needs_consent(client, app):
    refused = client.post("/start", data={"comment": "hello"}, follow_redirects=False)
    assert refused.status_code == 422 and "tick the consent box" in refused.text
    refused_json = client.post("/api/participants", json={"consent": False})
    assert refused_json.status_code == 422 and refused_json.json()["detail"][0]["field"] == "consent"
    assert app.state.store.summary()["participants"] == 0


def test_whole_survey_by_form_then_thank_you(client, app, tmp_path, survey_dir):
    participant_id = start(client)
    assert client.cookies.get(COOKIE) == participant_id
    assert client.get(f"/p/{participant_id}/done", follow_redirects=False).status_code == 303  # not finished yet
    sequence = sequence_for(participant_id, survey_images(survey_dir))
    for position, image_id in enumerate(sequence):
        page = client.get(f"/p/{participant_id}")
        assert page.status_code == 200
        assert f"Photo {position + 1} of 12" in page.text
        assert f'src="/p/{participant_id}/img/{image_id}.jpg"' in page.text
        answer = "real" if position % 3 else "fake"
        sent = client.post(f"/p/{participant_id}/answer", follow_redirects=False,
                           data={"image_id": image_id, "answer": answer, "response_ms": str(100 + position)})
        assert sent.status_code == 303 and sent.headers["location"] == f"/p/{participant_id}"
    finished = client.get(f"/p/{participant_id}", follow_redirects=False)
    assert finished.status_code == 303 and finished.headers["location"].endswith("/done")
    thanks = client.get(f"/p/{participant_id}/done")
    assert thanks.status_code == 200 and "Thank you" in thanks.text
    stored = rows(tmp_path / "answers.sqlite")
    assert [(r[1], r[2], r[3], r[4]) for r in stored] == [
        (image_id, position, "real" if position % 3 else "fake", 100 + position)
        for position, image_id in enumerate(sequence)]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r[5]) for r in stored)
    assert rows(tmp_path / "answers.sqlite", "SELECT finished_at IS NOT NULL FROM participants") == [(1,)]
    assert rows(tmp_path / "answers.sqlite", "PRAGMA journal_mode") == [("wal",)]


def test_reload_resumes_from_the_link_alone_and_landing_offers_resume(client, app, survey_dir):
    participant_id = start(client)
    sequence = sequence_for(participant_id, survey_images(survey_dir))
    for image_id in sequence[:5]:
        client.post("/api/answers", json={"participant_id": participant_id, "image_id": image_id, "answer": "real"})
    with TestClient(app) as other_device:  # no cookie: the link in the address bar is enough
        page = other_device.get(f"/p/{participant_id}")
        assert "Photo 6 of 12" in page.text and f"/img/{sequence[5]}.jpg" in page.text
    landing = client.get("/")
    assert f'href="/p/{participant_id}"' in landing.text and 'id="resume"' in landing.text
    again = client.post("/start", data={"consent": "yes"}, follow_redirects=False)  # same browser starts again
    assert again.headers["location"] == f"/p/{participant_id}" and app.state.store.summary()["participants"] == 1


def test_order_is_random_per_participant_and_seeded_by_its_id(client, survey_dir):
    images = survey_images(survey_dir)
    orders = []
    for _ in range(4):
        participant_id = start(client)
        state = client.get(f"/api/participants/{participant_id}").json()
        assert state["position"] == 0 and state["total"] == 12 and not state["finished"]
        order = sequence_for(participant_id, images)
        assert state["image_id"] == order[0] and sorted(order) == sorted(images)
        assert order == sequence_for(participant_id, list(reversed(images)))  # depends on the id, not input order
        orders.append(tuple(order))
    assert len(set(orders)) == 4


def test_repeated_answer_is_stored_once_and_cannot_be_changed(client, tmp_path):
    participant_id = start(client)
    image_id = current_image(client, participant_id)
    body = {"participant_id": participant_id, "image_id": image_id, "answer": "fake", "response_ms": 900}
    first = client.post("/api/answers", json=body)
    again = client.post("/api/answers", json=body)
    by_form = client.post(f"/p/{participant_id}/answer", data={"image_id": image_id, "answer": "fake"},
                          follow_redirects=False)
    assert first.status_code == 200 and first.json()["stored"] is True and first.json()["answered"] == 1
    assert again.status_code == 200 and again.json()["stored"] is False and again.json()["answered"] == 1
    assert by_form.status_code == 303
    changed = client.post("/api/answers", json={**body, "answer": "real"})
    assert changed.status_code == 409 and "already answered" in changed.json()["error"]
    changed_form = client.post(f"/p/{participant_id}/answer", data={"image_id": image_id, "answer": "real"})
    assert changed_form.status_code == 409 and "already answered" in changed_form.text
    assert rows(tmp_path / "answers.sqlite", "SELECT image_id, answer, response_ms FROM answers") == [
        (image_id, "fake", 900)]


def test_answer_for_a_later_photo_or_one_not_in_the_sequence_is_refused(client, survey_dir, tmp_path):
    participant_id = start(client)
    later = sequence_for(participant_id, survey_images(survey_dir))[3]
    ahead = client.post("/api/answers", json={"participant_id": participant_id, "image_id": later, "answer": "real"})
    assert ahead.status_code == 409 and "not the photo being shown" in ahead.json()["error"]
    stranger = client.post("/api/answers", json={"participant_id": participant_id, "image_id": "0123456789abcdef",
                                                 "answer": "real"})
    assert stranger.status_code == 400 and "not in your survey" in stranger.json()["error"]
    stranger_form = client.post(f"/p/{participant_id}/answer", data={"image_id": "../../private/truth",
                                                                       "answer": "real"})
    assert stranger_form.status_code == 422 and "not part of the survey" in stranger_form.text
    assert rows(tmp_path / "answers.sqlite") == []


def test_unknown_photo_and_unknown_participant_are_404(client, survey_dir):
    participant_id = start(client)
    image_id = current_image(client, participant_id)
    mine = f"/p/{participant_id}/img"
    assert client.get(f"{mine}/{image_id}.jpg").status_code == 200
    later = next(i for i in survey_images(survey_dir) if i != image_id)  # a photo, but not this question's
    for path in (f"/img/{image_id}.jpg", f"{mine}/{later}.jpg", f"{mine}/0123456789abcdef.jpg", f"{mine}/{image_id}",
                 f"{mine}/{image_id}.png", f"{mine}/..%2Fsurvey.json", f"{mine}/..%2F..%2Fprivate%2Ftruth.csv",
                 f"/p/{'B' * 24}/img/{image_id}.jpg", "/private/truth.csv", "/public/survey.json"):
        assert client.get(path).status_code == 404, path
    nobody = "A" * 24
    assert client.get(f"/p/{nobody}").status_code == 404
    assert client.get(f"/p/{nobody}/done").status_code == 404
    assert client.get("/p/not-a-valid-id!").status_code == 404
    assert client.get(f"/api/participants/{nobody}").status_code == 404
    answer = client.post("/api/answers", json={"participant_id": nobody, "image_id": image_id, "answer": "real"})
    assert answer.status_code == 404 and answer.json() == {"error": "unknown participant"}
    assert client.post(f"/p/{nobody}/answer", data={"image_id": image_id, "answer": "real"}).status_code == 404


def test_malformed_bodies_get_clear_4xx(client):
    participant_id = start(client)
    image_id = current_image(client, participant_id)
    good = {"participant_id": participant_id, "image_id": image_id, "answer": "real"}
    broken = client.post("/api/answers", content=b'{"participant_id": "x", "answer": ',
                         headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json() == {"error": "malformed JSON body"}
    for bad, field in [({**good, "answer": "maybe"}, "answer"), ({**good, "response_ms": "fast"}, "response_ms"),
                       ({**good, "response_ms": True}, "response_ms"), ({**good, "extra": 1}, "extra"),
                       ({"answer": "real"}, "participant_id")]:
        response = client.post("/api/answers", json=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"] == "invalid request body"
        assert field in {d["field"] for d in response.json()["detail"]}
    negative = client.post("/api/answers", json={**good, "response_ms": -5})
    assert negative.status_code == 422 and negative.json()["detail"][0]["field"] == "response_ms"
    assert client.post("/api/participants", json=[1, 2]).status_code == 422
    assert client.post("/api/participants", json={"consent": True, "age_bracket": "999"}).status_code == 422
    form = f"/p/{participant_id}/answer"
    missing = client.post(form, data={"image_id": image_id})
    assert missing.status_code == 422 and "Please answer Real or Fake" in missing.text
    assert client.post(form, data={"image_id": image_id, "answer": "maybe"}).status_code == 422
    assert client.post(form, data={"image_id": image_id, "answer": "real", "response_ms": "abc"}).status_code == 422
    assert client.post(form, data={"image_id": image_id, "answer": "real", "extra": "1"}).status_code == 422
    garbage = client.post(form, content=b"--xx\r\nnot multipart at all",
                          headers={"content-type": "multipart/form-data; boundary=xx"})
    assert garbage.status_code == 400 and "malformed request body" in garbage.text
    assert client.post("/start", data={"consent": "yes", "colour_vision": "purple"}).status_code == 422
    assert current_image(client, participant_id) == image_id  # none of that was stored


def test_oversized_bodies_are_413(client, app):
    big_comment = "x" * (17 * 1024)
    assert client.post("/start", data={"consent": "yes", "comment": big_comment}).status_code == 413
    assert client.post("/api/participants", json={"consent": True, "comment": big_comment}).status_code == 413
    response = client.post("/api/answers", content=b"{" + b" " * 20000 + b"}",
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and "larger than 16384 bytes" in response.json()["error"]
    assert app.state.store.summary()["participants"] == 0
    assert client.post("/api/answers", content=b"{}", headers={"content-length": "abc"}).status_code == 400


def test_markup_in_participant_fields_is_escaped_on_every_page(client, tmp_path):
    participant_id = start(client, comment=MARKUP, age_bracket="25-34", colour_vision="colour-blind")
    refused = client.post("/start", data={"consent": "yes", "age_bracket": MARKUP})
    assert refused.status_code == 422 and MARKUP not in refused.text
    pages = [client.get("/"), client.get(f"/p/{participant_id}")]
    for _ in range(12):
        image_id = current_image(client, participant_id)
        client.post(f"/p/{participant_id}/answer", data={"image_id": image_id, "answer": "real"})
    pages.append(client.post(f"/p/{participant_id}/answer", data={"image_id": image_id, "answer": "fake"}))  # 409
    pages.append(client.post(f"/p/{participant_id}/comment", data={"comment": MARKUP + " again"}))
    pages += [client.get(f"/p/{participant_id}/done"), client.post("/admin", data={"token": TOKEN}),
              client.get("/admin/progress", headers={"X-Organiser-Token": TOKEN}),
              client.get(f"/api/participants/{participant_id}")]
    pages.append(client.post(f"/p/{participant_id}/comment", data={"comment": MARKUP * 300}))  # too long: 422
    for page in pages:
        assert MARKUP not in page.text, page.url
    done, admin = pages[4], pages[5]
    assert done.url.path.endswith("/done") and done.text.count(ESCAPED) == 2 and "colour-blind" in done.text
    assert admin.status_code == 200 and ESCAPED in admin.text
    assert rows(tmp_path / "answers.sqlite", "SELECT comment FROM participants") == [(f"{MARKUP}\n{MARKUP} again",)]


def test_admin_endpoints_need_the_token(client, tmp_path, survey_dir):
    for path in ("/admin/progress", "/admin/export.csv"):
        assert client.get(path).status_code == 403
        assert client.get(path, headers={"X-Organiser-Token": "wrong"}).status_code == 403
        assert client.get(path + "?token=").status_code == 403
        assert client.get(f"{path}?token={TOKEN}").status_code == 403  # never from the URL
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 403
    for path in ("/admin", "/admin/export.csv"):
        assert client.post(path, data={"token": "wrong"}).status_code == 403
        assert client.post(f"{path}?token={TOKEN}", data={"token": ""}).status_code == 422
    login = client.get(f"/admin?token={TOKEN}")  # a login form only, whatever the URL says
    assert login.status_code == 200 and 'name="token"' in login.text and "participants," not in login.text
    assert 'action="/admin"' in login.text and 'method="post"' in login.text
    participant_id = start(client)
    for _ in range(4):
        client.post("/api/answers", json={"participant_id": participant_id,
                                          "image_id": current_image(client, participant_id), "answer": "real"})
    progress = client.get("/admin/progress", headers={"X-Organiser-Token": TOKEN})
    assert progress.status_code == 200
    assert {k: progress.json()[k] for k in ("participants", "finished", "answers")} == {
        "participants": 1, "finished": 0, "answers": 4}
    assert client.get("/admin/progress", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    page = client.post("/admin", data={"token": TOKEN})
    assert page.status_code == 200 and "1 participants, 0 finished, 4 answers" in page.text
    assert "token=" not in page.text.replace('name="token"', "")  # no token in any link or form action
    assert client.post("/admin/export.csv", data={"token": TOKEN}).status_code == 200
    export = client.get("/admin/export.csv", headers={"X-Organiser-Token": TOKEN})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    lines = export.text.strip().splitlines()
    assert lines[0].startswith("participant_id,image_id,photo_id,kind,answer,response_ms,answered_at")
    truth = load_truth(survey_dir).set_index("image_id")
    for line in lines[1:]:
        fields = line.split(",")
        assert fields[2] == truth.loc[fields[1], "photo_id"] and fields[3] == truth.loc[fields[1], "kind"]
    assert len(lines) == 5


def leaks(secret: str, text: str) -> bool:
    """Whether `text` gives `secret` away. A short id ("p11") counts only as a word of its own: a random token
    (base64url: letters, digits, - and _) holds one by chance now and then (this test failed so once), and a file
    name that carries it is caught by its longer secrets ("colorized_p", "real_p")."""
    if len(secret) >= 6:
        return secret in text
    return re.search(rf"(?<![A-Za-z0-9_-]){re.escape(secret)}(?![A-Za-z0-9_-])", text) is not None


def test_truth_never_reaches_the_browser(client, survey_dir):
    truth = load_truth(survey_dir)
    secrets_ = set(truth["photo_id"]) | {"colorized_p", "real_p", "truth", "shown_path", "sha256", "kind",
                                         "selection"} | set(truth["sha256"])
    participant_id = start(client)
    responses = [client.get("/"), client.get(f"/p/{participant_id}")]
    question_pages, image_headers = [], {}
    for position in range(12):
        page = client.get(f"/p/{participant_id}")
        image_id = current_image(client, participant_id)
        question_pages.append(page.text.replace(image_id, "IMAGE").replace(f"Photo {position + 1} of", "Photo N of"))
        image = client.get(f"/p/{participant_id}/img/{image_id}.jpg")
        kind = truth.set_index("image_id").loc[image_id, "kind"]
        image_headers.setdefault(kind, set()).add(tuple(sorted(image.headers.items())))
        responses += [page, client.get(f"/api/participants/{participant_id}"),
                      client.post("/api/answers", json={"participant_id": participant_id, "image_id": image_id,
                                                        "answer": "real"})]
    responses += [client.get(f"/p/{participant_id}/done"), client.get("/static/survey.js"),
                  client.get("/static/survey.css")]
    for response in responses:
        blob = response.text + json.dumps(dict(response.headers))
        leaked = {word for word in secrets_ if leaks(word, blob)}
        assert not leaked, (response.url, leaked)
    assert len(set(question_pages)) == 1  # a real photo's page and a colorized photo's page differ in nothing else
    assert image_headers["real"] == image_headers["colorized"] and len(image_headers["real"]) == 1
    assert not {"last-modified", "etag"} & {k for k, _ in next(iter(image_headers["real"]))}


def test_healthz_and_survey_bound_database(survey_dir, tmp_path, client):
    assert client.get("/healthz").json() == {"ok": True}
    other = make_survey(tmp_path / "other", n=12)
    with pytest.raises(ValueError, match="holds answers for survey"):
        create_app(other, db_path=tmp_path / "answers.sqlite", organiser_token=TOKEN)


# hardening: numbers, headers on every response, cross-site posts, cookies, rate limits ----------------------------

EXPECTED_HEADERS = {
    "cache-control": "no-store", "x-content-type-options": "nosniff", "referrer-policy": "same-origin",
    "x-frame-options": "DENY", "cross-origin-resource-policy": "same-origin",
    "content-security-policy": ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
                                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
}


def assert_secured(response):
    got = {name: response.headers.get(name) for name in EXPECTED_HEADERS}
    assert got == EXPECTED_HEADERS, (response.request.method, response.url, response.status_code, got)


@pytest.mark.parametrize("value", ["²", "٣٤٥", "１２", "۱۲", " 12", "12 ", "1_000", "+5", "12.0", "-1", "0x10",
                                   "3600001", "99999999999999999999"])
def test_non_ascii_or_out_of_range_numbers_are_422_with_headers(client, tmp_path, value):
    participant_id = start(client)
    image_id = current_image(client, participant_id)
    form = client.post(f"/p/{participant_id}/answer", follow_redirects=False,
                       data={"image_id": image_id, "answer": "real", "response_ms": value})
    assert form.status_code == 422 and "digits 0-9" in form.text, (value, form.status_code)
    assert_secured(form)
    api = client.post("/api/answers", json={"participant_id": participant_id, "image_id": image_id,
                                            "answer": "real", "response_ms": value})
    assert api.status_code == 422 and api.json()["detail"][0]["field"] == "response_ms"
    assert_secured(api)
    assert rows(tmp_path / "answers.sqlite") == []  # in particular, '٣٤٥' is not stored as 345


def test_ascii_digits_and_json_integers_in_range_are_accepted(client, tmp_path):
    participant_id = start(client)
    sent = [("0", 0), ("3600000", 3600000), ("00042", 42), ("", None)]
    for text, _ in sent:
        image_id = current_image(client, participant_id)
        response = client.post(f"/p/{participant_id}/answer", follow_redirects=False,
                               data={"image_id": image_id, "answer": "fake", "response_ms": text})
        assert response.status_code == 303, text
    image_id = current_image(client, participant_id)
    assert client.post("/api/answers", json={"participant_id": participant_id, "image_id": image_id,
                                             "answer": "fake", "response_ms": 1234}).status_code == 200
    assert [r[0] for r in rows(tmp_path / "answers.sqlite", "SELECT response_ms FROM answers ORDER BY answer_id")] \
        == [v for _, v in sent] + [1234]


def test_every_response_carries_the_security_headers(app, survey_dir, monkeypatch):
    with TestClient(app, raise_server_exceptions=False) as client:
        participant_id = start(client)
        image_id = current_image(client, participant_id)
        responses = [
            client.get("/"), client.get(f"/p/{participant_id}"), client.get(f"/p/{participant_id}/img/{image_id}.jpg"),
            client.get("/static/survey.css"), client.get("/healthz"),
            client.post("/start", data={"consent": "yes"}, follow_redirects=False),  # 303
            client.get("/no/such/page"), client.get(f"/p/{participant_id}/img/0123456789abcdef.jpg"),
            client.get("/static/nope.css"),
            client.delete("/"), client.post("/api/answers", content=b"{", headers={"content-type": "application/json"}),
            client.post("/api/answers", json={"answer": "real"}),  # 422
            client.post("/api/answers", content=b"x" * 20000, headers={"content-type": "application/json"}),  # 413
            client.get("/admin/progress"),  # 403
            client.post("/start", data={"consent": "yes"}, headers={"origin": "https://evil.example"}),  # 403
        ]
        client.post("/api/answers", json={"participant_id": participant_id, "image_id": image_id, "answer": "real"})
        responses.append(client.post("/api/answers", json={"participant_id": participant_id, "image_id": image_id,
                                                           "answer": "fake"}))  # 409

        def broken(*args, **kwargs):
            raise RuntimeError("simulated bug")

        monkeypatch.setattr(app.state.store, "record_answer", broken)
        responses.append(client.post(f"/p/{participant_id}/answer",
                                     data={"image_id": current_image(client, participant_id), "answer": "real"}))
        responses.append(client.post("/api/answers", json={"participant_id": participant_id,
                                                           "image_id": current_image(client, participant_id),
                                                           "answer": "real"}))
    statuses = sorted({r.status_code for r in responses})
    assert statuses == [200, 303, 400, 403, 404, 405, 409, 413, 422, 500], statuses
    for response in responses:
        assert_secured(response)
    assert "internal error" in responses[-2].text and responses[-1].json()["error"].startswith("the survey server")


def test_cross_site_posts_are_refused(client, app, survey_dir):
    for headers in ({"origin": "https://evil.example"}, {"origin": "null"}, {"referer": "https://evil.example/x"},
                    {"sec-fetch-site": "cross-site"}, {"origin": "http://testserver.evil.example"}):
        client.cookies.clear()
        refused = client.post("/start", data={"consent": "yes"}, headers=headers, follow_redirects=False)
        assert refused.status_code == 403 and "another web site" in refused.text, headers
        assert client.post("/api/participants", json={"consent": True}, headers=headers).status_code == 403
    assert app.state.store.summary()["participants"] == 0
    participant_id = start(client)
    image_id = current_image(client, participant_id)
    evil = {"origin": "https://evil.example"}
    assert client.post(f"/p/{participant_id}/answer", data={"image_id": image_id, "answer": "real"},
                       headers=evil).status_code == 403
    assert client.post(f"/p/{participant_id}/comment", data={"comment": "x"}, headers=evil).status_code == 403
    assert client.post("/admin/export.csv", data={"token": TOKEN}, headers=evil).status_code == 403
    assert current_image(client, participant_id) == image_id
    for headers in ({"origin": "http://testserver"}, {"referer": f"http://testserver/p/{participant_id}"},
                    {"sec-fetch-site": "same-origin"}):
        assert client.post(f"/p/{participant_id}/answer", data={"image_id": current_image(client, participant_id),
                                                                 "answer": "real"}, headers=headers,
                           follow_redirects=False).status_code == 303, headers
    client.cookies.clear()
    same = client.post("/start", data={"consent": "yes"}, headers={"origin": "http://testserver"},
                       follow_redirects=False)
    assert same.status_code == 303


def test_configured_public_origin_is_accepted(survey_dir, tmp_path):
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite", public_origins=["https://survey.example.org/"])
    with TestClient(app) as client:
        behind_proxy = client.post("/start", data={"consent": "yes"}, follow_redirects=False,
                                   headers={"origin": "https://survey.example.org", "host": "127.0.0.1:8000"})
        assert behind_proxy.status_code == 303
        other = client.post("/start", data={"consent": "yes"}, follow_redirects=False,
                            headers={"origin": "https://other.example.org", "host": "127.0.0.1:8000"})
        assert other.status_code == 403


def test_opening_another_participants_link_does_not_rebind_the_cookie(client, app):
    mine = start(client)
    client.cookies.clear()
    theirs = start(client)
    client.cookies.clear()
    client.cookies.set(COOKIE, mine)
    page = client.get(f"/p/{theirs}")  # someone sent me their link
    assert page.status_code == 200 and "set-cookie" not in page.headers
    assert client.cookies.get(COOKIE) == mine
    again = client.post("/start", data={"consent": "yes"}, follow_redirects=False)
    assert again.headers["location"] == f"/p/{mine}" and "set-cookie" not in again.headers
    assert app.state.store.summary()["participants"] == 2


def test_new_participations_are_rate_limited_per_client_and_overall(survey_dir, tmp_path):
    from koalarization.survey.security import ParticipationLimits, RateLimit

    limits = ParticipationLimits(per_client=RateLimit(3, 60.0), overall=RateLimit(5, 30.0), max_participants=None)
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite", limits=limits)
    now = [1000.0]
    app.state.context.limiter.clock = lambda: now[0]
    first = TestClient(app, client=("10.0.0.1", 4000))
    second = TestClient(app, client=("10.0.1.2", 4000))  # another /24
    for index in range(3):
        first.cookies.clear()
        assert first.post("/start", data={"consent": "yes"}, follow_redirects=False).status_code == 303, index
    refused = first.post("/api/participants", json={"consent": True})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
    assert "from your network" in refused.json()["error"]
    first.cookies.clear()
    page = first.post("/start", data={"consent": "yes"}, follow_redirects=False)
    assert page.status_code == 429 and "try again in 60 seconds" in page.text and page.headers["retry-after"]
    assert_secured(page)
    assert second.post("/api/participants", json={"consent": True}).status_code == 201
    assert second.post("/api/participants", json={"consent": True}).status_code == 201
    overall = second.post("/api/participants", json={"consent": True})  # the overall bucket (5) is empty now
    assert overall.status_code == 429 and overall.headers["retry-after"] == "30"
    assert app.state.store.summary()["participants"] == 5
    now[0] += 30.0  # one overall token back; the first client's bucket has half a token
    assert first.post("/api/participants", json={"consent": True}).status_code == 429
    assert second.post("/api/participants", json={"consent": True}).status_code == 201
    now[0] += 60.0
    assert first.post("/api/participants", json={"consent": True}).status_code == 201
    assert app.state.store.summary()["participants"] == 7


def test_one_client_cannot_stuff_the_ballot_with_default_limits(app):
    with TestClient(app) as client:
        codes = [client.post("/api/participants", json={"consent": True}).status_code for _ in range(200)]
    assert codes[:10] == [201] * 10 and set(codes[10:]) == {429}
    assert app.state.store.summary()["participants"] == 10


def test_max_participants_closes_the_survey(survey_dir, tmp_path):
    from koalarization.survey.security import ParticipationLimits, RateLimit

    limits = ParticipationLimits(per_client=RateLimit(100, 1.0), overall=RateLimit(100, 1.0), max_participants=2)
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite", limits=limits)
    with TestClient(app) as client:
        assert [client.post("/api/participants", json={"consent": True}).status_code for _ in range(3)] == [
            201, 201, 403]
        client.cookies.clear()
        closed = client.post("/start", data={"consent": "yes"})
        assert closed.status_code == 403 and "this survey is closed" in closed.text
    assert app.state.store.summary()["participants"] == 2
