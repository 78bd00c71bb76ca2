"""Many participants at once against a real uvicorn server on 127.0.0.1: every answer stored exactly once."""
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from survey_fixtures import browser_client, make_survey

from koalarization.survey.app import create_app
from koalarization.survey.security import ParticipationLimits, RateLimit
from koalarization.survey.server import running_in_thread

PARTICIPANTS = 50
TOKEN = "concurrency-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("concurrency")
    survey_dir = make_survey(folder, n=12)
    db_path = folder / "answers.sqlite"
    # 50 people starting together from one address (a class behind one NAT): the organiser raises the per-client
    # burst, as PROTOCOL.md says; the default (10) would turn 40 of them away with 429.
    limits = ParticipationLimits(per_client=RateLimit(PARTICIPANTS, 60.0))
    app = create_app(survey_dir, db_path=db_path, organiser_token=TOKEN, limits=limits)
    with running_in_thread(app) as base_url:
        yield base_url, db_path


def simulated_participant(base_url, index, barrier):
    """One simulated participant (test data only): answers all photos; the first answer is sent twice in a row,
    the last one from two threads at the same moment."""
    with browser_client(base_url, timeout=30) as client:
        state = client.post("/api/participants", json={"consent": True, "comment": f"simulated {index}"}).json()
        participant_id, answers, total = state["participant_id"], {}, state["total"]
        barrier.wait()  # everyone starts answering together
        while not state["finished"]:
            image_id, position = state["image_id"], state["position"]
            answer = "real" if (index + position) % 2 else "fake"
            body = {"participant_id": participant_id, "image_id": image_id, "answer": answer,
                    "response_ms": 500 + position}
            if position == total - 1:
                with ThreadPoolExecutor(2) as pair:
                    results = list(pair.map(lambda _, body=body: client.post("/api/answers", json=body), range(2)))
                assert sorted(r.json()["stored"] for r in results) == [False, True]
                state = results[0].json()
            else:
                state = client.post("/api/answers", json=body).json()
                assert state["stored"] is True and state["answered"] == position + 1, state
                if position == 0:
                    repeat = client.post("/api/answers", json=body)
                    assert repeat.status_code == 200 and repeat.json()["stored"] is False
            answers[image_id] = answer
        assert client.get(f"/api/participants/{participant_id}").json()["finished"]
        return participant_id, answers


def test_fifty_participants_in_parallel_every_answer_stored_once(served):
    base_url, db_path = served
    barrier = threading.Barrier(PARTICIPANTS, timeout=60)
    with ThreadPoolExecutor(PARTICIPANTS) as pool:
        results = list(pool.map(lambda i: simulated_participant(base_url, i, barrier), range(PARTICIPANTS)))
    expected = {(pid, image_id, answer) for pid, answers in results for image_id, answer in answers.items()}
    assert len(results) == PARTICIPANTS and len(expected) == PARTICIPANTS * 12
    with sqlite3.connect(db_path) as db:
        stored = db.execute("SELECT participant_id, image_id, answer FROM answers").fetchall()
        finished = db.execute("SELECT COUNT(*) FROM participants WHERE finished_at IS NOT NULL").fetchone()[0]
        positions = db.execute("SELECT participant_id, GROUP_CONCAT(position) FROM (SELECT * FROM answers"
                               " ORDER BY answer_id) GROUP BY participant_id").fetchall()
    assert len(stored) == PARTICIPANTS * 12 and set(stored) == expected
    assert finished == PARTICIPANTS
    assert all(order == ",".join(str(i) for i in range(12)) for _, order in positions)
    progress = httpx.get(f"{base_url}/admin/progress", headers={"X-Organiser-Token": TOKEN}).json()
    assert (progress["participants"], progress["finished"], progress["answers"]) == (
        PARTICIPANTS, PARTICIPANTS, PARTICIPANTS * 12)


def test_streamed_oversized_body_without_length_is_413(served):
    base_url, _ = served

    def chunks():
        for _ in range(40):
            yield b" " * 1024

    response = httpx.post(f"{base_url}/api/participants", content=chunks(),
                          headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 413
    assert httpx.get(f"{base_url}/healthz").json() == {"ok": True}  # the server is still fine
