"""Per-epoch training time and test time of RecBole's SRGNN and NARM against SRIEM.

Same data, same process, same settings (embedding size, batch sizes, threads); the models'
epochs alternate within each repetition (the order rotates), and the medians are compared. The
paper (Table 3) measured SR-GNN 3.12x (YOOCHOOSE) and 2.56x (DIGINETICA) slower than SR-IEM
in training. Training time is one pass of RecBole's ``Trainer._train_epoch`` over the training
rows; test time is one full-ranking ``Trainer.evaluate`` over the test rows.

    python benchmarks/sriem_speed.py                      # synthetic DIGINETICA-shaped data
    python benchmarks/sriem_speed.py --sessions 20000     # bigger
    python benchmarks/sriem_speed.py --dataset diginetica --data-path atomic_files

The last line printed is one JSON object: ``ratio`` = SRGNN / SRIEM per-epoch training time,
``test_ratio`` the same for test time, ``narm_ratio`` / ``narm_test_ratio`` NARM / SRIEM, and
the median seconds per model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

# this checkout's package (not another installed copy) and the test data generator
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from recbole.data import data_preparation  # noqa: E402
from recbole.utils import init_seed  # noqa: E402
from session_data import SessionShape, contract_keys_for, write_session_benchmark  # noqa: E402

import recbole_session  # noqa: E402, F401  (shims and registration)
from recbole_session.quick_start import make_config  # noqa: E402
from recbole_session.utils import create_dataset, get_model, get_trainer  # noqa: E402

MODELS = ("SRGNN", "SRIEM", "NARM")
SYNTHETIC = "diginetica-synth"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sessions", type=int, default=4000, help="synthetic sessions (default 4000)"
    )
    parser.add_argument("--items", type=int, default=1000, help="synthetic items (default 1000)")
    parser.add_argument("--dataset", default=None, help="a converted session-based dataset instead")
    parser.add_argument("--data-path", default=None, help="data_path holding --dataset")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per model")
    parser.add_argument(
        "--embedding-size", type=int, default=200, help="d for every model (paper: 200)"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="training batch (paper: 128)")
    parser.add_argument("--eval-batch-size", type=int, default=512)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)"
    )
    return parser.parse_args(argv)


def build(model: str, dataset: str, data_path: str, args, workdir: Path):
    """Config, dataloaders, model and RecBole trainer of one model."""
    d = args.embedding_size
    config = make_config(
        model,
        dataset,
        config_dict={
            **contract_keys_for(dataset),
            "data_path": data_path,
            "checkpoint_dir": str(workdir / "saved"),
            "embedding_size": d,
            "hidden_size": d,  # NARM's GRU
            "train_batch_size": args.batch_size,
            "eval_batch_size": args.eval_batch_size,
            "metrics": ["Recall", "MRR"],
            "topk": [20],
            "valid_metric": "MRR@20",
            "show_progress": False,
            "state": "WARNING",
            "use_gpu": False,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    net = get_model(model)(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], model)(config, net)
    trainer.eval_collector.data_collect(train_data)
    return trainer, train_data, test_data


def measure(args) -> dict:
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.dataset:
            dataset, data_path, stats = args.dataset, str(Path(args.data_path).resolve()), None
        else:
            shape = SessionShape(n_sessions=args.sessions, n_items=args.items)
            stats = write_session_benchmark(workdir / "data", SYNTHETIC, shape)
            dataset, data_path = SYNTHETIC, str(workdir / "data")
        runs = {model: build(model, dataset, data_path, args, workdir) for model in MODELS}
        train_s = {model: [] for model in MODELS}
        test_s = {model: [] for model in MODELS}
        for rep in range(args.repeats):
            order = MODELS[rep % len(MODELS) :] + MODELS[: rep % len(MODELS)]
            for model in order:
                trainer, train_data, test_data = runs[model]
                start = time.perf_counter()
                trainer._train_epoch(train_data, rep)
                train_s[model].append(time.perf_counter() - start)
                start = time.perf_counter()
                trainer.evaluate(test_data, load_best_model=False)
                test_s[model].append(time.perf_counter() - start)
            print(
                f"repetition {rep + 1}/{args.repeats}: "
                + ", ".join(
                    f"{m} train {train_s[m][-1]:.2f}s test {test_s[m][-1]:.2f}s" for m in MODELS
                ),
                flush=True,
            )
        train_rows = len(runs["SRIEM"][1].dataset)
        test_rows = len(runs["SRIEM"][2].dataset)
    train = {m: statistics.median(v) for m, v in train_s.items()}
    test = {m: statistics.median(v) for m, v in test_s.items()}
    return {
        "ratio": train["SRGNN"] / train["SRIEM"],
        "test_ratio": test["SRGNN"] / test["SRIEM"],
        "narm_ratio": train["NARM"] / train["SRIEM"],
        "narm_test_ratio": test["NARM"] / test["SRIEM"],
        "train_seconds": train,
        "test_seconds": test,
        "dataset": args.dataset or SYNTHETIC,
        "train_rows": train_rows,
        "test_rows": test_rows,
        "synthetic": stats and {k: stats[k] for k in ("items", "clicks")},
        "embedding_size": args.embedding_size,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if bool(args.dataset) != bool(args.data_path):
        raise SystemExit("--dataset and --data-path go together")
    result = measure(args)
    print(f"{'model':<6} {'train s/epoch':>14} {'test s':>8}")
    for model in MODELS:
        print(
            f"{model:<6} {result['train_seconds'][model]:>14.2f} {result['test_seconds'][model]:>8.2f}"
        )
    print(
        f"SRGNN/SRIEM: training {result['ratio']:.2f}x, test {result['test_ratio']:.2f}x "
        f"(paper: 2.56x-3.12x training, 2.75x-2.89x test); "
        f"NARM/SRIEM: training {result['narm_ratio']:.2f}x, test {result['narm_test_ratio']:.2f}x"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
