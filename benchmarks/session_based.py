"""Session-based quality: SRIEM against RecBole's SRGNN, NARM, STAMP and GRU4Rec.

Every model is trained and tested by ``run_recbole_session`` (RecBole's own Trainer, full
ranking over all items, the best validation epoch by MRR@20 is tested) on the same
session-based benchmark files (SR-GNN protocol), and a Markdown table of Recall@20 and MRR@20
(and @10) is written to ``benchmarks/results/session_based_<dataset>.md``.

    python benchmarks/session_based.py                    # synthetic DIGINETICA-shaped data
    python benchmarks/session_based.py --dataset diginetica --data-path atomic_files

By default every model keeps its own settings (SRIEM: the paper's, ``properties/model/SRIEM.yaml``;
RecBole's models: RecBole's defaults); the training protocol (epochs, early stopping, batch size,
validation metric) is shared. ``--embedding-size`` gives every model the same d. The synthetic
data only checks that everything runs on data of the right shape: its figures say little about
quality on real sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

# this checkout's package (not another installed copy) and the test data generator
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from session_data import SessionShape, contract_keys_for, write_session_benchmark  # noqa: E402

import recbole_session  # noqa: E402, F401  (shims and registration)
from recbole_session.quick_start import run_recbole_session  # noqa: E402

MODELS = ("SRIEM", "SRGNN", "NARM", "STAMP", "GRU4Rec")
SYNTHETIC = "diginetica-synth"
PAPER = {  # Table 2 of the SR-IEM paper, DIGINETICA, Recall@20 / MRR@20 (%)
    "SRIEM": (52.35, 17.64),
    "SRGNN": (50.73, 17.59),
    "NARM": (49.70, 16.17),
    "STAMP": (45.64, 14.32),
    "GRU4Rec": (29.45, 8.33),
}
COLUMNS = ("recall@20", "mrr@20", "recall@10", "mrr@10")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sessions", type=int, default=4000, help="synthetic sessions (default 4000)"
    )
    parser.add_argument("--items", type=int, default=1000, help="synthetic items (default 1000)")
    parser.add_argument("--dataset", default=None, help="a converted session-based dataset instead")
    parser.add_argument("--data-path", default=None, help="data_path holding --dataset")
    parser.add_argument(
        "--models", nargs="+", default=list(MODELS), help=f"default: {' '.join(MODELS)}"
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--stopping-step", type=int, default=3, help="early stopping patience (epochs)"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="training batch (paper: 128)")
    parser.add_argument("--eval-batch-size", type=int, default=1024)
    parser.add_argument(
        "--embedding-size", type=int, default=None, help="the same d for every model"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--out",
        default=None,
        help="Markdown file (default benchmarks/results/session_based_<dataset>.md)",
    )
    return parser.parse_args(argv)


def train_and_test(model: str, dataset: str, data_path: str, args, workdir: Path) -> dict:
    config = {
        **contract_keys_for(dataset),
        "data_path": data_path,
        "checkpoint_dir": str(workdir / "saved" / model),
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "train_batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "metrics": ["Recall", "MRR"],
        "topk": [10, 20],
        "valid_metric": "MRR@20",
        "show_progress": False,
        "state": "WARNING",
        "use_gpu": False,
    }
    if args.embedding_size:
        config.update({"embedding_size": args.embedding_size, "hidden_size": args.embedding_size})
    start = time.perf_counter()
    result = run_recbole_session(model, dataset, config_dict=config)
    seconds = time.perf_counter() - start
    return {"test": dict(result["test_result"]), "n_params": result["n_params"], "seconds": seconds}


def markdown(results: dict, args, dataset: str, stats: dict | None) -> str:
    if stats:
        data = (
            f"synthetic DIGINETICA-shaped sessions (`tests/session_data.py`, {args.sessions} sessions, "
            f"{stats['items']} items, {stats['clicks']} clicks; train/valid/test rows "
            f"{stats['train']['rows']}/{stats['valid']['rows']}/{stats['test']['rows']})"
        )
    else:
        data = f"`{dataset}` from `{args.data_path}`"
    sizes = (
        f"d = {args.embedding_size} for every model"
        if args.embedding_size
        else "each model's own defaults (SRIEM: d=200, l=100)"
    )
    lines = [
        f"# Session-based next-item results: {dataset}",
        "",
        f"Data: {data}. Full ranking over all items; the epoch with the best validation MRR@20 is "
        f"tested. Up to {args.epochs} epochs, early stopping after {args.stopping_step} epochs "
        f"without improvement, batch {args.batch_size}, Adam 1e-3 (SRIEM with its step decay); "
        f"sizes: {sizes}. torch {torch.__version__}, {args.threads} thread(s).",
        "",
        "| model | Recall@20 | MRR@20 | Recall@10 | MRR@10 | parameters | train+test s | paper DIGINETICA R@20 / MRR@20 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, res in results.items():
        values = " | ".join(f"{100 * res['test'][c]:.2f}" for c in COLUMNS)
        paper = " / ".join(f"{v:.2f}" for v in PAPER[model]) if model in PAPER else "-"
        lines.append(
            f"| {model} | {values} | {res['n_params']:,} | {res['seconds']:.0f} | {paper} |"
        )
    lines += [
        "",
        "Metrics in %. The paper column is Table 2 of the SR-IEM paper on the real DIGINETICA "
        "(their baselines' own implementations), for orientation only.",
    ]
    if stats:
        lines.append(
            "The synthetic sessions follow planted topics and item-to-item transitions: they check "
            "that the pipeline runs on data of the right shape and say little about quality on real sessions."
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if bool(args.dataset) != bool(args.data_path):
        raise SystemExit("--dataset and --data-path go together")
    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.dataset:
            dataset, data_path, stats = args.dataset, str(Path(args.data_path).resolve()), None
        else:
            shape = SessionShape(n_sessions=args.sessions, n_items=args.items)
            stats = write_session_benchmark(workdir / "data", SYNTHETIC, shape)
            dataset, data_path = SYNTHETIC, str(workdir / "data")
        cwd = os.getcwd()
        os.chdir(workdir)  # RecBole writes ./log and ./log_tensorboard
        try:
            for model in args.models:
                results[model] = train_and_test(model, dataset, data_path, args, workdir)
                test = results[model]["test"]
                print(
                    f"{model}: Recall@20 {test['recall@20']:.4f} MRR@20 {test['mrr@20']:.4f} "
                    f"({results[model]['seconds']:.0f}s)",
                    flush=True,
                )
        finally:
            os.chdir(cwd)
    out = (
        Path(args.out)
        if args.out
        else REPO / "benchmarks" / "results" / f"session_based_{dataset}.md"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    temporary.write_text(markdown(results, args, dataset, stats), encoding="utf-8")
    os.replace(temporary, out)
    print(f"wrote {out}")
    print(json.dumps({m: {**r["test"], "n_params": r["n_params"]} for m, r in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
