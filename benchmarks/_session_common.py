"""Shared ground of the session-based benchmarks (``session_based.py``, ``sriem_variants.py``):
the data (a converted session-based dataset, or the synthetic DIGINETICA-shaped one), one
training protocol for every row, seeds through ``run_seeds``, per-session values for paired
tests, and the output files (a table under ``benchmarks/results/`` and a section of
``docs/benchmarks.md``)."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from scipy.stats import ttest_rel

# this checkout's package (not another installed copy) and the test data generator
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from session_data import SessionShape, contract_keys_for, write_session_benchmark  # noqa: E402

import recbole_session  # noqa: E402, F401  (shims and registration)
from recbole_session import checkpoint  # noqa: E402
from recbole_session.files import update_section, write_atomic  # noqa: E402
from recbole_session.seeds import run_seeds  # noqa: E402

SYNTHETIC = "diginetica-synth"
RESULTS = REPO / "benchmarks" / "results"
DOCS = REPO / "docs" / "benchmarks.md"
DOCS_TITLE = "# Benchmarks\n\nWritten by the benchmark scripts, one marked section each."
METRICS = ("recall@20", "mrr@20")


def add_data_args(parser: argparse.ArgumentParser, training: bool = True) -> None:
    """The data and protocol options every session-based benchmark shares (``training``: the
    seeds and the epoch budget too)."""
    parser.add_argument("--dataset", default=None, help="a converted session-based dataset")
    parser.add_argument("--data-path", default=None, help="the data_path holding --dataset")
    parser.add_argument("--sessions", type=int, default=4000, help="synthetic sessions (default 4000)")
    parser.add_argument("--items", type=int, default=1000, help="synthetic items (default 1000)")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch of every row (default 128)")
    parser.add_argument("--eval-batch-size", type=int, default=1024)
    parser.add_argument("--embedding-size", type=int, default=200, help="d of every row (default 200)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    if training:
        parser.add_argument("--seeds", type=int, default=3, help="seeds per row (default 3)")
        parser.add_argument("--epochs", type=int, default=20, help="epoch budget of every row (default 20)")
        parser.add_argument("--stopping-step", type=int, default=3,
                            help="RecBole's stopping_step: stop after this many + 1 epochs without a better "
                                 "validation score (default 3)")
        parser.add_argument("--cache", default=None,
                            help="folder keeping each finished row (and its checkpoints): a rerun, or another "
                                 "script asking for the same row, reads it instead of training again")


def check_data_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Bad options end the script with exit code 2 and one line (argparse's ``error``)."""
    if bool(args.dataset) != bool(args.data_path):
        parser.error("--dataset and --data-path go together")
    if args.dataset:
        folder = Path(args.data_path) / args.dataset
        missing = [p for p in ("train", "valid", "test") if not (folder / f"{args.dataset}.{p}.inter").is_file()]
        if missing:
            parser.error(
                f"--data-path {args.data_path}: no {args.dataset}.{missing[0]}.inter in {folder} "
                "(convert it first with python -m recbole_session.convert)"
            )
    for name in ("seeds", "epochs", "repeats", "batch_size", "eval_batch_size", "embedding_size", "threads"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if getattr(args, "stopping_step", 1) < 1:
        parser.error(f"--stopping-step must be at least 1, got {args.stopping_step}")


@contextlib.contextmanager
def session_data(args: argparse.Namespace) -> Iterator[tuple[str, str, dict | None, Path]]:
    """``(dataset, data_path, synthetic stats or None, workdir)``; the working directory is a
    temporary folder for the duration (RecBole writes ``./log`` and ``./log_tensorboard``)."""
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.dataset:
            dataset, data_path, stats = args.dataset, str(Path(args.data_path).resolve()), None
        else:
            shape = SessionShape(n_sessions=args.sessions, n_items=args.items)
            stats = write_session_benchmark(workdir / "data", SYNTHETIC, shape)
            dataset, data_path = SYNTHETIC, str(workdir / "data")
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            yield dataset, data_path, stats, workdir
        finally:
            os.chdir(cwd)


def protocol(args: argparse.Namespace, dataset: str, data_path: str, workdir: Path) -> dict[str, Any]:
    """The config every row shares: budget, batch, d, selection rule (best validation MRR@20),
    full ranking over all items."""
    d = args.embedding_size
    return {
        **contract_keys_for(dataset),
        "data_path": data_path,
        "checkpoint_dir": str(workdir / "saved"),
        "epochs": getattr(args, "epochs", 1),
        "stopping_step": getattr(args, "stopping_step", 1),  # the speed benchmark does not fit
        "train_batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "embedding_size": d,
        "hidden_size": d,  # the GRU of NARM and GRU4Rec
        "metrics": ["Recall", "MRR"],
        "topk": [10, 20],
        "valid_metric": "MRR@20",
        "eval_protocols": ["full"],
        "show_progress": False,
        "state": "WARNING",
        "use_gpu": False,
    }


def per_session(entry: dict[str, Any], metric: str) -> dict[str, float]:
    """Per-row test values (one row per session prefix) averaged per session."""
    rows: dict[str, list[float]] = defaultdict(list)
    for session, value in zip(entry["users"], entry["per_user"][f"full/{metric}"]):
        rows[session].append(value)
    return {session: float(np.mean(values)) for session, values in rows.items()}


def _yaml_defaults(model: str) -> dict[str, Any]:
    path = REPO / "properties" / "model" / f"{model}.yaml"
    if not path.is_file():  # RecBole's own models: their defaults are RecBole's
        return {}
    return yaml.safe_load(path.read_text()) or {}


def row_key(model: str, config: dict[str, Any], seeds: int) -> str:
    """A row's identity in the cache: the model, the seeds and every setting that differs from
    the model's yaml (so a row asking for the yaml's own value explicitly is the same row)."""
    defaults = _yaml_defaults(model)
    settings = {k: v for k, v in config.items()
                if k != "checkpoint_dir" and not (k in defaults and defaults[k] == v)}
    text = json.dumps({"model": model, "seeds": seeds, "config": settings}, sort_keys=True, default=str)
    return f"{model}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def train_seeds(model: str, dataset: str, config: dict[str, Any], seeds: int, tag: str,
                cache: str | None = None) -> dict[str, Any]:
    """One row: ``model`` trained and tested once per seed 1..``seeds`` (RecBole's Trainer,
    the best validation epoch tested). Returns the per-seed test values, their mean and sample
    std, the best (tested) epoch of each seed, per-session values averaged over the seeds,
    parameters and wall seconds. With ``cache``, a finished row is kept there (checkpoints
    included) and read back by any later call asking for the same row."""
    key = row_key(model, config, seeds)
    stored = Path(cache) / f"{key}.json" if cache else None
    if stored is not None and stored.is_file():
        row = json.loads(stored.read_text())
        print(f"{tag}: read from {stored}", flush=True)
        return row
    start = time.perf_counter()
    folder = Path(cache) / key if cache else Path(config["checkpoint_dir"]) / tag
    config = {**config, "checkpoint_dir": str(folder)}
    result = run_seeds(model, dataset, list(range(1, seeds + 1)), config_dict=config)
    seconds = time.perf_counter() - start
    saved = json.loads(Path(result["results_file"]).read_text())["per_user"]["test"]
    model_files = [run["model_file"] for run in result["runs"]]
    row: dict[str, Any] = {"model": model, "n_params": int(result["runs"][0]["n_params"]), "seconds": seconds,
                           "model_files": model_files,
                           # 0-based index of the epoch tested (RecBole saves the best one)
                           "best_epochs": [int(checkpoint.load(f)["epoch"]) for f in model_files]}
    for metric in METRICS + ("recall@10", "mrr@10"):
        values = [float(run["test_result"][metric]) for run in result["runs"]]
        row[metric] = {"runs": values, "mean": statistics.mean(values),
                       "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    row["sessions"] = {metric: per_session(saved, metric) for metric in METRICS}
    if stored is not None:
        write_atomic(stored, json.dumps(row))
    return row


def converged(row: dict[str, Any], epochs: int, stopping_step: int) -> bool:
    """Whether early stopping ended every seed of the row before the epoch budget did (its best
    epoch was followed by ``stopping_step`` + 1 epochs without a better validation score)."""
    return all(best + stopping_step + 1 < epochs for best in row["best_epochs"])


def epochs_cell(row: dict[str, Any]) -> str:
    """The tested epochs of the seeds, 1-based."""
    return ", ".join(str(best + 1) for best in row["best_epochs"])


def paired(a: dict[str, Any], b: dict[str, Any], metric: str) -> dict[str, float]:
    """Paired t-test of two rows on their per-session values (means over seeds)."""
    sessions = sorted(a["sessions"][metric])
    if sorted(b["sessions"][metric]) != sessions:
        raise ValueError("the two rows were tested on different sessions")
    x = np.array([a["sessions"][metric][s] for s in sessions])
    y = np.array([b["sessions"][metric][s] for s in sessions])
    test = ttest_rel(x, y)
    return {"diff": float((x - y).mean()), "t": float(test.statistic), "p": float(test.pvalue),
            "sessions": len(sessions)}


def cell(row: dict[str, Any], metric: str) -> str:
    return f"{100 * row[metric]['mean']:.2f} ± {100 * row[metric]['std']:.2f}"


def data_line(args: argparse.Namespace, dataset: str, stats: dict | None) -> str:
    if stats:
        return (f"synthetic DIGINETICA-shaped sessions (`tests/session_data.py`, {args.sessions} sessions, "
                f"{stats['items']} items; train/valid/test rows {stats['train']['rows']}/"
                f"{stats['valid']['rows']}/{stats['test']['rows']}): they only check that everything runs")
    return f"`{dataset}` (converted by `python -m recbole_session.convert {dataset}`)"


def protocol_line(args: argparse.Namespace) -> str:
    return (f"{args.seeds} seeds per row (mean ± sample std over seeds); every row: batch {args.batch_size}, "
            f"d = {args.embedding_size} (embedding and GRU hidden size), at most {args.epochs} epochs, early "
            f"stopping after {args.stopping_step + 1} epochs without a better validation MRR@20, the best "
            f"validation epoch tested, full ranking over all items; torch {torch.__version__}, "
            f"{args.threads} thread(s), CPU. Metrics in %.")


def command_line() -> str:
    """This script's command line, local folders replaced by placeholders."""
    words, hidden = [f"python benchmarks/{Path(sys.argv[0]).name}"], {"--data-path": "DIR", "--cache": "CACHE", "--out": "FILE"}
    args = iter(sys.argv[1:])
    for word in args:
        words.append(word)
        if word in hidden:
            next(args, None)
            words.append(hidden[word])
    return " ".join(words)


def write_outputs(table: Path, markdown: str, section: str) -> None:
    """The table file, and this script's section of ``docs/benchmarks.md``: the table's title
    as a heading, the command that made it, then the table and its notes."""
    write_atomic(table, markdown)
    title, _, rest = markdown.partition("\n")
    table = table.resolve()
    shown = table.relative_to(REPO) if table.is_relative_to(REPO) else table.name
    body = (f"### {title.lstrip('# ')} (`benchmarks/{Path(sys.argv[0]).name}`)\n\n"
            f"`{command_line()}` (table: `{shown}`)\n{rest}")
    update_section(DOCS, section, body, title=DOCS_TITLE)
    print(f"wrote {table} and the '{section}' section of {DOCS}")


def load_line() -> str:
    return "load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
