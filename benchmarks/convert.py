"""Converter speed: the ml-20m recipe (or a UserBehavior log) against a bare pyarrow read.

``python benchmarks/convert.py [--shape ml-20m|userbehavior] [--rows N] [--keep DIR] [--repeat K]
[--chunk-rows N]`` (default: ml-20m, 20,000,000 rows).

``--shape ml-20m`` (the default) writes an ML-20M-shaped ``ratings.csv`` into a temporary folder: ~138k users at 20M rows (scaled
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

``--shape userbehavior`` writes a Taobao UserBehavior-shaped log (``tests/userbehavior_data.py``:
no header, ``user,item,category,behavior,timestamp``, ~988k users and ~4.16M items at 100M rows,
scaled with ``--rows``) and measures three things, each in a fresh process: the bare
``pyarrow.csv.read_csv``; the converter, the ``csv`` recipe with the ASARS paper's filters as it
converts the published file (``--no-header --names user,item,category,behavior,timestamp
--user-col user --item-col item --time-col timestamp --type-col behavior --preset asars``: ids as
tokens, sessions cut on the raw rows at a gap > 1 hour, items with >= 10 rows, sessions of < 2
rows dropped, users with >= 10 sessions; ``--chunk-rows`` is handed to the converter, 0 = all in
memory); and the same sessionization in DuckDB, the out-of-core engine. DuckDB rather than
Polars' streaming engine: its sorts, window functions, joins and aggregates spill to disk under a
set ``memory_limit`` (here the 8 GB goal, with 2 threads and a temp folder beside the data), so
it is an out-of-core baseline by construction, and the rule reads as SQL; Polars runs window
functions such as ``shift().over()`` in memory. DuckDB's query does what the converter does:
every row read with ids as text, rows ordered by user (text order), time and file order, a
session starting at a user's first row or after a gap > 3600 s, items with fewer than 10 rows
dropped, then sessions of fewer than 2 remaining rows, then users with fewer than 10 sessions;
it writes the same tab-separated atomic file (``user_id, item_id, timestamp`` relative to the
first kept time, ``session_id`` numbered 1.. in that order, ``dwell`` to the next row of the
session, ``event_type``), checked byte for byte against the converter's ``.inter`` (``same_output``).
The converter also writes its stats, funnel and manifest; DuckDB only the table. Without the
``duckdb`` package (``pip install duckdb``: a benchmark tool, not a dependency of the package)
the engine columns say so and the goal is not judged. Results: ``benchmarks/results/
convert_userbehavior.{json,md}`` and the ``convert_userbehavior`` section of ``docs/benchmarks.md``.
Goal (issue 29): at 100M rows, peak RSS <= 8 GB and time <= 1.5x DuckDB's.
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
SHAPES = ("ml-20m", "userbehavior")
# the UserBehavior conversion: the csv recipe as the published file needs it, ASARS's filters
UB_OPTIONS = dict(header=False, names="user,item,category,behavior,timestamp", user_col="user", item_col="item",
                  time_col="timestamp", type_col="behavior", preset="asars")
UB_NAME = "UserBehavior"
ENGINE_MEMORY_LIMIT = "8GB"  # the goal's budget, given to DuckDB as its memory_limit
ENGINE_THREADS = 2  # this machine's cores
GOAL_RSS_MB, GOAL_ENGINE_RATIO = 8 * 1024, 1.5


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


def engine_sql(csv: str, out_file: str, params: dict) -> str:
    """DuckDB's copy of the converter's ASARS sessionization (see the module docstring)."""
    gap, min_item, min_length, min_sessions = (int(params[k]) for k in (
        "session_gap", "min_item_inter", "min_session_length", "min_sessions"))
    return f"""
    COPY (
    WITH raw AS (
        SELECT "user", item, behavior, ts, row_number() OVER () AS rn
        FROM read_csv('{csv}', header = false, delim = ',',
                      columns = {{'user': 'VARCHAR', 'item': 'VARCHAR', 'category': 'VARCHAR',
                                 'behavior': 'VARCHAR', 'ts': 'BIGINT'}})),
    split AS (
        SELECT *, sum(CASE WHEN prev IS NULL OR ts - prev > {gap} THEN 1 ELSE 0 END)
                  OVER (PARTITION BY "user" ORDER BY ts, rn ROWS UNBOUNDED PRECEDING) AS sess
        FROM (SELECT *, lag(ts) OVER (PARTITION BY "user" ORDER BY ts, rn) AS prev FROM raw)),
    items AS (SELECT item FROM raw GROUP BY item HAVING count(*) >= {min_item}),
    kept AS (SELECT * FROM split SEMI JOIN items USING (item)),
    long AS (SELECT * FROM (SELECT *, count(*) OVER (PARTITION BY "user", sess) AS n FROM kept)
             WHERE n >= {min_length}),
    users AS (SELECT "user" FROM long GROUP BY "user" HAVING count(DISTINCT sess) >= {min_sessions}),
    final AS (SELECT * FROM long SEMI JOIN users USING ("user")),
    numbered AS (SELECT "user", sess, row_number() OVER (ORDER BY "user", sess) AS sid
                 FROM (SELECT DISTINCT "user", sess FROM final))
    SELECT f."user" AS "user_id:token", f.item AS "item_id:token",
           f.ts - (SELECT min(ts) FROM final) AS "timestamp:float", n.sid AS "session_id:token",
           coalesce(lead(f.ts) OVER (PARTITION BY f."user", f.sess ORDER BY f.ts, f.rn) - f.ts, 0) AS "dwell:float",
           f.behavior AS "event_type:token"
    FROM final f JOIN numbered n USING ("user", sess)
    ORDER BY f."user", f.ts, f.rn
    ) TO '{out_file}' (FORMAT csv, DELIMITER '\t', HEADER true, QUOTE '')"""


def child(task: str, csv: str, out: str) -> None:
    """Run one measured task in this (fresh) process and print its JSON."""
    if task == "engine":
        import duckdb

        from recbole_session.convert.params import merged_params

        params = merged_params("csv", UB_OPTIONS["preset"], {})
        Path(out).mkdir(parents=True, exist_ok=True)
        out_file = Path(out) / "duckdb.inter"
        start, cpu = time.perf_counter(), _cpu_s()
        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{ENGINE_MEMORY_LIMIT}'")
        con.execute(f"SET threads = {ENGINE_THREADS}")
        con.execute(f"SET temp_directory = '{Path(out) / 'duckdb.tmp'}'")
        con.execute(engine_sql(csv, str(out_file), params))
        con.close()
        seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu
        print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_rss_mb": _peak_rss_mb(),
                          "version": duckdb.__version__, "output": str(out_file)}))
        return
    if task in ("read", "read-ub"):
        import pyarrow.csv as pacsv

        # the UserBehavior file has no header
        options = pacsv.ReadOptions(autogenerate_column_names=task == "read-ub")
        start, cpu = time.perf_counter(), _cpu_s()
        table = pacsv.read_csv(csv, read_options=options)
        seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu
        print(json.dumps({"seconds": seconds, "cpu_s": cpu, "rows": table.num_rows, "peak_rss_mb": _peak_rss_mb()}))
        return
    from recbole_session.convert import convert, recipe_names

    recipe_names()  # imports the recipe modules
    baseline = _peak_rss_mb()
    start, cpu = time.perf_counter(), _cpu_s()
    if task == "convert":
        folder = convert("ml-20m", raw=csv, out=out, force=True, verbose=False)
    else:  # "convert-ub[:CHUNK_ROWS]"
        chunk = task.partition(":")[2]
        extra = {} if chunk == "" else {"chunk_rows": int(chunk)}
        folder = convert("csv", raw=csv, out=out, force=True, verbose=False, name=UB_NAME, **UB_OPTIONS, **extra)
    seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu
    stats = json.loads((folder / f"{folder.name}.stats.json").read_text())
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_rss_mb": _peak_rss_mb(), "baseline_rss_mb": baseline,
                      "out_rows": stats["rows"], "out_users": stats["users"], "out_items": stats["items"]}))


def measure(task: str, csv: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", task, str(csv), str(out)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        sys.exit(f"{task} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{task}: {result}", flush=True)
    return result


def same_bytes(a: Path, b: Path) -> bool:
    from recbole_session.files import file_digest

    return a.stat().st_size == b.stat().st_size and file_digest(a) == file_digest(b)


def main_userbehavior(args: argparse.Namespace) -> None:
    """Generate (or reuse) a UserBehavior-shaped log; measure the bare read, the converter and
    DuckDB, each ``--repeat`` times in fresh processes; report medians."""
    sys.path.insert(0, str(ROOT / "tests"))
    from userbehavior_data import write_log

    try:
        import duckdb  # noqa: F401  (only whether it is there)
        engine = True
    except ImportError:
        engine = False
        print("duckdb is not installed (pip install duckdb): the engine is not measured", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="convert-bench-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        csv, made = folder / f"{UB_NAME}.csv", folder / "sizes_userbehavior.json"
        start = time.perf_counter()
        if args.keep and made.is_file() and json.loads(made.read_text())["rows"] == args.rows:
            sizes = json.loads(made.read_text())
        else:
            sizes = write_log(csv, args.rows)
            made.write_text(json.dumps(sizes))
        print(f"{csv} ({sizes}) ready in {time.perf_counter() - start:.1f} s", flush=True)
        os.sync()
        load_before = os.getloadavg()[0]
        task = "convert-ub" + ("" if args.chunk_rows is None else f":{args.chunk_rows}")
        reads, convs, engines, same = [], [], [], None
        for _ in range(args.repeat):
            reads.append(measure("read-ub", csv, folder / "out"))
            convs.append(measure(task, csv, folder / "out"))
            if engine:
                engines.append(measure("engine", csv, folder / "out"))
                inter = folder / "out" / UB_NAME / f"{UB_NAME}.inter"
                same = same_bytes(inter, Path(engines[-1]["output"]))
                Path(engines[-1]["output"]).unlink()
        load_after = os.getloadavg()[0]

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    conv = convs[-1]
    result = {
        "shape": "userbehavior", "chunk_rows": args.chunk_rows,
        "convert_s": round(median(convs, "seconds"), 2), "convert_cpu_s": round(median(convs, "cpu_s"), 2),
        "peak_rss_mb": round(max(c["peak_rss_mb"] for c in convs)), "baseline_rss_mb": round(conv["baseline_rss_mb"]),
        "read_only_s": round(median(reads, "seconds"), 2), "read_only_cpu_s": round(median(reads, "cpu_s"), 2),
        "read_peak_rss_mb": round(max(r["peak_rss_mb"] for r in reads)),
        "engine": f"duckdb {engines[-1]['version']}" if engines else "duckdb not installed",
        "engine_s": round(median(engines, "seconds"), 2) if engines else None,
        "engine_cpu_s": round(median(engines, "cpu_s"), 2) if engines else None,
        "engine_peak_rss_mb": round(max(e["peak_rss_mb"] for e in engines)) if engines else None,
        "engine_ratio": round(median(convs, "seconds") / median(engines, "seconds"), 2) if engines else None,
        "same_output": same,
        **sizes, "out_rows": conv["out_rows"], "out_users": conv["out_users"], "out_items": conv["out_items"],
        "cpus": os.cpu_count(), "repeat": args.repeat, "load_before": round(load_before, 1),
        "load_after": round(load_after, 1), "date": datetime.date.today().isoformat(),
    }
    result["goal_met"] = (None if not engines else
                          result["peak_rss_mb"] <= GOAL_RSS_MB and result["engine_ratio"] <= GOAL_ENGINE_RATIO)
    if not args.no_write:
        write_userbehavior_results(result)
    print(json.dumps(result))


def write_userbehavior_results(result: dict) -> None:
    """Keep ``result`` under its row count and converter setting; write the table of all."""
    from recbole_session.files import update_section, write_atomic

    store = RESULTS / "convert_userbehavior.json"
    runs = json.loads(store.read_text()) if store.is_file() else {}
    runs[f"{result['rows']}:{result['chunk_rows']}"] = result
    write_atomic(store, json.dumps(runs, indent=2, sort_keys=True) + "\n")

    def n(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "**no**"
        return f"{value:,}" if isinstance(value, int) else str(value)

    rows = ["| rows | `--chunk-rows` | converter s (CPU s) | peak RSS MB | bare read s (CPU s) | read peak RSS MB "
            "| DuckDB s (CPU s) | DuckDB peak RSS MB | converter / DuckDB | same `.inter` | output users / rows "
            "| load before / after | date |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in sorted(runs.items(), key=lambda kv: (kv[1]["rows"], str(kv[1]["chunk_rows"]))):
        chunk = "default" if r["chunk_rows"] is None else n(r["chunk_rows"])
        rows.append(f"| {r['rows']:,} (x{r['repeat']}) | {chunk} | {r['convert_s']} ({r['convert_cpu_s']}) | "
                    f"{r['peak_rss_mb']:,} | {r['read_only_s']} ({r['read_only_cpu_s']}) | {r['read_peak_rss_mb']:,} | "
                    f"{n(r['engine_s'])} ({n(r['engine_cpu_s'])}) | {n(r['engine_peak_rss_mb'])} | "
                    f"{n(r['engine_ratio'])} | {n(r['same_output'])} | {r['out_users']:,} / {r['out_rows']:,} | "
                    f"{r['load_before']} / {r['load_after']} | {r['date']} |")
    table = "\n".join(rows)
    body = (
        "### Converter on a UserBehavior-shaped log (`benchmarks/convert.py --shape userbehavior`)\n\n"
        "A generated Taobao UserBehavior-shaped log (`tests/userbehavior_data.py`, ~988k users and ~4.16M "
        "items at 100M rows, scaled) converted by the `csv` recipe with the ASARS filters (`--preset asars`, "
        "event types kept), against a bare `pyarrow.csv.read_csv` of the file and the same sessionization in "
        "DuckDB (`memory_limit` 8GB, 2 threads, writing the same `.inter`; \"same `.inter`\" compares the "
        "two files byte for byte). Each in a fresh process, medians of the runs; 2 CPU cores, a shared "
        f"machine. Goal (issue 29): at 100M rows, peak RSS <= {GOAL_RSS_MB:,} MB and converter / DuckDB "
        f"<= {GOAL_ENGINE_RATIO}. `--chunk-rows`: the converter's setting (default: automatic, 0: all in "
        "memory).\n\n" + table
    )
    write_atomic(RESULTS / "convert_userbehavior.md", "# Converter on a UserBehavior-shaped log\n\n" + table + "\n")
    update_section(DOCS, "convert_userbehavior", body, title="# Benchmarks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=SHAPES, default="ml-20m",
                        help="ml-20m (ratings.csv, the ml-20m recipe) or userbehavior (Taobao's log, the csv recipe "
                             "with the ASARS filters, against DuckDB too)")
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--chunk-rows", type=int, default=None,
                        help="userbehavior: the converter's --chunk-rows (default: its own; 0: all in memory)")
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
    if args.shape == "userbehavior":
        main_userbehavior(args)
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
