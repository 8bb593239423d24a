"""SRIEM's importance forms and learning-rate schedules, same data, budget and selection rule.

Each row is an ``importance`` form (``paper``: Eqs. 1-5 with sqrt(d) inside the sigmoid, l from
the yaml; ``authors``: the authors' code, linear Q and K with l = d; ``paper_literal``: Eq. 3 as
printed) and an ``lr_schedule`` (``plateau``, ``steps``, ``epochs`` = the paper's x0.1 every 3
epochs, ``none``), everything else from ``properties/model/SRIEM.yaml``. Every row is trained
with the same seeds, epoch budget, batch and d; the best validation MRR@20 epoch is tested.
The table (with paired t-tests on per-session values against the first row, and how far the
learned importance weights are from uniform) goes to ``benchmarks/results/sriem_variants_<dataset>.md``
and its narrative to ``docs/benchmarks.md``; the last line printed is one JSON object.

    python benchmarks/sriem_variants.py --dataset yoochoose-sample --data-path DIR
    python benchmarks/sriem_variants.py --dataset yoochoose-sample --data-path DIR --batch-size 2048 \
        --rows paper/plateau paper/steps paper/epochs paper/none     # few steps per epoch
    python benchmarks/sriem_variants.py --rows paper/plateau authors/plateau --seeds 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _session_common as common
import torch

from recbole_session.build import from_checkpoint
from recbole_session.cli import ArgumentParser
from recbole_session.model.sequential_recommender.sriem import IMPORTANCE_FORMS
from recbole_session.trainer import LR_SCHEDULES

DEFAULT_BATCH = 128  # the paper's
ROWS = (
    "paper/plateau", "authors/plateau",
    "paper/steps", "authors/steps",
    "paper/epochs", "authors/epochs",
    "paper/none", "authors/none",
    "paper_literal/plateau",
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_args(parser)
    parser.add_argument("--rows", nargs="+", default=list(ROWS),
                        help="FORM/SCHEDULE pairs; the first is the reference of the paired tests")
    parser.add_argument("--out", default=None, help="Markdown table (default benchmarks/results/sriem_variants_<dataset>.md)")
    args = parser.parse_args(argv)
    common.check_data_args(parser, args)
    for row in args.rows:
        form, _, schedule = row.partition("/")
        if form not in IMPORTANCE_FORMS or schedule not in LR_SCHEDULES:
            parser.error(f"--rows {row}: expected FORM/SCHEDULE with FORM in {', '.join(IMPORTANCE_FORMS)} "
                         f"and SCHEDULE in {', '.join(LR_SCHEDULES)}")
    return args


def row_config(row: str, base: dict) -> dict:
    form, _, schedule = row.partition("/")
    config = {**base, "importance": form, "lr_schedule": schedule}
    if form == "authors":
        config["attention_size"] = base["embedding_size"]  # their code has l = d
    return config


def beta_spread(model_file: str) -> float:
    """Mean over the test rows of at least two items of max(beta) / min(beta): 1 is uniform
    (the session mean); alpha lies in [0, 1], so e is the most any form can reach."""
    built = from_checkpoint(model_file)
    model, test_data = built.model, built.test_data
    ratios = []
    with torch.no_grad():
        for interaction, *_ in test_data:
            item_seq = interaction[model.ITEM_SEQ]
            mask = item_seq.gt(0)
            _, beta = model.importance(model.item_embedding(item_seq), mask)
            keep = mask.sum(dim=1) >= 2
            top = beta.max(dim=1).values
            low = beta.masked_fill(~mask, 2.0).min(dim=1).values
            ratios.append((top / low)[keep])
    return float(torch.cat(ratios).mean())


def markdown(rows: dict, tests: dict, args, dataset: str, stats) -> str:
    reference = args.rows[0]
    lines = [
        f"# SRIEM importance forms and learning-rate schedules: {dataset}, batch {args.batch_size}",
        "",
        f"Data: {common.data_line(args, dataset, stats)}. {common.protocol_line(args)}",
        "",
        f"| form / schedule | Recall@20 | MRR@20 | vs {reference}: ΔR@20 (p) | ΔMRR@20 (p) | max β / min β | tested epochs | s (all seeds) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        delta = ["-", "-"]
        if name in tests:
            delta = [f"{100 * tests[name][m]['diff']:+.2f} ({tests[name][m]['p']:.2g})" for m in ("recall@20", "mrr@20")]
        lines.append(f"| {name} | {common.cell(row, 'recall@20')} | {common.cell(row, 'mrr@20')} | {delta[0]} | {delta[1]} | "
                     f"{row['beta_spread']:.3f} | {common.epochs_cell(row)} | {row['seconds']:.0f} |")
    short = [name for name, row in rows.items() if not common.converged(row, args.epochs, args.stopping_step)]
    lines += [
        "",
        (f"Early stopping ended every run before the {args.epochs}-epoch budget." if not short else
         f"The budget, not early stopping, ended a run of {', '.join(short)}: it may not have converged."),
        "",
        "Δ: the row minus the reference row, in points, with the bootstrap p in brackets (hierarchical "
        "bootstrap over the paired seeds and the test sessions as clusters, `evaluation/stats.py`; not "
        "adjusted for the table's several rows). max β / min β: the learned importance weights of a test session, "
        "largest over smallest, averaged over test rows of at least two items and over seeds (1.000 = the "
        "plain session mean; the most any form can reach is e = 2.718, since alpha lies in [0, 1]). "
        f"The `authors` form uses l = d = {args.embedding_size} as their code does; `paper` keeps the yaml's l. "
        f"`steps` decays every `lr_decay_steps` optimizer steps (the yaml's value). Tested epochs: the best "
        "validation epoch of each seed (1-based). s: wall seconds on a shared machine (a row read from "
        f"--cache keeps the seconds of the run that trained it). {common.load_line()}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    rows, tests = {}, {}
    with common.session_data(args) as (dataset, data_path, stats, workdir):
        base = common.protocol(args, dataset, data_path, workdir)
        for name in args.rows:
            row = common.train_seeds("SRIEM", dataset, row_config(name, base), args.seeds, name.replace("/", "-"),
                                     args.cache)
            row["beta_spread"] = sum(beta_spread(f) for f in row.pop("model_files")) / args.seeds
            rows[name] = row
            print(f"{name}: Recall@20 {common.cell(row, 'recall@20')} MRR@20 {common.cell(row, 'mrr@20')} "
                  f"max/min beta {row['beta_spread']:.3f} ({row['seconds']:.0f}s)", flush=True)
    reference = rows[args.rows[0]]
    for name, row in list(rows.items())[1:]:
        tests[name] = {m: common.paired(row, reference, m) for m in ("recall@20", "mrr@20")}
    # another batch size is another study (fewer steps per epoch): its own table and section
    suffix = "" if args.batch_size == DEFAULT_BATCH else f"_batch{args.batch_size}"
    out = Path(args.out) if args.out else common.RESULTS / f"sriem_variants_{dataset}{suffix}.md"
    table = markdown(rows, tests, args, dataset, stats)
    common.write_outputs(out, table, f"sriem_variants{suffix}")
    summary = {"dataset": dataset, "seeds": args.seeds, "batch_size": args.batch_size, "reference": args.rows[0]}
    for name, row in rows.items():
        key = name.replace("/", "_")
        for metric in ("recall@20", "mrr@20"):
            short = metric.replace("@", "")
            summary[f"{key}_{short}"] = round(row[metric]["mean"], 4)
            summary[f"{key}_{short}_std"] = round(row[metric]["std"], 4)
        summary[f"{key}_beta_spread"] = round(row["beta_spread"], 4)
        summary[f"{key}_best_epochs"] = [best + 1 for best in row["best_epochs"]]
    for name, test in tests.items():
        for metric, values in test.items():
            summary[f"{name.replace('/', '_')}_{metric.replace('@', '')}_p"] = round(values["p"], 4)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
