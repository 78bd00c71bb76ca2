"""The survey behind a real uvicorn server: slow and idle clients are closed in time, the descriptor limit holds,
photos cannot be told apart by anything but their pixels, and a killed server loses no acknowledged answer."""
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from survey_fixtures import browser_client, make_survey

from koalarization.survey.app import create_app
from koalarization.survey.build import load_truth
from koalarization.survey.security import ParticipationLimits, RateLimit
from koalarization.survey.server import ServerLimits, free_port, running_in_thread

TIMEOUT = 1.0  # the request deadline these tests configure (the default is 10 s)
SLACK = 1.5  # scheduling slack on a busy 2-core machine
SECURITY = {"cache-control": "no-store", "x-content-type-options": "nosniff", "x-frame-options": "DENY"}


@pytest.fixture(scope="module")
def survey_dir(tmp_path_factory):
    return make_survey(tmp_path_factory.mktemp("server"), n=12)


@pytest.fixture()
def served(survey_dir, tmp_path):
    limits = ServerLimits(request_timeout=TIMEOUT, keep_alive=0.5, limit_concurrency=64)
    app = create_app(survey_dir, db_path=tmp_path / "answers.sqlite",
                     limits=ParticipationLimits(per_client=RateLimit(100, 1.0)))
    with running_in_thread(app, limits=limits) as base_url:
        yield base_url


def connect(base_url):
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def wait_closed(sock, limit):
    """Seconds until the server closed `sock` (EOF or reset), or None if it was still open after `limit`."""
    start = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - start < limit:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
    return None


def slow_loris(sock, request, every, limit):
    """Send `request` one byte every `every` seconds; return the seconds until the server closed the socket."""
    start = time.monotonic()
    sock.settimeout(every)
    for byte in request:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            return None
    return None


def participant(base_url):
    """One simulated participant (test data only) through the JSON API; returns its seconds."""
    start = time.monotonic()
    with browser_client(base_url, timeout=10) as client:  # keep-alive here is 0.5 s: a browser's retry on a stale one
        state = client.post("/api/participants", json={"consent": True}).json()
        participant_id = state["participant_id"]
        while not state["finished"]:
            state = client.post("/api/answers", json={"participant_id": participant_id,
                                                      "image_id": state["image_id"], "answer": "real"}).json()
    return time.monotonic() - start


def test_slow_and_idle_clients_are_closed_while_a_participant_is_served(served):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: loris\r\n\r\n"
    idle, half = connect(served), connect(served)
    half.sendall(b"GET /heal")
    slow_body = connect(served)
    slow_body.sendall(b"POST /api/participants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 40\r\n\r\n{")
    kept_alive = connect(served)
    kept_alive.sendall(request)
    assert kept_alive.recv(4096).startswith(b"HTTP/1.1 200")
    loris_after_a_request = connect(served)
    loris_after_a_request.sendall(request)
    assert loris_after_a_request.recv(4096).startswith(b"HTTP/1.1 200")
    with ThreadPoolExecutor(8) as pool:
        loris = pool.submit(slow_loris, connect(served), request, 1.0, 10)  # one byte a second, as in the wild
        loris_again = pool.submit(slow_loris, loris_after_a_request, request, 0.3, 10)
        closed = {name: pool.submit(wait_closed, sock, 10) for name, sock in
                  (("idle", idle), ("half request line", half), ("slow body", slow_body), ("kept alive", kept_alive))}
        served_in = participant(served)  # a normal participant meanwhile: 1 + 12 requests
        times = {name: future.result() for name, future in closed.items()}
        times["slow loris"], times["slow loris after a request"] = loris.result(), loris_again.result()
    assert served_in < TIMEOUT + SLACK, served_in
    for name, seconds in times.items():
        assert seconds is not None and seconds < TIMEOUT + SLACK, (name, seconds)
    assert times["kept alive"] < 0.5 + SLACK  # the keep-alive timeout, shorter than the request deadline


def read_reply(sock):
    reply = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        reply += chunk
    return reply


def test_malformed_and_oversized_requests_get_4xx_with_the_security_headers(served):
    """A head over 8 KiB is refused however it arrives: in pieces (h11's own limit) or, as h11 alone would accept,
    complete in one send (60 KB and 119 KB single headers, the probe's sizes)."""
    whole = [b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n" for size in (60_000, 119_000)]
    cases = [(whole[0], "431"), (whole[1], "431"),
             (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1234567890\r\n" * 600 + b"\r\n", "431"),
             (b"NOT HTTP AT ALL\r\n\r\n", "400"), (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000, "431")]
    for raw, status in cases:
        sock = connect(served)
        sock.sendall(raw)
        head = read_reply(sock).split(b"\r\n\r\n")[0].decode().lower().splitlines()
        assert head and head[0].startswith(f"http/1.1 {status}"), (len(raw), head[:1])
        for name, value in SECURITY.items():
            assert f"{name}: {value}".lower() in head, (name, head)
    small = connect(served)
    small.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fine: " + b"a" * 7000 + b"\r\nConnection: close\r\n\r\n")
    assert read_reply(small).startswith(b"HTTP/1.1 200")  # under the limit, in one piece: served
    assert httpx.get(f"{served}/healthz").status_code == 200


def test_connections_beyond_the_limit_are_turned_away_at_once(survey_dir, tmp_path):
    limits = ServerLimits(request_timeout=TIMEOUT, keep_alive=0.5, limit_concurrency=6)
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite")
    with running_in_thread(app, limits=limits) as base_url:
        held = [connect(base_url) for _ in range(5)]  # 5 = limit_concurrency - 1 idle sockets
        time.sleep(0.2)
        extra = connect(base_url)
        extra.settimeout(2)
        reply = extra.recv(4096).decode().lower()
        assert reply.startswith("http/1.1 503") and "cache-control: no-store" in reply and "retry-after: 5" in reply
        assert wait_closed(extra, 2) is not None
        assert all(wait_closed(sock, TIMEOUT + SLACK) is not None for sock in held)
        assert participant(base_url) < TIMEOUT + SLACK  # the slots are free again


SERVER = textwrap.dedent("""
    import resource, sys
    from koalarization.survey.app import create_app
    from koalarization.survey.security import ParticipationLimits, RateLimit
    from koalarization.survey.server import ServerLimits, serve

    survey, db, port, nofile, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    if nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    app = create_app(survey, db_path=db, organiser_token="t",
                     limits=ParticipationLimits(per_client=RateLimit(1000, 0.01)))
    serve(app, "127.0.0.1", port, ServerLimits(request_timeout=timeout, keep_alive=timeout))
""")


def start_server(survey_dir, db_path, nofile=0, timeout=TIMEOUT):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    log = open(Path(db_path).with_suffix(".log"), "wb")  # a file, not a pipe: a full pipe would block the server
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(survey_dir), str(db_path), str(port), str(nofile),
                                str(timeout)], env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    process.log_path = Path(log.name)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.log_path.read_text())
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the survey server did not start")


def test_sixty_idle_sockets_cannot_exhaust_a_64_descriptor_limit(survey_dir, tmp_path):
    process, base_url = start_server(survey_dir, tmp_path / "a.sqlite", nofile=64, timeout=2.0)
    try:
        sockets = [connect(base_url) for _ in range(60)]
        with ThreadPoolExecutor(60) as pool:
            closed = list(pool.map(lambda sock: wait_closed(sock, 2.0 + 3 * SLACK), sockets))
        assert all(seconds is not None for seconds in closed), closed
        assert process.poll() is None  # still running
        assert participant(base_url) < 10
    finally:
        process.kill()
        process.wait()
    output = process.log_path.read_text()
    assert "Too many open files" not in output, output[-2000:]


def test_no_acknowledged_answer_is_lost_when_the_server_is_killed(survey_dir, tmp_path):
    """Simulated participants answer while the server process is killed with SIGKILL: every answer that got a
    200 reply is in the database afterwards (each answer is committed, synchronous=FULL, before the reply)."""
    db_path = tmp_path / "answers.sqlite"
    process, base_url = start_server(survey_dir, db_path, timeout=10.0)
    acknowledged, lock, stop = set(), threading.Lock(), threading.Event()

    def answer_until_killed(index):
        with httpx.Client(base_url=base_url, timeout=5) as client:
            try:
                state = client.post("/api/participants", json={"consent": True}).json()
                participant_id = state["participant_id"]
                while not state["finished"] and not stop.is_set():
                    body = {"participant_id": participant_id, "image_id": state["image_id"],
                            "answer": random.choice(["real", "fake"])}
                    reply = client.post("/api/answers", json=body)
                    if reply.status_code == 200 and reply.json()["stored"]:
                        with lock:
                            acknowledged.add((body["participant_id"], body["image_id"], body["answer"]))
                    state = reply.json()
            except (httpx.HTTPError, ValueError):
                pass  # the server is gone: this answer was never acknowledged

    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(answer_until_killed, i) for i in range(10)]
        deadline = time.monotonic() + 30
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        stop.set()
        for future in futures:
            future.result()
    assert len(acknowledged) >= 40
    with sqlite3.connect(db_path) as db:
        stored = set(db.execute("SELECT participant_id, image_id, answer FROM answers").fetchall())
    assert acknowledged <= stored, acknowledged - stored


def test_real_and_colorized_photos_look_the_same_to_the_network(survey_dir, tmp_path):
    """Sizes, headers and serving times of real and colorized photos, over a real server. Photos are served only
    for a participant's current question, so simulated participants (test data only) fetch each of their photos
    several times, in random order of participants, and answer it. A photo's serving time is the fastest of its
    fetches (what the server needs; the slower ones measure whatever else the machine was doing), and the medians
    over photos of each kind are compared."""
    truth = load_truth(survey_dir).set_index("image_id")["kind"]
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite",
                     limits=ParticipationLimits(per_client=RateLimit(100, 1.0)))
    with running_in_thread(app) as base_url, httpx.Client(base_url=base_url) as client:
        headers, lengths, times = {}, {}, {"real": {}, "colorized": {}}
        people = [client.post("/api/participants", json={"consent": True}).json() for _ in range(5)]
        client.get(people[0]["image_url"])  # warm up
        rng = random.Random(0)
        while any(not state["finished"] for state in people):
            state = rng.choice([p for p in people if not p["finished"]])
            kind = truth[state["image_id"]]
            for _ in range(5):
                start = time.perf_counter()
                response = client.get(state["image_url"])
                fetch = time.perf_counter() - start
                times[kind][state["image_id"]] = min(fetch, times[kind].get(state["image_id"], fetch))
                assert response.status_code == 200
                headers.setdefault(kind, set()).add(tuple(sorted((k, v) for k, v in response.headers.items()
                                                                 if k != "date")))
                lengths.setdefault(kind, set()).add(len(response.content))
            answered = client.post("/api/answers", json={"participant_id": state["participant_id"],
                                                         "image_id": state["image_id"], "answer": "real"}).json()
            state.update(finished=answered["finished"], image_id=answered["image_id"], image_url=answered["image_url"])
    assert headers["real"] == headers["colorized"] and len(headers["real"]) == 1
    names = {k for k, _ in next(iter(headers["real"]))}
    assert not names & {"etag", "last-modified", "server"} and {"content-length", "cache-control"} <= names
    assert lengths["real"] == lengths["colorized"] and len(lengths["real"]) == 1
    real, colorized = statistics.median(times["real"].values()), statistics.median(times["colorized"].values())
    assert abs(real - colorized) < max(0.002, 0.5 * min(real, colorized)), (real, colorized)
