"""Ablation of SessionBERT4Rec shaped like paper Table 2.

Trains RecBole's SASRec, RecBole's BERT4Rec and the eight switch combinations of
SessionBERT4Rec with the same epochs budget, sizes and seeds, selects each model's best epoch on
validation NDCG@10 (RecBole's full ranking), and evaluates the test users under the paper's
three protocols (random-100, popular-100, all) through
``recbole_session.evaluation.evaluate_protocols``. Where that module is missing the script says
so and reports RecBole's full ranking (= "all") only.

The table (mean over seeds, and the spread when there are several) goes to
``benchmarks/results/ablation_<dataset>.md``.

    python benchmarks/ablation.py --dataset ml-100k --epochs 10 --seeds 2020
    python benchmarks/ablation.py --paper-params     # Table 2's #params column, by formula
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import itertools
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recbole.data import data_preparation  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

import recbole_session  # noqa: E402,F401  (shims and registration)
from recbole_session.model.sequential_recommender.sessionbert4rec import (  # noqa: E402
    reference_parameter_count,
)
from recbole_session.quick_start import count_parameters, ensure_atomic_files, make_config  # noqa: E402
from recbole_session.utils import create_dataset, get_model, get_trainer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PROTOCOLS = ("random100", "popular100", "full")
COLUMNS = [(p, m) for p in PROTOCOLS for m in ("recall@10", "ndcg@10")]
PAPER_SIZES = {  # dataset: (items, max len, m, dT), paper Tables 1-2 and SPEC.md section 1
    "Steam": (4331, 15, 5, 32),
    "ML-1M": (3327, 200, 3, 16),
    "ML-20M": (12239, 100, 5, 64),
}


def variants(m: int, dt: int) -> list[tuple[str, str, dict]]:
    """(row label, model, config overrides): SASRec, BERT4Rec, then the 8 combinations."""
    rows = [("SASRec (RecBole)", "SASRec", {}), ("BERT4Rec (RecBole)", "BERT4Rec", {})]
    for st, se, te in itertools.product([False, True], repeat=3):
        label = " ".join(name for name, on in (("+ ST", st), ("+ SSE", se), ("+ TAS", te)) if on)
        rows.append((label or "SessionBERT4Rec, switches off", "SessionBERT4Rec", {
            "session_token": st, "max_session_segments": m if se else 0, "temporal_dim": dt if te else 0}))
    return rows


def paper_params_table() -> str:
    """Paper Table 2's #params column, from the reference implementation's sizes (d 256,
    4 layers), by :func:`reference_parameter_count`."""
    lines = ["| dataset | BERT4Rec | + ST | + SSE | + TSA | + ST + SSE | + ST + TSA | + SSE + TSA | + ST + SSE + TSA |",
             "|---|---|---|---|---|---|---|---|---|"]
    combos = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]
    for name, (items, max_len, m, dt) in PAPER_SIZES.items():
        counts = [reference_parameter_count(items, max_len, 256, 4, bool(st), m * se, dt * te)
                  for st, se, te in combos]
        lines.append(f"| {name} | " + " | ".join(f"{c:,}" for c in counts) + " |")
    return "\n".join(lines)


def protocol_evaluator():
    """``evaluate_protocols`` from the evaluation module, or None where it is not merged yet."""
    try:
        return importlib.import_module("recbole_session.evaluation").evaluate_protocols
    except (ImportError, AttributeError):
        return None


def train_and_evaluate(model: str, dataset: str, overrides: dict, evaluate) -> tuple[dict, int, float, int]:
    config = make_config(model, dataset, config_dict=overrides)
    ensure_atomic_files(config)
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    net = get_model(model)(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], model)(config, net)
    start = time.perf_counter()
    trainer.fit(train, valid, saved=True, show_progress=False)
    seconds = time.perf_counter() - start
    full = trainer.evaluate(test, load_best_model=True, show_progress=False)  # loads the best epoch
    if evaluate is not None:
        scores = evaluate(net, test, config, list(PROTOCOLS))
    else:
        scores = {f"full/{k}": v for k, v in full.items()}
    return scores, count_parameters(net), seconds, len(test._dataset)


def fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-path", default=None, help="data_path (default: the config's)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020])
    parser.add_argument("--regime", choices=["prefix", "per_user"], default="prefix",
                        help="SessionBERT4Rec's train_regime (RecBole's models always use prefix)")
    parser.add_argument("--max-len", type=int, default=None, help="MAX_ITEM_LIST_LENGTH (default: dataset yaml)")
    parser.add_argument("--segments", type=int, default=3, help="m when SSE is on")
    parser.add_argument("--temporal-dim", type=int, default=16, help="dT when TAS is on")
    parser.add_argument("--eval-step", type=int, default=1, help="validate every N epochs")
    parser.add_argument("--stopping-step", type=int, default=10, help="early stop after N validations without gain")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="+", default=None, help="row labels to run (default: all)")
    parser.add_argument("--out", default=None, help="output Markdown file")
    parser.add_argument("--paper-params", action="store_true", help="print Table 2's #params by formula and exit")
    args = parser.parse_args(argv)
    if args.paper_params:
        print(paper_params_table())
        return paper_params_table()
    torch.set_num_threads(args.threads)
    evaluate = protocol_evaluator()
    if evaluate is None:
        print("recbole_session.evaluation is not available: reporting RecBole's full ranking only", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="ablation-"))
    common = {"epochs": args.epochs, "eval_step": args.eval_step, "stopping_step": args.stopping_step,
              "state": "WARNING", "show_progress": False,
              "checkpoint_dir": str(workdir / "saved"), "train_regime": args.regime}
    if args.data_path:
        common["data_path"] = args.data_path
    if args.max_len:
        common["MAX_ITEM_LIST_LENGTH"] = args.max_len
    rows = [r for r in variants(args.segments, args.temporal_dim) if not args.only or r[0] in args.only]
    results: dict[str, dict[str, list[float]]] = {}
    params: dict[str, int] = {}
    seconds: dict[str, list[float]] = {}
    cwd = os.getcwd()
    os.chdir(workdir)  # RecBole writes ./log and ./log_tensorboard
    try:
        for seed in args.seeds:
            for label, model, extra in rows:
                scores, params[label], took, n_test = train_and_evaluate(
                    model, args.dataset, {**common, **extra, "seed": seed}, evaluate)
                seconds.setdefault(label, []).append(took)
                for key, value in scores.items():
                    results.setdefault(label, {}).setdefault(key, []).append(float(value))
                print(f"seed {seed} {label}: {params[label]} params, {took:.0f}s, "
                      + ", ".join(f"{p}/{m} {scores[f'{p}/{m}']:.4f}" for p, m in COLUMNS if f"{p}/{m}" in scores),
                      flush=True)
    finally:
        os.chdir(cwd)

    sizes = make_config("SessionBERT4Rec", args.dataset, config_dict=common)
    head = ["| Model | #params | R@10 Ran. | N@10 Ran. | R@10 Pop. | N@10 Pop. | R@10 All | N@10 All | train s |",
            "|---|---|---|---|---|---|---|---|---|"]
    body = [f"| {label} | {params[label]:,} | "
            + " | ".join(fmt(results[label].get(f"{p}/{m}", [])) for p, m in COLUMNS)
            + f" | {statistics.mean(seconds[label]):.0f} |" for label, _, _ in rows]
    note = [
        f"# Ablation on {args.dataset} (paper Table 2 layout)",
        "",
        f"Measured {datetime.date.today().isoformat()} by `python benchmarks/ablation.py "
        + shlex.join(argv if argv is not None else sys.argv[1:]) + "`.",
        f"Budget: {args.epochs} epochs (validation every {args.eval_step}, early stop after "
        f"{args.stopping_step} without gain), seeds {args.seeds}, best epoch on valid NDCG@10 (full ranking); "
        f"SessionBERT4Rec train_regime `{args.regime}` (RecBole's SASRec/BERT4Rec train on every prefix); "
        f"hidden {sizes['hidden_size']}, {sizes['n_layers']} layers, {sizes['n_heads']} heads, "
        f"max len {sizes['MAX_ITEM_LIST_LENGTH']}, mask ratio {sizes['mask_ratio']}; "
        f"SSE m = {args.segments}, TAS dT = {args.temporal_dim}; R@10 / N@10 over the {n_test} test users "
        f"(one hit more or less moves R@10 by {1 / n_test:.4f}); train s = wall seconds of fit on shared cores.",
        "Protocols: " + ("random-100 and popular-100 negatives and all items, from "
                         "`recbole_session.evaluation.evaluate_protocols`."
                         if evaluate is not None else
                         "only RecBole's full ranking (= All); `recbole_session.evaluation` was not "
                         "available, so the random-100 and popular-100 columns are n/a."),
        "",
    ]
    table = "\n".join(note + head + body) + "\n"
    out = Path(args.out) if args.out else RESULTS / f"ablation_{args.dataset}.md"
    write_atomic(out, table)
    print(table)
    print(f"written to {out}")
    return table


if __name__ == "__main__":
    main()
