"""Session-based quality: SRIEM against RecBole's SRGNN, NARM, STAMP and GRU4Rec, and V-SKNN, fairly.

Every model is trained and tested by RecBole's own Trainer on the same session-based benchmark
files (SR-GNN protocol) with the same seeds, batch size, embedding size d (also the GRU hidden
size of NARM and GRU4Rec), epoch budget and selection rule (the epoch with the best validation
MRR@20 is tested, full ranking over all items); every other setting is the model's own (SRIEM:
``properties/model/SRIEM.yaml``, RecBole's models: RecBole's defaults). SRIEM is compared with
SRGNN by a paired t-test on per-session values (a session's prefixes averaged, then the seeds).
The table goes to ``benchmarks/results/session_based_<dataset>.md``, its narrative to
``docs/benchmarks.md``; the last line printed is one JSON object.

    python -m recbole_session.convert yoochoose-sample --raw RAW_DIR --out DIR
    python benchmarks/session_based.py --dataset yoochoose-sample --data-path DIR --seeds 3
    python benchmarks/session_based.py --seeds 1 --epochs 2     # synthetic data: a quick run

``--cache DIR`` keeps every finished row there: an interrupted run resumes, and a row that
``sriem_variants.py`` also trains (SRIEM with its yaml's settings) is trained once.

``--lr-schedule`` makes the learning-rate schedule equal across rows: ``own`` (default: SRIEM
its yaml's, RecBole's models RecBole's constant rate), ``sriem`` (every row SRIEM's yaml's
schedule; RecBole's models then train with :class:`~recbole_session.trainer.ScheduledTrainer`,
chosen by :func:`recbole_session.lookup.trainer_for`) or ``none`` (every row constant, SRIEM
too). The table's recipe column states each row's optimizer, rate, weight decay, schedule,
budget, patience and selection, read from the row's resolved config and trainer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _session_common as common

from recbole_session.build import make_config
from recbole_session.cli import ArgumentParser
from recbole_session.literals import load_yaml
from recbole_session.lookup import trainer_for
from recbole_session.paths import properties_dir
from recbole_session.trainer import ScheduledTrainer

MODELS = ("SRIEM", "SRGNN", "NARM", "STAMP", "GRU4Rec", "VSKNN")
# a row's own settings on top of the shared protocol: V-SKNN learns nothing (its index is built
# with the model), so one epoch is its whole training and the shared epoch budget does not apply
ROW_OVERRIDES = {"VSKNN": {"epochs": 1}}
# --lr-schedule: each row its own schedule, SRIEM's for every row, or a constant rate for every row
SCHEDULES = ("own", "sriem", "none")
# the keys of SRIEM's yaml that make its schedule (ScheduledTrainer reads them)
SCHEDULE_KEYS = ("lr_schedule", "lr_decay_rate", "lr_decay_epochs", "lr_decay_steps", "lr_plateau_patience")
# Table 2 of the SR-IEM paper, Recall@20 / MRR@20 (%), their baselines' own implementations
PAPER = {
    "yoochoose": {"SRIEM": (71.15, 31.71), "SRGNN": (70.57, 30.94), "NARM": (68.32, 28.63),
                  "STAMP": (68.74, 29.67), "GRU4Rec": (60.64, 22.89)},
    "diginetica": {"SRIEM": (52.35, 17.64), "SRGNN": (50.73, 17.59), "NARM": (49.70, 16.17),
                   "STAMP": (45.64, 14.32), "GRU4Rec": (29.45, 8.33)},
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_args(parser)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                        help=f"default: {' '.join(MODELS)}")
    parser.add_argument("--out", default=None, help="Markdown table (default benchmarks/results/session_based_<dataset>.md)")
    parser.add_argument("--lr-schedule", default="own", choices=SCHEDULES,
                        help="own: each model's (SRIEM its yaml's, RecBole's models constant); sriem: SRIEM's "
                             "schedule for every row; none: a constant rate for every row (default own)")
    args = parser.parse_args(argv)
    common.check_data_args(parser, args)
    return args


def sriem_schedule() -> dict:
    """SRIEM's learning-rate schedule, as its yaml sets it (read, not copied: the yaml is the one place)."""
    settings = load_yaml((properties_dir() / "model" / "SRIEM.yaml").read_text())
    return {key: settings[key] for key in SCHEDULE_KEYS}


def row_config(config: dict, schedule: str) -> dict:
    """A row's config: the shared protocol, and the schedule ``--lr-schedule`` gives every row
    (``own``: none given, each model's own)."""
    if schedule == "sriem":
        return {**config, **sriem_schedule()}
    if schedule == "none":
        return {**config, "lr_schedule": "none"}
    return dict(config)


def recipe(model: str, dataset: str, config: dict) -> dict:
    """What a row trains with, from its resolved config and the trainer class it gets."""
    resolved = make_config(model, dataset, config_dict=config)
    scheduled = issubclass(trainer_for(resolved), ScheduledTrainer)
    schedule = (resolved["lr_schedule"] or "none") if scheduled else "none"
    return {"learner": resolved["learner"], "learning_rate": resolved["learning_rate"],
            "weight_decay": resolved["weight_decay"], "lr_schedule": schedule,
            **({key: resolved[key] for key in SCHEDULE_KEYS[1:]} if schedule != "none" else {}),
            "epochs": resolved["epochs"], "stopping_step": resolved["stopping_step"],
            "valid_metric": resolved["valid_metric"]}


def schedule_text(entry: dict) -> str:
    rate = f"x{entry.get('lr_decay_rate', 0):g}"
    return {"none": "constant rate",
            "plateau": f"{rate} after {entry.get('lr_plateau_patience')} validation(s) without a better score",
            "epochs": f"{rate} every {entry.get('lr_decay_epochs')} epochs",
            "steps": f"{rate} every {entry.get('lr_decay_steps')} optimizer steps"}[entry["lr_schedule"]]


def recipe_cell(entry: dict) -> str:
    """``Adam, lr 0.001, wd 1e-05, x0.1 after 1 validation(s) ..., <= 20 epochs, patience 3, best valid MRR@20``."""
    return (f"{str(entry['learner']).capitalize()}, lr {entry['learning_rate']:g}, wd {entry['weight_decay']:g}, "
            f"{schedule_text(entry)}, <= {entry['epochs']} epochs, patience {entry['stopping_step']}, "
            f"best valid {entry['valid_metric']}")


def paper_column(dataset: str) -> tuple[str, dict]:
    for name, table in PAPER.items():
        if dataset.startswith(name):
            return ("YOOCHOOSE 1/64" if name == "yoochoose" else "DIGINETICA"), table
    return "DIGINETICA", PAPER["diginetica"]


def verdict(tests: dict) -> str:
    """SRIEM against SRGNN, from the paired tests (the paper's claim: SRIEM >= SRGNN on both)."""
    parts = []
    for metric, test in tests.items():
        word = "above" if test["diff"] > 0 else "below" if test["diff"] < 0 else "equal to"
        significance = "significant" if test["p"] < 0.05 else "not significant"
        parts.append(f"{metric} {100 * test['diff']:+.2f} points ({word} SRGNN; t = {test['t']:.2f}, "
                     f"p = {test['p']:.2g}, {significance} at 0.05)")
    met = all(test["diff"] >= 0 for test in tests.values())
    return (f"SRIEM - SRGNN over {next(iter(tests.values()))['sessions']} test sessions: " + "; ".join(parts)
            + f". The paper's claim (SRIEM >= SRGNN on both) is {'met' if met else 'not met'} here.")


SCHEDULE_LINES = {
    "own": "Each model's other settings are its own (SRIEM: its yaml, with its learning-rate schedule; "
           "RecBole's models: RecBole's defaults, constant learning rate).",
    "sriem": "Every row trains on SRIEM's learning-rate schedule (its yaml's; RecBole's models through "
             "ScheduledTrainer); each model's other settings are its own.",
    "none": "Every row trains at a constant learning rate (SRIEM without its schedule); each model's other "
            "settings are its own.",
}


def markdown(rows: dict, tests: dict | None, args, dataset: str, stats, recipes: dict) -> str:
    """The table; ``recipes`` maps a model to its :func:`recipe`."""
    paper_name, paper = paper_column(dataset)
    lines = [
        f"# Session-based next-item results: {dataset}",
        "",
        f"Data: {common.data_line(args, dataset, stats)}. {common.protocol_line(args)} "
        f"{SCHEDULE_LINES[args.lr_schedule]}",
        "",
        f"| model | Recall@20 | MRR@20 | Recall@10 | MRR@10 | tested epochs | parameters | s (all seeds) | "
        f"recipe (optimizer, lr, weight decay, schedule, epochs, patience, selection) | paper {paper_name} R@20 / MRR@20 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, row in rows.items():
        # the SR-IEM paper has no kNN row
        reference = " / ".join(f"{v:.2f}" for v in paper[model]) if model in paper else "-"
        lines.append(f"| {model} | {common.cell(row, 'recall@20')} | {common.cell(row, 'mrr@20')} | {common.cell(row, 'recall@10')} | "
                     f"{common.cell(row, 'mrr@10')} | {common.epochs_cell(row)} | {row['n_params']:,} | {row['seconds']:.0f} | "
                     f"{recipe_cell(recipes[model])} | {reference} |")
    lines.append("")
    short = [model for model, row in rows.items()
             if model not in ROW_OVERRIDES and not common.converged(row, args.epochs, args.stopping_step)]
    lines.append("Tested epochs: the best validation epoch of each seed (1-based). "
                 + (f"Early stopping ended every run before the {args.epochs}-epoch budget." if not short else
                    f"The budget, not early stopping, ended a run of {', '.join(short)}: it may not have converged.")
                 + "".join(f" {model} runs {ROW_OVERRIDES[model]['epochs']} epoch (nothing to learn)."
                           for model in rows if model in ROW_OVERRIDES))
    lines.append("")
    if tests:
        lines.append(verdict(tests))
        lines.append("")
    lines.append(f"The paper column is Table 2 of the SR-IEM paper (full {paper_name}, the authors' "
                 f"runs, best epoch chosen on the test set), for orientation only. {common.load_line()}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = {}
    with common.session_data(args) as (dataset, data_path, stats, workdir):
        config = row_config(common.protocol(args, dataset, data_path, workdir), args.lr_schedule)
        configs = {model: {**config, **ROW_OVERRIDES.get(model, {})} for model in args.models}
        recipes = {model: recipe(model, dataset, configs[model]) for model in args.models}
        for model in args.models:
            rows[model] = common.train_seeds(model, dataset, configs[model], args.seeds, model, args.cache)
            print(f"{model}: Recall@20 {common.cell(rows[model], 'recall@20')} MRR@20 {common.cell(rows[model], 'mrr@20')} "
                  f"({rows[model]['seconds']:.0f}s)", flush=True)
    tests = None
    if {"SRIEM", "SRGNN"} <= set(rows):
        tests = {m: common.paired(rows["SRIEM"], rows["SRGNN"], m) for m in ("recall@20", "mrr@20")}
    out = Path(args.out) if args.out else common.RESULTS / f"session_based_{dataset}.md"
    table = markdown(rows, tests, args, dataset, stats, recipes)
    common.write_outputs(out, table, "session_based")
    summary = {"dataset": dataset, "seeds": args.seeds, "batch_size": args.batch_size,
               "embedding_size": args.embedding_size, "epochs": args.epochs, "stopping_step": args.stopping_step,
               "lr_schedule": args.lr_schedule, "recipes": recipes}
    for model, row in rows.items():
        for metric in ("recall@20", "mrr@20"):
            key = f"{model.lower()}_{metric.replace('@', '')}"
            summary[key] = round(row[metric]["mean"], 4)
            summary[f"{key}_std"] = round(row[metric]["std"], 4)
        summary[f"{model.lower()}_best_epochs"] = [best + 1 for best in row["best_epochs"]]
    for metric, test in (tests or {}).items():
        key = f"sriem_vs_srgnn_{metric.replace('@', '')}"
        summary.update({f"{key}_diff": round(test["diff"], 4), f"{key}_t": round(test["t"], 3),
                        f"{key}_p": float(f"{test['p']:.3g}"), "sessions": test["sessions"]})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
