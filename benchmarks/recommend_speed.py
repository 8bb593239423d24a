"""Throughput of ``Recommender.recommend_many`` against RecBole's ``full_sort_topk``.

    python benchmarks/recommend_speed.py [--models SessionBERT4Rec SASRec] [--dataset ml-100k]
        [--epochs 1] [--batch-size 64] [--k 10] [--repeats 15] [--threads 1] [--checkpoint M=PATH ...]

For each model: trains it (``--epochs``, the model's own defaults) or loads ``--checkpoint``,
then answers one request per user of the dataset, ``--batch-size`` users per batch, on the model's
device, two ways on the same model object and the same users, alternating (which one goes first
alternates too), ``--repeats`` times:

- ours: ``Recommender.recommend_many`` with its defaults (request at ``+1`` after the user's last
  event, the user's own items left out on a dataset without repeats), returning a DataFrame in
  original ids, plus ``--keep-seen`` for reference;
- RecBole: ``recbole.utils.case_study.full_sort_topk`` on RecBole's test loader (internal ids,
  the test row's history, nothing left out).

Requests per second are medians over the repeats. Writes ``benchmarks/results/recommend_speed.md``
and its section of ``docs/benchmarks.md``; the last line printed is a JSON object whose
``ratio`` is ours / RecBole's throughput in wall time (the smallest over the models; per model in
``models``, with ``ratio_cpu`` in CPU time and the CPU time per request spent outside the model's
forward pass by each path).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from recbole.data import data_preparation
from recbole.utils.case_study import full_sort_topk

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recbole_session.files import update_section, write_atomic  # noqa: E402
from recbole_session.quick_start import run_recbole_session  # noqa: E402
from recbole_session.recommend import Recommender  # noqa: E402
from recbole_session.utils import create_dataset  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "recommend_speed.md"
DOCS = ROOT / "docs" / "benchmarks.md"


def train(model: str, dataset: str, epochs: int, workdir: Path) -> str:
    config = {"epochs": epochs, "show_progress": False, "state": "ERROR", "eval_protocols": [],
              "checkpoint_dir": str(workdir / "saved"), "data_path": str(ROOT / "atomic_files")}
    return run_recbole_session(model, dataset, config_dict=config)["model_file"]


def measure(path: str, batch_size: int, k: int, repeats: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        rec = Recommender.from_checkpoint(path)
        config = rec.config
        _, _, test = data_preparation(config, create_dataset(config))
    users = test.dataset.inter_feat[test.dataset.uid_field].numpy()  # one test row per user
    tokens = rec.user_tokens[users].tolist()
    batches = [users[i:i + batch_size] for i in range(0, len(users), batch_size)]
    # RecBole's test rows of each batch, gathered beforehand: the forward pass alone
    rows = test.dataset.inter_feat[test.dataset.uid_field]
    inputs = [test.dataset[(rows == torch.as_tensor(b)[:, None]).nonzero(as_tuple=True)[1]].to(rec.device)
              for b in batches]

    def ours(exclude_seen=None):
        return rec.recommend_many(tokens, k=k, exclude_seen=exclude_seen, batch_size=batch_size)

    def recbole():
        return [full_sort_topk(b, rec.model, test, k, device=rec.device) for b in batches]

    @torch.no_grad()
    def forward_only():
        return [rec.model.full_sort_predict(x) for x in inputs]

    runs = {"ours": lambda: ours(), "ours_keep_seen": lambda: ours(False), "recbole": recbole,
            "forward": forward_only}
    for fn in runs.values():  # warm-up
        fn()
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            runs[name]()
            if rec.device.type == "cuda":
                torch.cuda.synchronize()
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    n = len(users)
    med = {name: statistics.median(v) for name, v in wall.items()}
    med_cpu = {name: statistics.median(v) for name, v in cpu.items()}
    return {"model": config["model"], "requests": n, "items": rec.n_items - 1,
            "max_len": config["MAX_ITEM_LIST_LENGTH"], "device": str(rec.device),
            "ours_rps": round(n / med["ours"], 1), "ours_keep_seen_rps": round(n / med["ours_keep_seen"], 1),
            "recbole_rps": round(n / med["recbole"], 1),
            "ratio": round(med["recbole"] / med["ours"], 3),
            "ratio_keep_seen": round(med["recbole"] / med["ours_keep_seen"], 3),
            "ratio_cpu": round(med_cpu["recbole"] / med_cpu["ours"], 3),
            # time outside the model's forward pass, per request (CPU time: steadier on a shared machine)
            "forward_cpu_ms_per_request": round(1e3 * med_cpu["forward"] / n, 4),
            "ours_overhead_cpu_ms_per_request": round(1e3 * (med_cpu["ours"] - med_cpu["forward"]) / n, 4),
            "recbole_overhead_cpu_ms_per_request": round(1e3 * (med_cpu["recbole"] - med_cpu["forward"]) / n, 4)}


def table(rows: list[dict], args, load: str) -> str:
    lines = ["| model | requests | items | max len | ours req/s | ours, keep seen | RecBole `full_sort_topk` req/s "
             "| ratio (wall) | ratio, keep seen | ratio (CPU) | forward pass, CPU ms/request | outside it: ours / RecBole, CPU ms/request |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['requests']} | {r['items']} | {r['max_len']} | {r['ours_rps']:.0f} | "
                     f"{r['ours_keep_seen_rps']:.0f} | {r['recbole_rps']:.0f} | {r['ratio']:.2f} | "
                     f"{r['ratio_keep_seen']:.2f} | {r['ratio_cpu']:.2f} | {r['forward_cpu_ms_per_request']:.3f} | "
                     f"{r['ours_overhead_cpu_ms_per_request']:.3f} / {r['recbole_overhead_cpu_ms_per_request']:.3f} |")
    return "\n".join([
        "### Recommend: requests per second (`benchmarks/recommend_speed.py`)",
        "",
        f"`python benchmarks/recommend_speed.py --models {' '.join(args.models)} --dataset {args.dataset} "
        f"--epochs {args.epochs} --batch-size {args.batch_size} --k {args.k} --repeats {args.repeats} "
        f"--threads {args.threads}{''.join(' --checkpoint ' + c for c in args.checkpoint)}`: "
        f"{'the checkpoints are earlier trainings of this script; ' if args.checkpoint else ''}one request per user of {args.dataset}, {args.batch_size} per batch, "
        f"top {args.k}, medians of {args.repeats} alternating repeats on {rows[0]['device']} with "
        f"{args.threads} torch thread(s); load average before the run: {load}.",
        "",
        *lines,
        "",
        "Ours is `Recommender.recommend_many` (original ids in a DataFrame, the request's time and "
        "session, the user's own items left out by default); RecBole's is "
        "`recbole.utils.case_study.full_sort_topk` on its test loader (internal ids, nothing left "
        "out). Both call the same model's `full_sort_predict` on batches of the same users; that "
        "forward pass dominates both. Ours gathers a batch from per-user history tensors built once "
        "at load time, where `full_sort_topk` looks each user's row up in the test split (`nonzero` "
        "over users x rows) and indexes every field; the id mapping, the time and session handling "
        "and the DataFrame are the rest of ours. Wall times on a shared machine are noisy: compare "
        "the ratios, measured in one run; the CPU-time columns (one torch thread) are the steadier "
        "figure. Ratios are ours / RecBole's throughput (RecBole's time / ours).",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["SessionBERT4Rec", "SASRec"])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--checkpoint", nargs="*", default=[], help="MODEL=PATH: skip training that model")
    parser.add_argument("--workdir", default="saved/recommend_speed", help="checkpoints of the trainings (saved/ is git-ignored)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    given = dict(item.split("=", 1) for item in args.checkpoint)
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in args.models:
        path = given.get(model) or train(model, args.dataset, args.epochs, workdir)
        row = measure(path, args.batch_size, args.k, args.repeats)
        print(f"{model}: ours {row['ours_rps']:.0f} req/s (keep seen {row['ours_keep_seen_rps']:.0f}), "
              f"RecBole full_sort_topk {row['recbole_rps']:.0f} req/s, ratio {row['ratio']:.2f}", flush=True)
        rows.append(row)
    body = table(rows, args, load)
    write_atomic(RESULTS, body + "\n")
    update_section(DOCS, "recommend_speed", body, title="# Benchmarks")
    print(json.dumps({"ratio": min(r["ratio"] for r in rows), "models": rows, "load_average_before": load,
                      "threads": args.threads, "batch_size": args.batch_size, "repeats": args.repeats}))


if __name__ == "__main__":
    main()
