"""Shared ground of the session-based benchmarks (``session_based.py``, ``sriem_variants.py``):
the data (a converted session-based dataset, or the synthetic DIGINETICA-shaped one), one
training protocol for every row, seeds through ``run_seeds`` (each seed kept on its own in the
cache, under a key of its settings and its code), per-row test values for the hierarchical
bootstrap (:mod:`recbole_session.evaluation.stats`, a test session as the cluster), and the
output files (a table under ``benchmarks/results/`` and a section of
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

# this checkout's package (not another installed copy) and the test data generator
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from session_data import SessionShape, contract_keys_for, write_session_benchmark  # noqa: E402

import recbole_session  # noqa: E402, F401  (shims and registration)
from recbole_session import checkpoint  # noqa: E402
from recbole_session.evaluation.results import environment  # noqa: E402
from recbole_session.evaluation.stats import holm, paired_difference  # noqa: E402
from recbole_session.files import update_section, write_atomic  # noqa: E402
from recbole_session.reproduce.runner import code_key  # noqa: E402
from recbole_session.seeds import run_seeds  # noqa: E402

SYNTHETIC = "diginetica-synth"
RESULTS = REPO / "benchmarks" / "results"
DOCS = REPO / "docs" / "benchmarks.md"
DOCS_TITLE = "# Benchmarks\n\nWritten by the benchmark scripts, one marked section each."
METRICS = ("recall@20", "mrr@20")
ALL_METRICS = METRICS + ("recall@10", "mrr@10")


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


def _yaml_defaults(model: str) -> dict[str, Any]:
    path = REPO / "properties" / "model" / f"{model}.yaml"
    if not path.is_file():  # RecBole's own models: their defaults are RecBole's
        return {}
    return yaml.safe_load(path.read_text()) or {}


def seed_key(model: str, config: dict[str, Any]) -> str:
    """A seed's identity in the cache, without the seed: the model, every setting that differs
    from the model's yaml (a row asking for the yaml's own value explicitly is the same row), and
    the code that trains it (:func:`~recbole_session.reproduce.runner.code_key`: a cached seed of
    older code is not read into a table of newer code)."""
    defaults = _yaml_defaults(model)
    settings = {k: v for k, v in config.items()
                if k != "checkpoint_dir" and not (k in defaults and defaults[k] == v)}
    text = json.dumps({"model": model, "config": settings}, sort_keys=True, default=str)
    return f"{model}-{hashlib.sha256(text.encode()).hexdigest()[:16]}-{code_key(model)}"


def _train_seed(model: str, dataset: str, config: dict[str, Any], seed: int) -> dict[str, Any]:
    """One seed through ``run_seeds`` (RecBole's Trainer, the best validation epoch tested):
    its test values, per test row (a session prefix) and in all, with the time it took."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_seeds(model, dataset, [seed], config_dict=config)
    run = result["runs"][0]
    saved = json.loads(Path(result["results_file"]).read_text())["per_user"]["test"]
    return {"seed": seed, "n_params": int(run["n_params"]), "seconds": time.perf_counter() - wall,
            "cpu_seconds": time.process_time() - cpu, "model_file": run["model_file"],
            # 0-based index of the epoch tested (RecBole saves the best one)
            "best_epoch": int(checkpoint.load(run["model_file"])["epoch"]),
            "test": {metric: float(run["test_result"][metric]) for metric in ALL_METRICS},
            "sessions": [str(user) for user in saved["users"]],
            "per_row": {metric: [float(v) for v in saved["per_user"][f"full/{metric}"]] for metric in METRICS},
            "environment": environment()}


def train_seeds(model: str, dataset: str, config: dict[str, Any], seeds: int, tag: str,
                cache: str | None = None) -> dict[str, Any]:
    """One row: ``model`` trained and tested once per seed 1..``seeds``. Returns the per-seed
    test values, their mean and sample std, the best (tested) epoch of each seed, each seed's
    per-row values (``per_seed``), parameters, wall and CPU seconds. With ``cache``, each
    finished seed is kept there (checkpoint included) and read back by any later call asking for
    the same seed of the same row and code: an interrupted table resumes at the seed, and more
    seeds add to a row."""
    key = seed_key(model, config)
    seeds_done = []
    for seed in range(1, seeds + 1):
        stored = Path(cache) / f"{key}-seed{seed}.json" if cache else None
        if stored is not None and stored.is_file():
            print(f"{tag}, seed {seed}: read from {stored}", flush=True)
            seeds_done.append(json.loads(stored.read_text()))
            continue
        folder = Path(cache) / f"{key}-seed{seed}" if cache else Path(config["checkpoint_dir"]) / tag
        entry = _train_seed(model, dataset, {**config, "checkpoint_dir": str(folder)}, seed)
        print(f"{tag}, seed {seed}: test MRR@20 {entry['test']['mrr@20']:.4f}, {entry['seconds']:.0f} s", flush=True)
        if stored is not None:
            write_atomic(stored, json.dumps(entry))
        seeds_done.append(entry)
    row: dict[str, Any] = {
        "model": model, "n_params": seeds_done[0]["n_params"],
        "seconds": sum(e["seconds"] for e in seeds_done), "cpu_seconds": sum(e["cpu_seconds"] for e in seeds_done),
        "model_files": [e["model_file"] for e in seeds_done], "best_epochs": [e["best_epoch"] for e in seeds_done],
        "per_seed": [{"sessions": e["sessions"], **e["per_row"]} for e in seeds_done],
        "environment": seeds_done[-1]["environment"],
    }
    for metric in ALL_METRICS:
        values = [e["test"][metric] for e in seeds_done]
        row[metric] = {"runs": values, "mean": statistics.mean(values),
                       "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    return row


def converged(row: dict[str, Any], epochs: int, stopping_step: int) -> bool:
    """Whether early stopping ended every seed of the row before the epoch budget did (its best
    epoch was followed by ``stopping_step`` + 1 epochs without a better validation score)."""
    return all(best + stopping_step + 1 < epochs for best in row["best_epochs"])


def epochs_cell(row: dict[str, Any]) -> str:
    """The tested epochs of the seeds, 1-based."""
    return ", ".join(str(best + 1) for best in row["best_epochs"])


def paired(a: dict[str, Any], b: dict[str, Any], metric: str) -> dict[str, Any]:
    """Row ``a`` minus row ``b`` on ``metric``: the hierarchical bootstrap over their paired seeds
    and the test sessions as clusters (a session's prefixes are drawn together), with its 95 %
    interval, p and verdict (:func:`~recbole_session.evaluation.stats.paired_difference`)."""
    if len(a["per_seed"]) != len(b["per_seed"]):
        raise ValueError(f"{len(a['per_seed'])} seeds against {len(b['per_seed'])}: pair the same seeds")
    for x, y in zip(a["per_seed"], b["per_seed"]):
        if x["sessions"] != y["sessions"]:
            raise ValueError("the two rows were tested on different test rows")
    test = paired_difference([seed[metric] for seed in b["per_seed"]], [seed[metric] for seed in a["per_seed"]],
                             [seed["sessions"] for seed in a["per_seed"]])
    return {**test.to_json(), "sessions": test.users}


def with_holm(tests: dict[Any, dict[str, Any]]) -> None:
    """Add ``p_holm`` to every test of a table (Holm over all of them: one family per table)."""
    keys = list(tests)
    for key, adjusted in zip(keys, holm([tests[k]["p"] for k in keys])):
        tests[key]["p_holm"] = adjusted


def difference_cell(test: dict[str, Any]) -> str:
    """``+0.41 [-0.10, +0.93]`` in points (metrics in %)."""
    return f"{100 * test['diff']:+.2f} [{100 * test['ci_low']:+.2f}, {100 * test['ci_high']:+.2f}]"


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
