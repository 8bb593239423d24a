"""Epoch time of training in 1 and in 2 processes (RecBole's distributed path), same effective batch.

Each run is the package's real command, ``python run_recbole_session.py --model=M
--dataset=D --nproc=P`` (on the CPU over gloo where there is no CUDA), for ``--epochs`` epochs with
one validation at the end. RecBole divides ``train_batch_size`` among the processes, so that a
step of P processes trains on the same number of rows as a step of one (the effective batch is
held equal), and an epoch has the same steps. One process runs twice: with one torch thread, and
with every core (torch's default threads: on cores that other work shares, threads that wait for
each other can be many times slower); P processes share the cores (``cores // P`` threads each).
The per-epoch training time is read from rank 0's log lines (``epoch k training [time: ...]``),
the first epoch left out (warm-up), and the medians are compared: ``speedup`` = the all-cores
process's epoch / the P processes' (``speedup_one_thread``: the one-thread process's). The
processes' CPU time (the command and its children) is reported too. The runs alternate
(1, P, 1, P, ...) for ``--repeat`` rounds, and the medians pool every round's epochs. Where CUDA is
available a "1 GPU" row (``--nproc=1`` on the GPU) is added.

    python benchmarks/distributed.py                       # SessionBERT4Rec and SASRec, ml-100k
    python benchmarks/distributed.py --models SASRec --epochs 4 --repeat 1

The table goes to ``benchmarks/results/distributed_<dataset>.md`` (and ``.json``) and the
``distributed`` section of ``docs/benchmarks.md``; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recbole_session.files import update_section, write_atomic  # noqa: E402
from recbole_session.reproduce.table2 import machine  # noqa: E402

ONE_THREAD, ONE_PROCESS = "1 process, 1 thread", "1 process, all cores"
EPOCH_LINE = re.compile(r"epoch (\d+) training \[time: ([\d.]+)s")
# the per-model recipe: the models' own defaults, a fixed number of steps per epoch
RECIPES = {"SessionBERT4Rec": ["--epoch_steps=10"], "SASRec": [], "SessionSASRec": ["--epoch_steps=10"],
           "GRU4Rec": [], "SRIEM": []}


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(model: str, dataset: str, processes: list[str], epochs: int, port: int, extra: list[str],
            folder: Path, env: dict[str, str]) -> dict:
    """One command; its per-epoch training times (rank 0's log), wall and CPU seconds."""
    cmd = [sys.executable, str(ROOT / "run_recbole_session.py"), f"--model={model}", f"--dataset={dataset}",
           *processes, f"--port={port}", f"--epochs={epochs}", f"--eval_step={epochs}", "--show_progress=False",
           "--eval_protocols=[]", f"--checkpoint_dir={folder / 'saved'}", *RECIPES.get(model, []), *extra]
    cpu, start = children_cpu_s(), time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - start, children_cpu_s() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    epochs_s = [float(t) for _, t in EPOCH_LINE.findall(done.stdout + done.stderr)]
    if len(epochs_s) != epochs:
        raise SystemExit(f"{' '.join(cmd)}: expected {epochs} epoch lines, found {len(epochs_s)}")
    return {"epoch_s": epochs_s[1:], "wall_s": wall, "cpu_s": cpu}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="SessionBERT4Rec,SASRec", help="comma-separated models")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--processes", type=int, default=2, help="P, the processes compared with 1")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run (the first is not counted)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of (1 process, P processes)")
    parser.add_argument("--port", type=int, default=29511, help="rendezvous port on this machine")
    parser.add_argument("--data_path", default=None, help="the folder holding <dataset>/ (default: the config's)")
    args = parser.parse_args(argv)
    extra = [f"--data_path={args.data_path}"] if args.data_path else []
    # row -> (options, environment): OMP_NUM_THREADS=1 gives the one-process row one torch thread
    plain = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    rows = {ONE_THREAD: (["--nproc=1", "--use_gpu=False"], {**plain, "OMP_NUM_THREADS": "1"}),
            ONE_PROCESS: (["--nproc=1", "--use_gpu=False"], plain),
            f"{args.processes} processes": ([f"--nproc={args.processes}"], plain)}
    if torch.cuda.is_available():
        rows["1 GPU"] = (["--nproc=1", "--use_gpu=True"], plain)
    load_before = os.getloadavg()
    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="distributed-bench-") as tmp:
        for model in args.models.split(","):
            runs: dict[str, list[dict]] = {row: [] for row in rows}
            for round_ in range(args.repeat):
                for row, (processes, env) in rows.items():
                    run = one_run(model, args.dataset, processes, args.epochs, args.port, extra, Path(tmp), env)
                    runs[row].append(run)
                    print(f"{model} round {round_ + 1} {row}: epochs {', '.join(f'{t:.2f}' for t in run['epoch_s'])} s",
                          flush=True)
            results[model] = {row: {"epoch_s": round(statistics.median([t for r in rs for t in r["epoch_s"]]), 3),
                                    "epochs_timed": sum(len(r["epoch_s"]) for r in rs),
                                    "run_wall_s": round(statistics.median(r["wall_s"] for r in rs), 1),
                                    "run_cpu_s": round(statistics.median(r["cpu_s"] for r in rs), 1)}
                              for row, rs in runs.items()}
    many = f"{args.processes} processes"
    payload = {
        "dataset": args.dataset, "processes": args.processes, "epochs": args.epochs, "repeat": args.repeat,
        "cores": os.cpu_count(), "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()),
        "models": results,
        "speedup": {model: round(rows_[ONE_PROCESS]["epoch_s"] / rows_[many]["epoch_s"], 3)
                    for model, rows_ in results.items()},
        "speedup_one_thread": {model: round(rows_[ONE_THREAD]["epoch_s"] / rows_[many]["epoch_s"], 3)
                               for model, rows_ in results.items()},
    }
    write_report(payload, argv if argv is not None else sys.argv[1:])
    print(json.dumps(payload))
    return payload


def write_report(payload: dict, argv: list[str]) -> None:
    many = f"{payload['processes']} processes"
    lines = ["| model | run | epoch s (median) | epochs timed | command wall s | command CPU s |", "|---|---|---|---|---|---|"]
    for model, rows in payload["models"].items():
        lines += [f"| {model} | {row} | {r['epoch_s']:.2f} | {r['epochs_timed']} | {r['run_wall_s']} | {r['run_cpu_s']} |"
                  for row, r in rows.items()]
    body = "\n".join([
        "`" + " ".join(["python benchmarks/distributed.py", *argv]) + "`",
        "",
        f"Per-epoch training time of the package's command on {payload['dataset']} in 1 and in {payload['processes']} "
        f"processes (gloo on the CPU), the effective batch held equal (RecBole divides `train_batch_size` among "
        f"the processes), {payload['epochs']} epochs per run with the first left out, {payload['repeat']} "
        f"alternating round(s); the command's wall and CPU time include imports, data loading and one "
        f"validation and test. {machine()} (load before: {payload['loadavg_before'][0]:.1f}).",
        "",
        *lines,
        "",
        f"Speed-up of an epoch, {ONE_PROCESS} / {many}: "
        + ", ".join(f"{model} {value}" for model, value in payload["speedup"].items())
        + f"; {ONE_THREAD} / {many}: "
        + ", ".join(f"{model} {value}" for model, value in payload["speedup_one_thread"].items()) + ".",
    ])
    title = f"Training in several processes ({payload['dataset']})"
    results = ROOT / "benchmarks" / "results"
    write_atomic(results / f"distributed_{payload['dataset']}.md", f"# {title}\n\n{body}\n")
    write_atomic(results / f"distributed_{payload['dataset']}.json", json.dumps(payload, indent=1) + "\n")
    update_section(ROOT / "docs" / "benchmarks.md", "distributed", f"### {title}\n\n{body}", title="# Benchmarks")


if __name__ == "__main__":
    main()
