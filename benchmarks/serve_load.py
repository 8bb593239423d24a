"""Load test of ``python -m recbole_session.serve`` on loopback, against the in-process API.

    python benchmarks/serve_load.py [--clients 50] [--seconds 20] [--threads 1]
        [--checkpoint MODEL=PATH ...] [--sriem-dataset yoochoose-sample --sriem-data-path DIR]

For SessionBERT4Rec on ml-100k (the converter's session-aware files) and SRIEM on a session-based
dataset (default: the YOOCHOOSE sample, converted by the package) it trains one epoch with the
model's defaults (or loads ``--checkpoint``), starts the server as its own process, and runs
``--clients`` client threads in this process, each on one keep-alive connection, sending requests
back to back for ``--seconds`` after a warm-up: SessionBERT4Rec requests name a known user (top
``--k`` at ``+1``), SRIEM requests carry an anonymous session's items (the test rows' item lists).
Every answer is checked against the Python API's on a sample (``same_answers``).

Reported per model: requests per second, p50 / p99 latency, failed requests, the server's peak
resident memory (VmHWM); then the same requests answered in process, in batches of the server's
``--max-batch`` (``Recommender.recommend_many`` for users, ``Recommender.answer`` for anonymous
sessions, which ``recommend_many`` has no form for), medians of ``--repeats``: ``ratio`` is the
server's throughput over the in-process one. The server and the clients share the machine's
cores. Writes ``benchmarks/results/serve_load.{md,json}`` and its section of
``docs/benchmarks.md``; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from recbole_session.convert import convert
from recbole_session.files import update_section, write_atomic
from recbole_session.recommend import Recommender
from recbole_session.recommend_requests import At, Request
from recbole_session.training import run_recbole_session

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "serve_load"
DOCS = ROOT / "docs" / "benchmarks.md"
READY = re.compile(r"on http://([\d.]+):(\d+)")
WARM_UP_S = 3.0
SAMPLE = 50  # answers compared with the API's
GOAL_P99_MS, GOAL_RATIO = 100.0, 0.8


def train(model: str, dataset: str, data_path: Path, workdir: Path) -> str:
    config = {"epochs": 1, "show_progress": False, "state": "ERROR", "eval_protocols": [],
              "checkpoint_dir": str(workdir / "saved"), "data_path": str(data_path)}
    return run_recbole_session(model, dataset, config_dict=config)["model_file"]


def requests_for(rec: Recommender, k: int, seed: int) -> list[dict]:
    """Known users in a shuffled order, or the anonymous sessions of the test rows."""
    rng = random.Random(seed)
    if rec.session_based:
        feat = rec.dataset.inter_feat
        lists, lengths = feat[rec.fields.item + rec.fields.suffix].numpy(), feat[rec.fields.length].numpy()
        rows = rng.sample(range(len(lengths)), min(2000, len(lengths)))
        return [{"events": rec.item_tokens[lists[r, :lengths[r]]].tolist(), "k": k} for r in rows]
    users = rec.user_tokens[1:].tolist()
    rng.shuffle(users)
    return [{"user": u, "k": k} for u in users]


def api_request(rec: Recommender, payload: dict) -> Request:
    """The API's form of a request the clients send."""
    if "user" in payload:
        return Request(payload["user"], At.parse(None), [], payload["k"])
    return Request(None, At.parse(None), rec.session_events(payload["events"]), payload["k"])


class Server:
    def __init__(self, checkpoint: str, threads: int, max_batch: int, max_wait_ms: float):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen([sys.executable, "-m", "recbole_session.serve", checkpoint, "--port", "0",
                                      "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        match = READY.search(line)
        if not match:
            raise SystemExit(f"the server did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.host, self.port = match.group(1), int(match.group(2))

    def cpu_seconds(self) -> float:
        """The server process's user + system CPU time so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def health(self) -> dict:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        connection.request("GET", "/health")
        return json.loads(connection.getresponse().read())

    def peak_mib(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024

    def stop(self) -> int:
        self.proc.terminate()
        self.proc.communicate(timeout=60)
        return self.proc.returncode


def load(server: Server, payloads: list[dict], clients: int, seconds: float) -> dict:
    """Back-to-back requests from ``clients`` threads; latencies of those sent after the warm-up."""
    start = time.perf_counter()
    measure_from, deadline = start + WARM_UP_S, start + WARM_UP_S + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    completed = [0] * clients  # warm-up included: the CPU times cover it
    failures: list[str] = []
    answers: dict[int, list[str]] = {}

    def client(c: int) -> None:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
        i = c
        try:
            while time.perf_counter() < deadline:
                body = json.dumps(payloads[i % len(payloads)])
                sent = time.perf_counter()
                connection.request("POST", "/recommend", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                got = json.loads(response.read())
                done = time.perf_counter()
                if response.status != 200:
                    failures.append(f"{response.status} {got}")
                elif i < SAMPLE:
                    answers[i] = [x["item"] for x in got["items"]]
                completed[c] += 1
                if sent >= measure_from:
                    latencies[c].append(done - sent)
                i += clients
        except OSError as err:
            failures.append(repr(err))
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server_cpu, client_cpu = server.cpu_seconds() - server_cpu, time.process_time() - client_cpu
    flat = np.array([x for per in latencies for x in per])
    total = max(sum(completed), 1)
    return {"requests": int(len(flat)), "rps": round(len(flat) / seconds, 1),
            "server_cpu_ms_per_request": round(1e3 * server_cpu / total, 3),
            "client_cpu_ms_per_request": round(1e3 * client_cpu / total, 3),
            "p50_ms": round(1e3 * float(np.percentile(flat, 50)), 1),
            "p99_ms": round(1e3 * float(np.percentile(flat, 99)), 1),
            "failed": len(failures), "first_failure": failures[0] if failures else None, "answers": answers}


def in_process(rec: Recommender, payloads: list[dict], max_batch: int, repeats: int) -> tuple[float, float]:
    """Requests per second (wall) and CPU ms per request of the same requests answered by the API,
    ``max_batch`` at a time."""
    requests = [api_request(rec, p) for p in payloads]
    times, cpu = [], []
    for _ in range(repeats + 1):  # the first is a warm-up
        start, start_cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not rec.session_based:
                rec.recommend_many([p["user"] for p in payloads], k=payloads[0]["k"], batch_size=max_batch)
            else:
                for i in range(0, len(requests), max_batch):
                    rec.answer(requests[i:i + max_batch], batch_size=max_batch)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return len(payloads) / statistics.median(times[1:]), 1e3 * statistics.median(cpu[1:]) / len(payloads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server and of the API")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkpoint", nargs="*", default=[], help="MODEL=PATH: skip training that model")
    parser.add_argument("--models", nargs="+", default=["SessionBERT4Rec", "SRIEM"], choices=["SessionBERT4Rec", "SRIEM"])
    parser.add_argument("--sriem-dataset", default="yoochoose-sample")
    parser.add_argument("--sriem-data-path", default="atomic_files")
    parser.add_argument("--workdir", default="saved/serve_load", help="checkpoints of the trainings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    given = dict(item.split("=", 1) for item in args.checkpoint)
    setups = {"SessionBERT4Rec": ("ml-100k", workdir / "atomic_files"),
              "SRIEM": (args.sriem_dataset, Path(args.sriem_data_path).resolve())}
    rows = []
    for model in args.models:
        dataset, data_path = setups[model]
        if model not in given and dataset == "ml-100k" and not (data_path / dataset).is_dir():
            convert("ml-100k", out=data_path)
        path = given.get(model) or train(model, dataset, data_path, workdir)
        rec = Recommender.from_checkpoint(path)
        payloads = requests_for(rec, args.k, seed=0)
        server = Server(path, args.threads, args.max_batch, args.max_wait_ms)
        try:
            served = load(server, payloads, args.clients, args.seconds)
            peak = server.peak_mib()
            health = server.health()
            served["mean_batch"] = round(health["answered"] / max(health["batches"], 1), 1)
        finally:
            code = server.stop()
        api_rps, api_cpu = in_process(rec, payloads, args.max_batch, args.repeats)
        answers = served.pop("answers")
        sample = sorted(answers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = rec.answer([api_request(rec, payloads[i]) for i in sample])
        same = len(sample) > 0 and all([x for x, _ in w["items"]] == answers[i] for w, i in zip(want, sample))
        row = {"model": model, "dataset": dataset, "max_len": int(rec.config["MAX_ITEM_LIST_LENGTH"]),
               "items": int(rec.n_items - 1), **served, "server_peak_mib": round(peak, 1), "api_rps": round(api_rps, 1),
               "api_cpu_ms_per_request": round(api_cpu, 3),
               "ratio": round(served["rps"] / api_rps, 3), "same_answers": same, "server_exit": code,
               "request": "a known user" if not rec.session_based else "an anonymous session's items"}
        print(f"{model}: served {row['rps']:.0f} req/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
              f"{row['failed']} failed; in process {row['api_rps']:.0f} req/s; ratio {row['ratio']:.2f}", flush=True)
        rows.append(row)
    body = table(rows, args, load_before)
    write_atomic(RESULTS.with_suffix(".md"), body + "\n")
    summary = {"clients": args.clients, "seconds": args.seconds, "threads": args.threads, "max_batch": args.max_batch,
               "max_wait_ms": args.max_wait_ms, "cpus": os.cpu_count(), "load_average_before": load_before,
               "models": rows}
    write_atomic(RESULTS.with_suffix(".json"), json.dumps(summary, indent=1) + "\n")
    update_section(DOCS, "serve_load", body, title="# Benchmarks")
    print(json.dumps(summary))


def table(rows: list[dict], args, load_before: str) -> str:
    lines = ["| model | data | request | max len | served req/s | p50 ms | p99 ms | failed | in-process req/s "
             "| ratio | CPU ms/request: server / clients / in process | mean batch | server peak MiB | same answers |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['dataset']} ({r['items']} items) | {r['request']} | {r['max_len']} | "
                     f"{r['rps']:.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['failed']} of {r['requests']} | "
                     f"{r['api_rps']:.0f} | {r['ratio']:.2f} | {r['server_cpu_ms_per_request']:.2f} / "
                     f"{r['client_cpu_ms_per_request']:.2f} / {r['api_cpu_ms_per_request']:.2f} | {r['mean_batch']} | "
                     f"{r['server_peak_mib']:.0f} | {r['same_answers']} |")
    goals = [f"{r['model']}: p99 {r['p99_ms']} ms (goal < {GOAL_P99_MS:.0f}), ratio {r['ratio']:.2f} "
             f"(goal >= {GOAL_RATIO}), {r['failed']} failed" for r in rows]
    return "\n".join([
        "### Serve: the HTTP service under load (`benchmarks/serve_load.py`)",
        "",
        f"`python benchmarks/serve_load.py --clients {args.clients} --seconds {args.seconds:g} --threads "
        f"{args.threads} --max-batch {args.max_batch} --max-wait-ms {args.max_wait_ms:g}`: {os.cpu_count()} CPU "
        f"cores, load average before the run {load_before}; each model trained 1 epoch with its defaults. "
        f"{args.clients} client threads on keep-alive connections send requests back to back for "
        f"{args.seconds:g} s after a {WARM_UP_S:g} s warm-up; the server (its own process, {args.threads} torch "
        "thread(s)) and the clients share the cores. In process: the same requests through the Python API "
        f"in batches of {args.max_batch}, median of {args.repeats}, with the machine to itself.",
        "",
        *lines,
        "",
        "; ".join(goals) + ".",
        "",
        "Where the time goes: per request the server spends "
        + ", ".join(f"{r['server_cpu_ms_per_request'] - r['api_cpu_ms_per_request']:.2f} ms ({r['model']})"
                    for r in rows)
        + " of CPU more than the API: reading the HTTP request and its JSON, handing it to the model's "
        "thread and back, writing the answer, and batches smaller than the API's "
        f"({', '.join(str(r['mean_batch']) for r in rows)} requests on average against {args.max_batch}: "
        "a batch takes the requests that are waiting, and the clients, on the same cores, keep fewer "
        "waiting). The clients' own CPU per request is in the same column. The throughput ratio is "
        "bounded by that arithmetic on two shared cores, not by a limit of the server's threads: an "
        "asyncio variant of the same service (one event loop for all connections) was measured at the "
        "same throughput (`docs/recommend.md`).",
    ])


if __name__ == "__main__":
    main()
