"""Session-based quality: SRIEM against RecBole's SRGNN, NARM, STAMP and GRU4Rec, and V-SKNN, fairly.

Every model is trained and tested by RecBole's own Trainer on the same session-based benchmark
files (SR-GNN protocol) with the same seeds, batch size, embedding size d (also the GRU hidden
size of NARM and GRU4Rec), epoch budget and selection rule (the epoch with the best validation
MRR@20 is tested, full ranking over all items); every other setting is the model's own (SRIEM:
``properties/model/SRIEM.yaml``, RecBole's models: RecBole's defaults). Every prefix of a test
session is a target. SRIEM is compared with each row of the same recipe by a hierarchical
bootstrap over the paired seeds and the test sessions as clusters (``evaluation/stats.py``):
the difference, its 95 % interval, p, and p adjusted by Holm over the table's claims; the
verdict follows the interval. The table goes to
``benchmarks/results/session_based_<dataset>[_<schedule>].md`` (and ``.json``), its narrative to
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
budget, patience and selection, read from the row's resolved config and trainer. With
``sriem``, the table also reports SRIEM without its schedule (the row ``SRIEM, constant rate``),
so that what the schedule adds is measured and not credited to the model; a claim is made
between rows of the same recipe only (:func:`same_recipe`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import _session_common as common

from recbole_session.build import make_config
from recbole_session.cli import ArgumentParser
from recbole_session.evaluation.results import environment_line
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


# the row of SRIEM trained at a constant rate, added to a table of --lr-schedule sriem
SRIEM_CONSTANT = "SRIEM, constant rate"
# the recipe's parts a claim needs equal (the rate and weight decay are each model's own settings)
RECIPE_PARTS = ("learner", "lr_schedule", *SCHEDULE_KEYS[1:], "epochs", "stopping_step", "valid_metric")
CLAIM_METRICS = ("recall@20", "mrr@20")
# the recipe cell of a row that trains nothing
NO_RECIPE = "nothing trained (its index is the training sessions)"


def table_rows(models: list[str], schedule: str) -> dict[str, tuple[str, dict]]:
    """The table's rows: label -> (model, the row's overrides on top of the shared config)."""
    rows: dict[str, tuple[str, dict]] = {}
    for model in models:
        rows[model] = (model, dict(ROW_OVERRIDES.get(model, {})))
        if model == "SRIEM" and schedule == "sriem":
            rows[SRIEM_CONSTANT] = (model, {"lr_schedule": "none"})
    return rows


def same_recipe(a: dict, b: dict, model_b: str) -> bool:
    """Whether a claim between two rows compares models and not recipes: the same optimizer,
    schedule, budget, patience and selection. V-SKNN trains nothing (no recipe to differ)."""
    return model_b in ROW_OVERRIDES or all(a.get(part) == b.get(part) for part in RECIPE_PARTS)


def claims(rows: dict, recipes: dict, models: dict) -> dict[tuple[str, str, str], dict]:
    """SRIEM against every other row of its recipe, and SRIEM against itself without its
    schedule, on Recall@20 and MRR@20; Holm over all of them."""
    if "SRIEM" not in rows:
        return {}
    tests = {}
    for label, row in rows.items():
        if label == "SRIEM":
            continue
        schedule_claim = label == SRIEM_CONSTANT
        if not schedule_claim and not same_recipe(recipes["SRIEM"], recipes[label], models[label]):
            continue
        for metric in CLAIM_METRICS:
            tests[("SRIEM", label, metric)] = common.paired(rows["SRIEM"], row, metric)
    common.with_holm(tests)
    return tests


METRIC_NAMES = {"recall@20": "Recall@20", "mrr@20": "MRR@20"}


def claim_lines(tests: dict) -> list[str]:
    lines = []
    for (_, b, metric), test in tests.items():
        what = "its schedule (SRIEM with it minus without it)" if b == SRIEM_CONSTANT else f"SRIEM minus {b}"
        lines.append(f"- {METRIC_NAMES[metric]}, {what}: "
                     f"{common.difference_cell(test)} points, p {test['p']:.3g} (Holm {test['p_holm']:.3g}): "
                     f"{test['verdict']}.")
    return lines


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_").replace("__", "_")


SCHEDULE_LINES = {
    "own": "Each model's other settings are its own (SRIEM: its yaml, with its learning-rate schedule; "
           "RecBole's models: RecBole's defaults, constant learning rate).",
    "sriem": "Every row trains on SRIEM's learning-rate schedule (its yaml's; RecBole's models through "
             "ScheduledTrainer); each model's other settings are its own.",
    "none": "Every row trains at a constant learning rate (SRIEM without its schedule); each model's other "
            "settings are its own.",
}


def markdown(rows: dict, tests: dict, args, dataset: str, stats, recipes: dict, models: dict) -> str:
    """The table; ``recipes`` maps a row to its :func:`recipe`, ``models`` a row to its model."""
    paper_name, paper = paper_column(dataset)
    first = next(iter(rows.values()))
    targets, sessions = len(first["per_seed"][0]["sessions"]), len(set(first["per_seed"][0]["sessions"]))
    lines = [
        f"# Session-based next-item results: {dataset}" + ("" if args.lr_schedule == "own" else
                                                            f", learning-rate schedule: {args.lr_schedule}"),
        "",
        f"Data: {common.data_line(args, dataset, stats)}; {targets:,} test targets (every prefix of "
        f"{sessions:,} test sessions). {common.protocol_line(args)} {SCHEDULE_LINES[args.lr_schedule]}",
        "",
        f"| model | Recall@20 | MRR@20 | Recall@10 | MRR@10 | tested epochs | parameters | CPU min (all seeds) | "
        f"recipe (optimizer, lr, weight decay, schedule, epochs, patience, selection) | paper {paper_name} R@20 / MRR@20 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in rows.items():
        # the SR-IEM paper has no kNN row, nor SRIEM without its schedule
        reference = " / ".join(f"{v:.2f}" for v in paper[label]) if label in paper else "-"
        lines.append(f"| {label} | {common.cell(row, 'recall@20')} | {common.cell(row, 'mrr@20')} | {common.cell(row, 'recall@10')} | "
                     f"{common.cell(row, 'mrr@10')} | {common.epochs_cell(row)} | {row['n_params']:,} | "
                     f"{row['cpu_seconds'] / 60:.1f} | {recipe_cell(recipes[label]) if models[label] not in ROW_OVERRIDES else NO_RECIPE} | "
                     f"{reference} |")
    lines.append("")
    short = [label for label, row in rows.items()
             if models[label] not in ROW_OVERRIDES and not common.converged(row, args.epochs, args.stopping_step)]
    lines.append("Tested epochs: the best validation epoch of each seed (1-based). "
                 + (f"Early stopping ended every run before the {args.epochs}-epoch budget." if not short else
                    f"The budget, not early stopping, ended a run of {', '.join(short)}: it may not have converged.")
                 + "".join(f" {label} runs {ROW_OVERRIDES[model]['epochs']} epoch (nothing to learn)."
                           for label, model in models.items() if model in ROW_OVERRIDES and label in rows))
    lines.append("")
    if tests:
        unmatched = [label for label in rows if label != "SRIEM" and not any(b == label for _, b, _ in tests)]
        lines.append(f"Claims ({len(tests)} tests, test values in points): the difference over the "
                     f"{args.seeds} paired seeds, its 95 % interval from a hierarchical bootstrap (2000 resamples of "
                     "the seeds and of the test sessions as clusters: a session's prefixes are drawn together), the "
                     "bootstrap p and, in brackets, p adjusted by Holm over the table's tests; the verdict follows "
                     "the interval only (better: above 0, worse: below 0, else not separated)."
                     + (f" No claim against {', '.join(unmatched)}: another recipe." if unmatched else ""))
        lines.append("")
        lines += claim_lines(tests)
        lines.append("")
    env = first["environment"]
    lines.append(f"Trained on: {environment_line(env)}. The paper column is Table 2 of the SR-IEM paper (full "
                 f"{paper_name}, the authors' runs, best epoch chosen on the test set), for orientation only. "
                 f"{common.load_line()}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    rows, recipes = {}, {}
    specs = table_rows(args.models, args.lr_schedule)
    models = {label: model for label, (model, _) in specs.items()}
    started = time.perf_counter()
    with common.session_data(args) as (dataset, data_path, stats, workdir):
        config = row_config(common.protocol(args, dataset, data_path, workdir), args.lr_schedule)
        for label, (model, overrides) in specs.items():
            row_settings = {**config, **overrides}
            recipes[label] = recipe(model, dataset, row_settings)
            rows[label] = common.train_seeds(model, dataset, row_settings, args.seeds, label, args.cache)
            print(f"{label}: Recall@20 {common.cell(rows[label], 'recall@20')} MRR@20 "
                  f"{common.cell(rows[label], 'mrr@20')} ({rows[label]['cpu_seconds'] / 60:.1f} CPU min)", flush=True)
    tests = claims(rows, recipes, models)
    suffix = "" if args.lr_schedule == "own" else f"_{args.lr_schedule}"
    out = Path(args.out) if args.out else common.RESULTS / f"session_based_{dataset}{suffix}.md"
    table = markdown(rows, tests, args, dataset, stats, recipes, models)
    common.write_outputs(out, table, f"session_based{suffix}")
    first = next(iter(rows.values()))
    tested = first["per_seed"][0]["sessions"]
    summary = {"dataset": dataset, "split": "session-based: every prefix of a test session",
               "targets": len(tested), "sessions": len(set(tested)), "seeds": args.seeds,
               "batch_size": args.batch_size, "embedding_size": args.embedding_size, "epochs": args.epochs,
               "stopping_step": args.stopping_step, "lr_schedule": args.lr_schedule, "recipes": recipes,
               "wall_minutes": round((time.perf_counter() - started) / 60, 1),
               "cpu_minutes": round(sum(row["cpu_seconds"] for row in rows.values()) / 60, 1),
               "environment": first["environment"]}
    for label, row in rows.items():
        for metric in CLAIM_METRICS:
            key = f"{slug(label)}_{metric.replace('@', '')}"
            summary[key] = round(row[metric]["mean"], 4)
            summary[f"{key}_std"] = round(row[metric]["std"], 4)
        summary[f"{slug(label)}_best_epochs"] = [best + 1 for best in row["best_epochs"]]
    for (a, b, metric), test in tests.items():
        key = f"{slug(a)}_vs_{slug(b)}_{metric.replace('@', '')}"
        summary.update({f"{key}_diff": round(test["diff"], 4), f"{key}_ci_low": round(test["ci_low"], 4),
                        f"{key}_ci_high": round(test["ci_high"], 4), f"{key}_p": float(f"{test['p']:.3g}"),
                        f"{key}_p_holm": float(f"{test['p_holm']:.3g}"), f"{key}_verdict": test["verdict"]})
    # the table's numbers as data, next to it (the same object as the last line printed)
    common.write_atomic(out.with_suffix(".json"), json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
