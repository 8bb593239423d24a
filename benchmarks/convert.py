"""Converter speed: the ml-20m recipe against a bare pyarrow read of the same CSV.

``python benchmarks/convert.py [--rows N] [--keep DIR] [--repeat K]`` (default 20,000,000 rows)
writes an ML-20M-shaped ``ratings.csv`` into a temporary folder: ~138k users at 20M rows (scaled
with ``--rows`` so that rows per user keep ML-20M's shape: at least 20, long-tailed), 26,744
items with a Zipf-like popularity, ratings 0.5..5 (about half >= 4), and times with realistic
gaps (bursts of seconds to minutes inside a visit, hours to days between visits, months between
some). It then runs, each in a fresh process (so that one's memory does not count for the
other), ``pyarrow.csv.read_csv`` of the file and the ``ml-20m`` recipe through the Python API,
and prints as its last line one JSON object: ``convert_s`` (the conversion, imports excluded),
``read_only_s`` (the bare read), ``ratio`` (convert / read), the same in CPU seconds
(``convert_cpu_s``, ``read_only_cpu_s``, ``cpu_ratio``: steadier than wall time on a shared
machine), ``peak_rss_mb`` (the converting process's peak resident memory, imports included),
``baseline_rss_mb`` (that process after its imports), the sizes, the machine's CPU count and its
load average before and after. ``--repeat K`` measures both K times (alternating, each in a fresh
process) and reports the median of each. Goal: ratio <= 2.5 and peak RSS <= 4 GB.

The result is kept per row count in ``benchmarks/results/convert.json``; the table of every row
count measured so far goes to ``benchmarks/results/convert.md`` and to the ``convert`` section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
ML20M_ROWS, ML20M_USERS, ML20M_ITEMS = 20_000_263, 138_493, 26_744
MIN_PER_USER = 20  # every ML-20M user rated at least 20 movies
SEED = 0


def generate(path: Path, rows: int, seed: int = SEED) -> dict:
    """Write an ML-20M-shaped ratings.csv with ``rows`` rows; returns its sizes."""
    rng = np.random.default_rng(seed)
    users = max(1, round(ML20M_USERS * rows / ML20M_ROWS))
    # rows per user: >= 20, lognormal tail (ML-20M: median ~68, mean ~144)
    extra = rng.lognormal(mean=3.6, sigma=1.3, size=users)
    counts = MIN_PER_USER + np.floor(extra / extra.sum() * max(rows - MIN_PER_USER * users, 0)).astype(np.int64)
    counts[: rows - counts.sum()] += 1 if rows > counts.sum() else 0
    counts[-1] += rows - counts.sum()
    user = np.repeat(rng.permutation(np.arange(1, users + 1)), counts)
    # Zipf-like item popularity over ML-20M-like sparse movie ids
    movie_ids = np.sort(rng.choice(np.arange(1, 131_263), ML20M_ITEMS, replace=False))
    popularity = 1.0 / np.arange(1, ML20M_ITEMS + 1) ** 0.9
    item = movie_ids[rng.permutation(ML20M_ITEMS)][rng.choice(ML20M_ITEMS, rows, p=popularity / popularity.sum())]
    rating = rng.choice(np.arange(1, 11) / 2, rows,
                        p=[.01, .03, .02, .07, .05, .2, .12, .27, .08, .15])
    # times: per-user start in 1995..2015, then gaps: bursts, visits, long breaks
    kind = rng.choice(3, rows, p=[0.9, 0.08, 0.02])
    gap = np.where(kind == 0, rng.exponential(90, rows),
                   np.where(kind == 1, rng.exponential(2 * 86_400, rows), rng.exponential(60 * 86_400, rows)))
    first = np.r_[0, np.cumsum(counts)[:-1]]
    gap[first] = rng.integers(789_652_009, 1_427_784_002, users)  # ML-20M's time range
    time_ = np.cumsum(gap.astype(np.int64))
    time_ -= np.repeat(time_[first] - gap[first].astype(np.int64), counts)
    order = np.lexsort((item, user))  # the official file is sorted by user, then movie
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pa.table({"userId": user[order], "movieId": item[order], "rating": rating[order],
                      "timestamp": time_[order]})
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none"))
    return {"rows": rows, "users": users, "items": int(len(np.unique(item))), "csv_mb": round(path.stat().st_size / 2**20, 1)}


def _cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    """This process's peak resident memory. Read from VmHWM: getrusage's ru_maxrss survives
    exec, so a child would report the benchmark parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(task: str, csv: str, out: str) -> None:
    """Run one measured task in this (fresh) process and print its JSON."""
    if task == "read":
        import pyarrow.csv as pacsv

        start, cpu = time.perf_counter(), _cpu_s()
        table = pacsv.read_csv(csv)
        seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu
        print(json.dumps({"seconds": seconds, "cpu_s": cpu, "rows": table.num_rows, "peak_rss_mb": _peak_rss_mb()}))
        return
    from recbole_session.convert import convert, recipe_names

    recipe_names()  # imports the recipe modules
    baseline = _peak_rss_mb()
    start, cpu = time.perf_counter(), _cpu_s()
    folder = convert("ml-20m", raw=csv, out=out, force=True, verbose=False)
    seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu
    stats = json.loads((folder / "ml-20m.stats.json").read_text())
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_rss_mb": _peak_rss_mb(), "baseline_rss_mb": baseline,
                      "out_rows": stats["rows"], "out_users": stats["users"], "out_items": stats["items"]}))


def measure(task: str, csv: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", task, str(csv), str(out)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        sys.exit(f"{task} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--keep", help="generate into this folder and keep it, reusing a file of the "
                                       "same size made there before (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure read and convert this many times (alternating); report the medians")
    parser.add_argument("--no-write", action="store_true",
                        help="print the JSON line only (no benchmarks/results/ or docs/benchmarks.md update)")
    parser.add_argument("--child", nargs=3, metavar=("TASK", "CSV", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="convert-bench-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        csv, made = folder / "ratings.csv", folder / "sizes.json"
        start = time.perf_counter()
        if args.keep and made.is_file() and json.loads(made.read_text())["rows"] == args.rows:
            sizes = json.loads(made.read_text())  # generated by an earlier --keep run
        else:
            sizes = generate(csv, args.rows)
            made.write_text(json.dumps(sizes))
        print(f"{csv} ({sizes}) ready in {time.perf_counter() - start:.1f} s", flush=True)
        os.sync()  # the file is written out and then in the page cache for both measurements
        with open(csv, "rb") as fh:
            while fh.read(1 << 24):
                pass
        load_before = os.getloadavg()[0]
        reads, convs = [], []
        for _ in range(args.repeat):
            reads.append(measure("read", csv, folder / "out"))
            convs.append(measure("convert", csv, folder / "out"))
        load_after = os.getloadavg()[0]

        def median(runs: list[dict], key: str) -> float:
            return statistics.median(r[key] for r in runs)

        conv = convs[-1]
        result = {
            "convert_s": round(median(convs, "seconds"), 2), "read_only_s": round(median(reads, "seconds"), 2),
            "ratio": round(median(convs, "seconds") / median(reads, "seconds"), 2),
            "ratios": [round(c["seconds"] / r["seconds"], 2) for c, r in zip(convs, reads)],
            "convert_cpu_s": round(median(convs, "cpu_s"), 2), "read_only_cpu_s": round(median(reads, "cpu_s"), 2),
            "cpu_ratio": round(median(convs, "cpu_s") / median(reads, "cpu_s"), 2),
            "peak_rss_mb": round(max(c["peak_rss_mb"] for c in convs)),
            "baseline_rss_mb": round(conv["baseline_rss_mb"]), "read_peak_rss_mb": round(max(r["peak_rss_mb"] for r in reads)),
            **sizes, "out_rows": conv["out_rows"], "out_users": conv["out_users"], "out_items": conv["out_items"],
            "cpus": os.cpu_count(), "repeat": args.repeat, "load_before": round(load_before, 1),
            "load_after": round(load_after, 1), "date": datetime.date.today().isoformat(),
        }
        if not args.no_write:
            write_results(result)
        print(json.dumps(result))


def write_results(result: dict) -> None:
    """Keep ``result`` under its row count and write the table of every row count measured."""
    from recbole_session.files import update_section, write_atomic

    store = RESULTS / "convert.json"
    runs = json.loads(store.read_text()) if store.is_file() else {}
    runs[str(result["rows"])] = result
    write_atomic(store, json.dumps(runs, indent=2, sort_keys=True) + "\n")
    rows = ["| rows | `convert_s` | `read_only_s` | ratio (each run) | CPU ratio | peak RSS MB (after imports) "
            "| output users / rows | CPUs, load before / after | date |",
            "|---|---|---|---|---|---|---|---|---|"]
    for _, r in sorted(runs.items(), key=lambda kv: int(kv[0])):
        rows.append(f"| {r['rows']:,} (x{r['repeat']}) | {r['convert_s']} | {r['read_only_s']} | "
                    f"{r['ratio']} ({', '.join(map(str, r['ratios']))}) | {r['cpu_ratio']} | "
                    f"{r['peak_rss_mb']:,} ({r['baseline_rss_mb']:,}) | {r['out_users']:,} / {r['out_rows']:,} | "
                    f"{r['cpus']}, {r['load_before']} / {r['load_after']} | {r['date']} |")
    table = "\n".join(rows)
    body = (
        "### Converter speed (`benchmarks/convert.py`)\n\n"
        "The `ml-20m` recipe on a generated ML-20M-shaped `ratings.csv` against a bare "
        "`pyarrow.csv.read_csv` of the same file, each in a fresh process, medians of the runs "
        "(`--repeat`, alternating). Goal: ratio <= 2.5 at 2M rows. The bare read uses every core, "
        "the session logic is single-threaded numpy (the writer formats on threads), so the ratio "
        "grows with the core count; the CPU ratio compares the work done. The load average shows "
        "what else ran on the machine.\n\n" + table
    )
    write_atomic(RESULTS / "convert.md", "# Converter speed\n\n" + table + "\n")
    update_section(DOCS, "convert", body, title="# Benchmarks")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
