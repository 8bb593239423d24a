"""A checkpoint as an HTTP service, on loopback by default.

    python -m recbole_session.serve CKPT [--host 127.0.0.1] [--port 8000] [--data_path DIR]
        [--max-batch N] [--max-wait-ms MS]

The model is loaded once. ``POST /recommend`` answers one request (JSON ``user``, ``time``,
``events``, ``k``, ``exclude_seen``; all optional but a user or events), ``POST
/recommend/batch`` many (``{"requests": [...]}``), ``GET /health`` says what is served (model,
dataset, the checkpoint's SHA-256). Requests that arrive together are scored as one batch by
one worker thread (:class:`Batcher`): at most ``--max-batch`` requests, the first waiting at most
``--max-wait-ms`` for others. A bad request gets a 4xx answer ``{"error": "<one line>"}`` and
never stops the service; SIGTERM or Ctrl+C stops it gracefully (requests in flight are answered,
then exit code 0).

Built on the standard library's ``http.server`` (threads, HTTP/1.1 keep-alive): the package's
dependencies are fixed (recbole, torch, numpy, pandas, ray[tune]), FastAPI is not one of them,
and Ray Serve 2.6.3, the last Ray RecBole 1.2.1 allows, needs ``pydantic<2`` and a dozen more
packages (``docs/recommend.md``, "The service", says what to put in front of it for the internet).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import queue
import signal
import threading
import time
import warnings
from concurrent.futures import Future
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from recbole_session.cli import ArgumentParser, UsageError, exit_with, fail
from recbole_session.files import file_digest
from recbole_session.literals import short

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# the largest request body read: a batch of about ten thousand small requests
MAX_BODY_BYTES = 2**20
# the most requests one /recommend/batch carries, and events one request carries
MAX_BATCH_REQUESTS = 1000
MAX_EVENTS = 10_000
# requests the worker scores together, and how long the first waits for others (milliseconds)
DEFAULT_MAX_BATCH = 64
DEFAULT_MAX_WAIT_MS = 2.0
# seconds an idle keep-alive connection stays open (a graceful stop waits for it at most this long)
IDLE_TIMEOUT_S = 5.0
# connections waiting to be accepted (socketserver's default of 5 resets a burst of clients)
LISTEN_BACKLOG = 1024
# a body over the limit but at most this long is read and dropped before the 413: a client still
# sending it would otherwise see its connection reset (or a broken pipe) instead of the answer
MAX_DISCARD_BYTES = 16 * 2**20
DISCARD_CHUNK_BYTES = 2**16
# the paths served, by method, and how a refusal lists them
PATHS = {"GET": ("/health",), "POST": ("/recommend", "/recommend/batch")}
ROUTES = "POST /recommend, POST /recommend/batch, GET /health"
REQUEST_FIELDS = ("user", "time", "events", "k", "exclude_seen")
DEFAULT_K = 10


class BadRequest(UsageError):
    """A request the service refuses: answered 4xx with this one line."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------- requests
def parse_request(body: Any, where: str, recommender) -> Any:
    """A JSON request object -> :class:`recbole_session.recommend.Request`, or :class:`BadRequest`."""
    from recbole_session.recommend_requests import At, Event, RecommendError, Request

    if not isinstance(body, dict):
        raise BadRequest(f"{where}: expected a JSON object with {', '.join(REQUEST_FIELDS)}, got {_kind(body)}")
    for key in body:
        if key not in REQUEST_FIELDS:
            raise BadRequest(f"{where}: unknown field {short(key)}; expected {', '.join(REQUEST_FIELDS)}")
    user = body.get("user")
    if user is not None and (isinstance(user, bool) or not isinstance(user, (str, int)) or user == ""):
        raise BadRequest(f"{where} field 'user': expected an original user id (a string or an integer), "
                         f"got {short(user)}")
    k = body.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise BadRequest(f"{where} field 'k': expected a positive integer, got {short(k)}")
    exclude = body.get("exclude_seen")
    if exclude is not None and not isinstance(exclude, bool):
        raise BadRequest(f"{where} field 'exclude_seen': expected true, false or null, got {short(exclude)}")
    at = body.get("time")
    if at is not None and (isinstance(at, bool) or not isinstance(at, (str, int, float))):
        raise BadRequest(f"{where} field 'time': expected a number or \"+SECONDS\", got {short(at)}")
    events = body.get("events", [])
    if not isinstance(events, list):
        raise BadRequest(f"{where} field 'events': expected a list of [item, time] pairs, got {_kind(events)}")
    if len(events) > MAX_EVENTS:
        raise BadRequest(f"{where} field 'events': {len(events)} events, more than the limit of {MAX_EVENTS}")
    pairs = [_event_pair(e, f"{where} events[{i}]") for i, e in enumerate(events)]
    try:
        if user is None:
            if not pairs:
                raise BadRequest(f"{where}: no user and no events; an anonymous session needs its events")
            fresh = recommender.session_events(pairs, f"{where} events")
        else:
            recommender.check_anonymous(user, f"{where} field 'user'")
            fresh = [Event(str(user), str(item), _time(t, f"{where} events[{i}]"), f"{where} events[{i}]")
                     for i, (item, t) in enumerate(pairs)]
        return Request(None if user is None else str(user), At.parse(at, f"{where} field 'time'"), fresh, k,
                       exclude, where)
    except RecommendError as err:
        raise BadRequest(str(err)) from None


def _event_pair(event: Any, where: str) -> Any:
    if isinstance(event, dict):
        unknown = set(event) - {"item", "time"}
        if unknown or "item" not in event:
            raise BadRequest(f"{where}: expected {{\"item\": ..., \"time\": ...}}, got {short(event)}")
        return (event["item"], event["time"]) if "time" in event else event["item"]
    if isinstance(event, list) and len(event) == 2:
        return tuple(event)
    if isinstance(event, (str, int)) and not isinstance(event, bool):
        return event  # an item alone: for datasets without times
    raise BadRequest(f"{where}: expected [item, time], {{\"item\": ..., \"time\": ...}} or an item, got "
                     f"{short(event)}")


def _time(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{where}: expected a time in the raw data's unit (a number), got {short(value)}")
    return float(value)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value), short(value))


def answer_json(answer: dict) -> dict:
    """One answer of :meth:`Recommender.answer` as the service returns it."""
    return {"user": answer["user"], "items": [{"item": i, "score": s} for i, s in answer["items"]],
            "time": answer["time"], "new_session": answer["new_session"], "popular": answer["popular"],
            "new_user": answer["new_user"], "mean_user": answer["mean_user"]}


# ---------------------------------------------------------------------------------- batching
@dataclass
class _Job:
    requests: list
    future: Future


class Batcher:
    """One worker thread that owns the model: it takes the jobs waiting (a job is one HTTP
    request's requests), up to ``max_batch`` requests, the first waiting at most ``max_wait``
    seconds for company, and answers them in one call. A job whose input the model refuses (a
    time before the user's last event) fails alone: the batch is then answered job by job."""

    def __init__(self, recommender, max_batch: int, max_wait: float):
        self.recommender, self.max_batch, self.max_wait = recommender, max_batch, max_wait
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.requests = self.batches = 0  # answered so far: their ratio is the mean batch size
        self.thread = threading.Thread(target=self._run, name="recommend-batcher", daemon=True)
        self.thread.start()

    def submit(self, requests: list) -> Future:
        future: Future = Future()
        self.jobs.put(_Job(requests, future))
        return future

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            batch, size, deadline = [job], len(job.requests), time.monotonic() + self.max_wait
            stop = False
            while size < self.max_batch:
                try:
                    more = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
                size += len(more.requests)
            self._answer(batch)
            if stop:
                return

    def _answer(self, batch: list[_Job]) -> None:
        from recbole_session.recommend_requests import RecommendError

        try:
            answers = self._score([r for job in batch for r in job.requests])
        except RecommendError as err:
            if len(batch) == 1:
                batch[0].future.set_exception(err)
                return
            for job in batch:  # find the job the model refused; the others are answered
                self._answer([job])
            return
        except Exception as err:  # noqa: BLE001 (a bug must not stop the worker: a 500 says it)
            for job in batch:
                job.future.set_exception(err)
            return
        self.requests += len(answers)
        self.batches += 1
        at = 0
        for job in batch:
            job.future.set_result(answers[at:at + len(job.requests)])
            at += len(job.requests)

    def _score(self, requests: list) -> list[dict]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the answers' flags say what a warning would
            return self.recommender.answer(requests, batch_size=self.max_batch)


# ---------------------------------------------------------------------------------- HTTP
class Server(ThreadingHTTPServer):
    """Threads per connection, joined at close (requests in flight are answered)."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int]):
        super().__init__(address, Handler)
        self.batcher: Batcher | None = None  # set once the model is loaded, before serving
        self.health: dict = {}
        self.stopping = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client's requests reuse one connection
    timeout = IDLE_TIMEOUT_S
    # headers and body are two writes: with Nagle's algorithm the body waits for the client's
    # delayed ACK of the headers, 40 ms per request (measured: p50 52 ms with 10 clients)
    disable_nagle_algorithm = True
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        pass  # one line per request would cost more than the request; errors are in the answers

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        path = self.path.split("?")[0]
        try:
            if path not in PATHS[method]:
                known = path in PATHS["GET"] + PATHS["POST"]
                raise BadRequest(f"{short(self.path)}: " + (f"use {'POST' if method == 'GET' else 'GET'}" if known
                                 else f"not found; {ROUTES}"),
                                 HTTPStatus.METHOD_NOT_ALLOWED if known else HTTPStatus.NOT_FOUND)
            if path == "/health":
                batcher = self.server.batcher
                self._send(HTTPStatus.OK, {**self.server.health, "answered": batcher.requests,
                                           "batches": batcher.batches})
                return
            body = self._body()
            recommender = self.server.batcher.recommender
            if path == "/recommend":
                requests = [parse_request(body, "request", recommender)]
            else:
                if not isinstance(body, dict) or set(body) != {"requests"} or not isinstance(body["requests"], list):
                    raise BadRequest('expected {"requests": [request, ...]}')
                if not 0 < len(body["requests"]) <= MAX_BATCH_REQUESTS:
                    raise BadRequest(f"'requests': {len(body['requests'])} requests; expected 1 to "
                                     f"{MAX_BATCH_REQUESTS}")
                requests = [parse_request(r, f"requests[{i}]", recommender) for i, r in enumerate(body["requests"])]
            answers = self.server.batcher.submit(requests).result()
        except UsageError as err:  # BadRequest, and RecommendError from the model's refusal
            self._send(getattr(err, "status", HTTPStatus.BAD_REQUEST), {"error": str(err).splitlines()[0]})
            return
        except Exception as err:  # noqa: BLE001 (the service stays up; the client learns what failed)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}".splitlines()[0]})
            return
        results = [answer_json(a) for a in answers]
        self._send(HTTPStatus.OK, results[0] if path == "/recommend" else {"results": results})

    def _body(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None:
            raise BadRequest("no Content-Length: send the JSON body with its length", HTTPStatus.LENGTH_REQUIRED)
        try:
            size = int(length)
        except ValueError:
            self.close_connection = True  # where the body ends is unknown
            raise BadRequest(f"Content-Length {short(length)} is not a number") from None
        if size > MAX_BODY_BYTES or size < 0:
            self.close_connection = True  # the connection is not reused after a refused body
            if 0 < size <= MAX_DISCARD_BYTES:  # read what the client is sending, so that it reads the answer
                left = size
                with contextlib.suppress(OSError):
                    while left > 0:
                        chunk = self.rfile.read(min(DISCARD_CHUNK_BYTES, left))
                        if not chunk:
                            break
                        left -= len(chunk)
            raise BadRequest(f"a body of {size} bytes, more than the limit of {MAX_BODY_BYTES}",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        raw = self.rfile.read(size)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise BadRequest(f"the body is not JSON ({str(err).splitlines()[0]})") from None

    def _send(self, status: HTTPStatus, payload: dict) -> None:
        data = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.server.stopping:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


# ---------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m recbole_session.serve",
                            description="Serve a checkpoint's recommendations over HTTP (JSON): POST "
                            "/recommend, POST /recommend/batch, GET /health.")
    parser.add_argument("checkpoint", help="a .pth file saved by a run")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this "
                        "machine only; put a reverse proxy in front for other machines)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free "
                        "port, printed)")
    parser.add_argument("--data_path", default=None, help="folder holding <dataset>/ (default: the run's)")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                        help=f"requests scored together (default {DEFAULT_MAX_BATCH})")
    parser.add_argument("--max-wait-ms", type=float, default=DEFAULT_MAX_WAIT_MS,
                        help=f"how long a request waits for others to share its batch (default {DEFAULT_MAX_WAIT_MS})")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not 0 <= args.port <= 65535:
            raise UsageError(f"--port must be 0 to 65535, got {args.port}")
        if args.max_batch < 1:
            raise UsageError(f"--max-batch must be a positive integer, got {args.max_batch}")
        if not (math.isfinite(args.max_wait_ms) and args.max_wait_ms >= 0):
            raise UsageError(f"--max-wait-ms must be a number >= 0, got {args.max_wait_ms}")
        from recbole_session.recommend import Recommender, check_checkpoint_path

        check_checkpoint_path(args.checkpoint)
        try:  # listen before loading: a port in use is said before the model is loaded
            server = Server((args.host, args.port))
        except OSError as err:  # the port is taken, the host is not this machine's
            raise UsageError(f"--host {args.host} --port {args.port}: cannot listen ({err.strerror or err})") from None

        try:
            recommender = Recommender.from_checkpoint(args.checkpoint, args.data_path)
        except UsageError:
            server.server_close()
            raise
        server.health = {"status": "ok", "model": recommender.config["model"], "dataset": recommender.config["dataset"],
                         "checkpoint": str(Path(args.checkpoint).resolve()), "sha256": file_digest(args.checkpoint),
                         "session_based": recommender.session_based, "items": int(recommender.n_items - 1),
                         "users": int(recommender.history.known(recommender.history.model_user).sum())}
        batcher = Batcher(recommender, args.max_batch, args.max_wait_ms / 1000)
        server.batcher = batcher
    except UsageError as err:  # RecommendError included
        return fail(parser.prog, err)
    return _serve(server, batcher)


def _serve(server: Server, batcher: Batcher) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    loop = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    loop.start()
    host, port = server.server_address[:2]
    health = server.health
    print(f"serving {health['model']} ({health['dataset']}) on http://{host}:{port}: POST /recommend, "
          "POST /recommend/batch, GET /health; SIGTERM or Ctrl+C stops", flush=True)
    stop.wait()
    server.stopping = True
    server.shutdown()  # no new connections; then the open ones are answered and joined
    server.server_close()
    batcher.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    exit_with(main())
