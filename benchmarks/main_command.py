"""The README's main command, timed as a new user runs it, against RecBole's SASRec and BERT4Rec
trained to convergence with their own defaults.

Runs ``python run_recbole_session.py --model=SessionBERT4Rec --dataset=ml-100k`` (plus
``--seed=k``) in a fresh folder once per seed, as a subprocess (dataset conversion on first use
included), and records its wall time, its CPU time (user + system, all threads) and its peak
RSS, the machine's load, and the last lines it prints. The baselines are
``run_recbole_session.py --model=SASRec|BERT4Rec --dataset=ml-100k --seeds=1,2,3`` with
RecBole's defaults (epochs 300, early stop after 10 validations, batch 2048, Adam, full-ranking
validation); they take hours on 2 CPU cores, so their seeds files can be given
(``--baselines FILE FILE``) or trained here (``--run-baselines``). Test metrics are compared
under the three protocols with paired t-tests over test users
(``recbole_session.compare.paired_tests``). Writes ``benchmarks/results/main_command.md`` and a
section of ``docs/benchmarks.md``; the last stdout line is one JSON object.

    python benchmarks/main_command.py --seeds 3 --baselines SASRec.results.json BERT4Rec.results.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recbole_session.compare import paired_tests  # noqa: E402
from recbole_session.evaluation.results import load_results, save_seed_results  # noqa: E402
from recbole_session.files import update_section, write_atomic  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["run_recbole_session.py", "--model=SessionBERT4Rec", "--dataset=ml-100k"]
KEYS = ["test/random100/ndcg@10", "test/popular100/ndcg@10", "test/full/ndcg@10", "test/full/recall@10"]


def timed(cmd: list[str], cwd: Path) -> dict:
    """Run ``cmd``; wall seconds, CPU seconds and peak RSS (MB) of the child, its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mb": round(after.ru_maxrss / 1024),
            "output": proc.stdout + proc.stderr}


def newest_results(folder: Path, model: str) -> Path:
    files = sorted((folder / "log" / model).glob("*.results.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise SystemExit(f"no results file under {folder / 'log' / model}")
    return files[-1]


def mean_std(data: dict, key: str) -> str:
    return f"{data['mean'][key]:.4f} ± {data['std'][key]:.4f}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--baselines", nargs="*", default=[], help="seeds results files of SASRec / BERT4Rec")
    parser.add_argument("--baseline-notes", nargs="*", default=[],
                        help="how each --baselines file was trained (default: RecBole defaults to convergence)")
    parser.add_argument("--run-baselines", action="store_true", help="train the baselines here (hours)")
    parser.add_argument("--work", default=None, help="folder to run in (default: a new temporary one)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="main-command-"))
    work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    runs, results = [], []
    for seed in range(1, args.seeds + 1):
        folder = work / f"seed{seed}"
        folder.mkdir(exist_ok=True)
        run = timed([sys.executable, str(ROOT / COMMAND[0]), *COMMAND[1:], f"--seed={seed}"], folder)
        run["load_after"] = round(os.getloadavg()[0], 1)
        run["results_file"] = str(newest_results(folder, "SessionBERT4Rec"))
        run["last_lines"] = [line for line in run.pop("output").splitlines() if line.strip()][-4:]
        runs.append(run)
        results.append({**json.loads(Path(run["results_file"]).read_text()), "results_file": run["results_file"]})
        print(f"seed {seed}: {run['wall_s']:.0f} s wall, {run['cpu_s']:.0f} s CPU, peak RSS "
              f"{run['peak_rss_mb']} MB, load {run['load_after']}", flush=True)
    seeds = list(range(1, args.seeds + 1))
    ours_file = save_seed_results(results, seeds, "SessionBERT4Rec", "ml-100k", work / "SessionBERT4Rec-main")
    ours = json.loads(ours_file.read_text())

    baselines = {}
    files = list(args.baselines)
    if args.run_baselines:
        for model in ("SASRec", "BERT4Rec"):
            folder = work / model
            folder.mkdir(exist_ok=True)
            run = timed([sys.executable, str(ROOT / COMMAND[0]), f"--model={model}", "--dataset=ml-100k",
                         "--seeds=" + ",".join(map(str, seeds))], folder)
            files.append(str(sorted((folder / "log" / model).glob("*seeds*.results.json"))[-1]))
    notes = list(args.baseline_notes) + ["RecBole defaults to convergence"] * len(files)
    for path, note in zip(files, notes):
        data = json.loads(Path(path).read_text())
        tests = {r["key"]: r for r in paired_tests(load_results(path), load_results(ours_file), "test")}
        baselines[data["model"]] = {"file": path, "data": data, "tests": tests, "note": note}

    walls = [r["wall_s"] for r in runs]
    cpus = [r["cpu_s"] for r in runs]
    lines = [
        f"Measured {datetime.date.today().isoformat()} by `python benchmarks/main_command.py --seeds {args.seeds}`: "
        f"`python {' '.join(COMMAND)}` (plus `--seed=k`) in a fresh folder, dataset conversion included, on "
        f"{os.cpu_count()} CPU cores shared with other work (load average {load_start[0]:.1f} at the start, "
        f"{runs[-1]['load_after']} at the end).", "",
        f"- wall time per run: {', '.join(f'{w:.0f} s' for w in walls)}; CPU time (user + system, all "
        f"threads): {', '.join(f'{c:.0f} s' for c in cpus)}; peak RSS {max(r['peak_rss_mb'] for r in runs)} MB.",
        "- it prints at the end (seed 1): `" + " / ".join(runs[0]["last_lines"][-2:]).replace("`", "'") + "`", "",
        "| model | selection | N@10 Ran. | N@10 Pop. | N@10 All | R@10 All |", "|---|---|---|---|---|---|",
        "| SessionBERT4Rec, main command | valid N@10 random-100 | " + " | ".join(mean_std(ours, k) for k in KEYS) + " |",
    ]
    for model, entry in baselines.items():
        lines.append(f"| {model}, {entry['note']} | valid N@10 all items | "
                     + " | ".join(mean_std(entry["data"], k) for k in KEYS) + " |")
    lines += ["", "Paired t-tests over test users (per-user values averaged over seeds), main command − baseline:", ""]
    for model, entry in baselines.items():
        parts = [f"{k.split('/', 1)[1]} {entry['tests'][k.split('/', 1)[1]]['diff']:+.4f} "
                 f"(p {entry['tests'][k.split('/', 1)[1]]['p']:.3g})" for k in KEYS]
        lines.append(f"- vs {model}: " + ", ".join(parts))
    body = "\n".join(lines) + "\n"
    write_atomic(ROOT / "benchmarks" / "results" / "main_command.md", "# The README's main command\n\n" + body)
    update_section(ROOT / "docs" / "benchmarks.md", "main_command", "### The README's main command\n\n" + body,
                   title="# Benchmarks")
    result = {"seeds": seeds, "wall_s": walls, "cpu_s": cpus, "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
              "load_start": round(load_start[0], 1),
              "ndcg10_all": round(ours["mean"]["test/full/ndcg@10"], 4),
              **{f"{m.lower()}_ndcg10_all": round(e["data"]["mean"]["test/full/ndcg@10"], 4) for m, e in baselines.items()},
              **{f"p_vs_{m.lower()}": round(e["tests"]["full/ndcg@10"]["p"], 4) for m, e in baselines.items()}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
