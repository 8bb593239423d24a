"""The HTTP service: ``python -m recbole_session.serve`` as a real process on loopback, asked over
real HTTP. Its answers equal the Python API's; bad requests get 4xx with one line and leave it
running; concurrent clients are all answered; SIGTERM stops it gracefully."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bad_input import BadInput, check

from recbole_session.recommend import Recommender
from recbole_session.serve import MAX_BODY_BYTES, main

REPO = Path(__file__).resolve().parent.parent
READY = re.compile(r"serving \S+ \(\S+\) on http://([\d.]+):(\d+)")
START_TIMEOUT_S = 180
_API: dict[str, Recommender] = {}


class Service:
    """A server process on a free loopback port, and a way to ask it."""

    def __init__(self, checkpoint: str, *options: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recbole_session.serve", checkpoint, "--port", "0", *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
        line = self.proc.stdout.readline()  # the process prints it once listening
        match = READY.search(line)
        assert match, f"no 'serving' line: {line!r}\n{self.proc.stderr.read()[-3000:] if self.proc.poll() is not None else ''}"
        self.host, self.port = match.group(1), int(match.group(2))

    def ask(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def post(self, path: str, payload) -> tuple[int, dict]:
        return self.ask("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        return self.proc.returncode, out


@pytest.fixture(scope="module")
def service(checkpoints):
    server = Service(checkpoints["SessionBERT4Rec"], "--max-batch", "16")
    yield server
    server.stop()


def api(path: str) -> Recommender:
    if path not in _API:
        _API[path] = Recommender.from_checkpoint(path)
    return _API[path]


def same(got: dict, items: list[tuple[str, float]]) -> None:
    """The service's items are the API's (scores to float32 rounding: batches differ in shape)."""
    assert [i["item"] for i in got["items"]] == [i for i, _ in items]
    assert [i["score"] for i in got["items"]] == pytest.approx([s for _, s in items], rel=1e-5)


def test_health_names_the_model_dataset_and_checkpoint(service, checkpoints):
    status, health = service.ask("GET", "/health")
    digest = hashlib.sha256(Path(checkpoints["SessionBERT4Rec"]).read_bytes()).hexdigest()
    assert status == 200
    assert health["answered"] >= health["batches"] >= 0
    assert health | {"checkpoint": None, "answered": 0, "batches": 0} == {
        "status": "ok", "model": "SessionBERT4Rec", "dataset": "ml-100k", "checkpoint": None, "sha256": digest,
        "session_based": False, "items": 1272, "users": 173, "answered": 0, "batches": 0}
    assert Path(health["checkpoint"]) == Path(checkpoints["SessionBERT4Rec"]).resolve()


def test_answers_equal_the_python_api(service, checkpoints, atomic_root):
    rec = api(checkpoints["SessionBERT4Rec"])
    status, got = service.post("/recommend", {"user": "2", "k": 5})
    assert status == 200 and got["user"] == "2" and not got["popular"] and not got["new_session"]
    same(got, rec.recommend("2", k=5))
    status, got = service.post("/recommend/batch", {"requests": [
        {"user": "2", "time": "+60"}, {"user": 5, "time": "+864000", "k": 3, "exclude_seen": False}]})
    assert status == 200 and [r["user"] for r in got["results"]] == ["2", "5"]
    same(got["results"][0], rec.recommend("2", at="+60"))
    same(got["results"][1], rec.recommend("5", at="+864000", k=3, exclude_seen=False))
    assert [r["new_session"] for r in got["results"]] == [False, True]


def test_new_users_anonymous_sessions_and_unknown_users(service, checkpoints, atomic_root):
    rec = api(checkpoints["SessionBERT4Rec"])
    items = rec.history.columns[rec.fields.item][rec.history.offsets[2]:rec.history.offsets[3]]
    times = rec.history.columns[rec.fields.time][rec.history.offsets[2]:rec.history.offsets[3]]
    events = [[rec.item_tokens[i], rec.time_axis.absolute(t)] for i, t in zip(items, times)]
    user = rec.user_tokens[2]
    status, got = service.post("/recommend", {"user": "newcomer", "events": events, "time": "+60"})
    assert status == 200 and got["new_user"] and not got["popular"]
    same(got, rec.recommend(user, at="+60"))
    status, got = service.post("/recommend", {"events": [{"item": i, "time": t} for i, t in events]})
    assert status == 200 and got["user"] is None and not got["new_user"]
    same(got, rec.recommend(user))
    status, got = service.post("/recommend", {"user": "nobody", "k": 4})
    assert status == 200 and got["popular"] and len(got["items"]) == 4 and got["time"] is None


BAD = [
    ("POST", "/recommend", b"{not json", "not JSON"),
    ("POST", "/recommend", b"[1, 2]", "expected a JSON object"),
    ("POST", "/recommend", b'{"user": "2", "topk": 5}', "unknown field 'topk'"),
    ("POST", "/recommend", b'{"user": "2", "k": 0}', "field 'k': expected a positive integer"),
    ("POST", "/recommend", b'{"user": true}', "field 'user': expected an original user id"),
    ("POST", "/recommend", b'{"user": "2", "time": "soon"}', "is not a time"),
    ("POST", "/recommend", b'{"user": "2", "time": 0}', "before the last known event of user '2'"),
    ("POST", "/recommend", b'{"user": "2", "events": [["50"]]}', "events[0]: expected [item, time]"),
    ("POST", "/recommend", b'{"user": "2", "events": [["50", "late"]]}', "expected a time"),
    ("POST", "/recommend", b"{}", "no user and no events"),
    ("POST", "/recommend", b'{"events": [50, 60]}', "expects an (item, time) pair"),
    ("POST", "/recommend/batch", b'{"requests": []}', "expected 1 to 1000"),
    ("POST", "/recommend/batch", b'{"requests": [{"user": "2"}, {"user": "2", "k": -1}]}', "requests[1] field 'k'"),
    ("POST", "/recommend/batch", b'[{"user": "2"}]', 'expected {"requests"'),
]


@pytest.mark.parametrize("method, path, body, message", BAD, ids=[b[3] for b in BAD])
def test_a_bad_request_is_answered_400_with_one_line(service, method, path, body, message):
    status, got = service.ask(method, path, body, {"Content-Type": "application/json"})
    assert status == 400 and message in got["error"] and "\n" not in got["error"]
    assert service.ask("GET", "/health")[0] == 200  # still serving


def test_wrong_paths_methods_and_sizes_get_their_4xx(service):
    assert service.ask("GET", "/nope")[0] == 404
    assert service.ask("GET", "/recommend")[0] == 405
    assert service.ask("POST", "/health", b"{}")[0] == 405
    status, got = service.ask("POST", "/recommend", b"x" * (MAX_BODY_BYTES + 1))
    assert status == 413 and "limit" in got["error"]
    with socket.create_connection((service.host, service.port), timeout=30) as raw:
        raw.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 411")
    assert service.ask("GET", "/health")[0] == 200


def test_a_request_the_model_refuses_fails_alone_in_its_batch(service, checkpoints):
    """Sent together, a request with a time before the user's last event gets its 400 and the
    others their answers (the batch is then answered request by request)."""
    rec = api(checkpoints["SessionBERT4Rec"])
    results: dict[int, tuple[int, dict]] = {}
    payloads = [{"user": "2", "time": 0} if i == 3 else {"user": "2", "k": 2} for i in range(12)]

    def send(i: int) -> None:
        results[i] = service.post("/recommend", payloads[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[3][0] == 400
    for i in set(results) - {3}:
        assert results[i][0] == 200
        same(results[i][1], rec.recommend("2", k=2))


def test_fifty_concurrent_clients_all_get_the_apis_answers(service, checkpoints):
    rec = api(checkpoints["SessionBERT4Rec"])
    users = rec.user_tokens[1:51].tolist()
    want = {u: [i for i, _ in rec.recommend(u, k=10)] for u in users}
    failures: list[str] = []

    def client(user: str) -> None:
        connection = http.client.HTTPConnection(service.host, service.port, timeout=60)
        try:
            for _ in range(4):  # keep-alive: one connection per client
                connection.request("POST", "/recommend", json.dumps({"user": user}),
                                   {"Content-Type": "application/json"})
                response = connection.getresponse()
                got = json.loads(response.read())
                if response.status != 200 or [i["item"] for i in got["items"]] != want[user]:
                    failures.append(f"{user}: {response.status} {got}")
        except OSError as err:  # a refused or reset connection is a failed request
            failures.append(f"{user}: {err!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_sigterm_answers_the_request_in_flight_then_exits_0(checkpoints):
    server = Service(checkpoints["SASRec"])
    payload = {"requests": [{"user": str(u), "k": 100} for u in api(checkpoints["SASRec"]).user_tokens[1:]] * 5}
    result: list = []
    thread = threading.Thread(target=lambda: result.append(server.post("/recommend/batch", payload)))
    thread.start()
    time.sleep(0.2)
    code, out = server.stop()
    thread.join()
    assert code == 0 and "stopped" in out
    assert result[0][0] == 200 and len(result[0][1]["results"]) == len(payload["requests"])


def test_a_session_based_checkpoint_answers_anonymous_sessions(session_checkpoints):
    rec = api(session_checkpoints["SRIEM"])
    server = Service(session_checkpoints["SRIEM"])
    try:
        session = rec.item_tokens[1:5].tolist()
        status, got = server.post("/recommend", {"events": session, "k": 5})
        assert status == 200 and got["user"] is None
        same(got, rec.recommend(None, events=session, k=5))
        status, got = server.post("/recommend", {"user": "s1", "events": session})
        assert status == 400 and "session-based" in got["error"]
        assert server.ask("GET", "/health")[1]["session_based"] is True
    finally:
        assert server.stop()[0] == 0


CMD = "recbole_session.serve:main"
CASES = [
    BadInput("serve", "a checkpoint that does not exist", CMD, ("{tmp}/nope.pth", "--port", "0"),
             "nope.pth: no such checkpoint"),
    BadInput("serve", "a port out of range", CMD, ("{ckpt}", "--port", "70000"), "--port must be 0 to 65535, got 70000"),
    BadInput("serve", "a port that is not a number", CMD, ("{ckpt}", "--port", "http"),
             "argument --port: invalid int value: 'http'"),
    BadInput("serve", "no requests per batch", CMD, ("{ckpt}", "--max-batch", "0", "--port", "0"),
             "--max-batch must be a positive integer, got 0"),
    BadInput("serve", "a negative wait", CMD, ("{ckpt}", "--max-wait-ms", "-1", "--port", "0"), "--max-wait-ms must be a number >= 0"),
    BadInput("serve", "a host that is not this machine's", CMD, ("{ckpt}", "--host", "192.0.2.1", "--port", "0"),
             "--host 192.0.2.1 --port 0: cannot listen"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_command_line_is_one_line_exit_2(case, checkpoints, tmp_path):
    argv = tuple(a.replace("{ckpt}", checkpoints["SASRec"]) for a in case.argv)
    check(dataclasses.replace(case, argv=argv), tmp_path)


def test_a_port_in_use_is_one_line_exit_2(checkpoints, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main([checkpoints["SASRec"], "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"--port {port}: cannot listen (Address already in use)" in err and err.count("\n") == 1
