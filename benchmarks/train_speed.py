"""Training speed of SessionBERT4Rec against RecBole's BERT4Rec, measured in the same run.

Per-epoch wall time of RecBole's own ``Trainer._train_epoch`` (data loading, RecBole's batch
transform for BERT4Rec, forward, backward, optimiser step) on the same dataset, the same
sizes (``properties/model/SessionBERT4Rec.yaml``, which are RecBole's BERT4Rec defaults) and
the same training rows (RecBole's prefix regime for both). The three models are timed in
alternation, rotating the order every repetition, and the medians are compared:

- ``ratio``     = SessionBERT4Rec with every switch on / BERT4Rec (goal <= 1.10)
- ``ratio_off`` = SessionBERT4Rec with every switch off / BERT4Rec (goal <= 1.02)

(wall time; ``ratio_cpu`` / ``ratio_off_cpu`` are the same from process CPU time, which is
less disturbed by other processes on shared cores.)

Peak memory: each model is also built and trained for one epoch in a fresh process, whose peak
resident set size (``peak_rss_mb``) and resident size before the epoch (``rss_built_mb``: data,
loaders and model) are reported, so that the epoch's own peak is ``peak_rss_mb - rss_built_mb``.

The table goes to ``benchmarks/results/train_speed_<dataset>.md`` and its section of
``docs/benchmarks.md``; the last line printed is one JSON object with both ratios, the medians
and the memory figures.

    python benchmarks/train_speed.py                  # ml-100k, 3 repetitions
    python benchmarks/train_speed.py --quick          # 1 repetition, max length 20
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import recbole_session  # noqa: E402,F401  (shims and registration)
from recbole_session.build import build, make_config  # noqa: E402
from recbole_session.files import update_section, write_atomic  # noqa: E402
from recbole_session.reproduce.table2 import machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

VARIANTS = {
    "BERT4Rec": ("BERT4Rec", {}),
    "SessionBERT4Rec(all)": ("SessionBERT4Rec", {}),  # the yaml's switches: ST, m 3, dT 16
    "SessionBERT4Rec(off)": ("SessionBERT4Rec", {"session_token": False, "max_session_segments": 0, "temporal_dim": 0}),
}


def trainer_and_data(model: str, dataset: str, overrides: dict) -> tuple:
    built = build(make_config(model, dataset, config_dict=overrides))
    return built.trainer, built.train_data


def rss_mb() -> float:
    """This process's resident set size now (Linux), in MB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux ``VmHWM``, of this process's own memory), in MB."""
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024  # kB


def memory_of(name: str, dataset: str, overrides: dict, threads: int) -> dict:
    """Build ``name`` and train one epoch in this (fresh) process: RSS before, peak RSS."""
    torch.set_num_threads(threads)
    model, extra = VARIANTS[name]
    trainer, train = trainer_and_data(model, dataset, {**overrides, **extra})
    built = rss_mb()
    trainer._train_epoch(train, 0, show_progress=False)
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec, so a spawned worker
    # would report the parent's peak (the timing loop's three trainers), the same for every model
    return {"rss_built_mb": round(built), "peak_rss_mb": round(peak_rss_mb())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-path", default=None, help="data_path (default: the config's)")
    parser.add_argument("--reps", type=int, default=3, help="timed epochs per model")
    parser.add_argument("--max-len", type=int, default=None, help="MAX_ITEM_LIST_LENGTH (default: dataset yaml)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the cores are shared)")
    parser.add_argument("--batch", type=int, default=2048, help="train_batch_size of every model (RecBole's default)")
    parser.add_argument("--gpu", action="store_true", help="use the GPU if there is one")
    parser.add_argument("--quick", action="store_true", help="1 repetition, max length 20")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.max_len = 1, args.max_len or 20
    torch.set_num_threads(args.threads)

    # the same rows and batches for every model: RecBole's prefix rows, one whole pass per epoch
    # (SessionBERT4Rec's yaml trains 10-step epochs of batch 128; RecBole's BERT4Rec 2048)
    common = {"state": "WARNING", "show_progress": False, "use_gpu": args.gpu, "train_regime": "prefix",
              "train_batch_size": args.batch, "epoch_steps": 0}
    if args.data_path:
        common["data_path"] = args.data_path
    if args.max_len:
        common["MAX_ITEM_LIST_LENGTH"] = args.max_len
    runs = {name: trainer_and_data(model, args.dataset, {**common, **extra}) for name, (model, extra) in VARIANTS.items()}
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(args.reps + 1):  # repetition 0 warms up and is not counted
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            trainer, train = runs[name]
            if torch.cuda.is_available() and args.gpu:
                torch.cuda.synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            trainer._train_epoch(train, rep, show_progress=False)
            if torch.cuda.is_available() and args.gpu:
                torch.cuda.synchronize()
            if rep:
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
        print(f"rep {rep}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names) if rep else "warm-up done",
              flush=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    trainer, train = runs["SessionBERT4Rec(all)"]
    del runs
    memory = {}
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for name in names:
            memory[name] = pool.apply(memory_of, (name, args.dataset, common, args.threads))
    result = {
        "ratio": round(median["SessionBERT4Rec(all)"] / median["BERT4Rec"], 3),
        "ratio_off": round(median["SessionBERT4Rec(off)"] / median["BERT4Rec"], 3),
        "epoch_s": {name: round(value, 3) for name, value in median.items()},
        # process CPU time: with one thread on shared cores, less noisy than wall time
        "ratio_cpu": round(median_cpu["SessionBERT4Rec(all)"] / median_cpu["BERT4Rec"], 3),
        "ratio_off_cpu": round(median_cpu["SessionBERT4Rec(off)"] / median_cpu["BERT4Rec"], 3),
        "epoch_cpu_s": {name: round(value, 3) for name, value in median_cpu.items()},
        "peak_rss_mb": {name: m["peak_rss_mb"] for name, m in memory.items()},
        "rss_built_mb": {name: m["rss_built_mb"] for name, m in memory.items()},
        "batch_size": trainer.config["train_batch_size"],
        "dataset": args.dataset,
        "train_rows": len(train.dataset),
        "max_len": trainer.config["MAX_ITEM_LIST_LENGTH"],
        "hidden_size": trainer.config["hidden_size"],
        "n_layers": trainer.config["n_layers"],
        "regime": "prefix",
        "reps": args.reps,
        "threads": args.threads,
        "device": str(trainer.config["device"]),
    }
    write_report(result, argv if argv is not None else sys.argv[1:])
    print(json.dumps(result))
    return result


def write_report(result: dict, argv: list[str]) -> None:
    """The table file and this script's section of docs/benchmarks.md."""
    rows = [f"| {name} | {result['epoch_s'][name]:.2f} | {result['epoch_cpu_s'][name]:.2f} | "
            f"{result['rss_built_mb'][name]} | {result['peak_rss_mb'][name]} |" for name in VARIANTS]
    body = "\n".join([
        "`" + " ".join(["python benchmarks/train_speed.py", *argv]) + "`",
        "",
        f"One epoch of RecBole's `Trainer._train_epoch` on {result['dataset']}'s every-prefix rows "
        f"({result['train_rows']} rows, batch {result['batch_size']}, max length {result['max_len']}, hidden "
        f"{result['hidden_size']}, {result['n_layers']} layers), {result['threads']} torch thread(s) on "
        f"{result['device']}, median of {result['reps']} timed epochs after a warm-up, the models in "
        f"rotating order; memory from one epoch in a fresh process per model. {machine()}.",
        "",
        "| model | epoch s (wall) | epoch s (CPU) | RSS built, MB | peak RSS, MB |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"All switches / BERT4Rec: {result['ratio']} wall, {result['ratio_cpu']} CPU (bar <= 1.10); switches off / "
        f"BERT4Rec: {result['ratio_off']} wall, {result['ratio_off_cpu']} CPU (bar <= 1.02).",
    ])
    title = f"SessionBERT4Rec training speed and memory against RecBole's BERT4Rec ({result['dataset']})"
    write_atomic(ROOT / "benchmarks" / "results" / f"train_speed_{result['dataset']}.md", f"# {title}\n\n{body}\n")
    update_section(ROOT / "docs" / "benchmarks.md", "train_speed", f"### {title}\n\n{body}", title="# Benchmarks")


if __name__ == "__main__":
    main()
