"""Reproduce SessionBERT4Rec's paper results (Seol, Ko, Lee, SIGIR 2022) on any dataset.

    python -m recbole_session.reproduce table2 --dataset D [--seeds N] [--out DIR]
        [--preset NAME|FILE] [--device cpu|cuda] [--jobs J] [--key=value ...]
    python -m recbole_session.reproduce figure2 --dataset D [--segments 2,3,4,5]
        [--temporal-dims 8,16,32,64] [same options]
    python -m recbole_session.reproduce families --dataset D [--seeds N] [--rows KEYS] [same options]
    python -m recbole_session.reproduce paper-params

``table2`` trains RecBole's SASRec and BERT4Rec and the eight switch combinations of
SessionBERT4Rec with the same recipe, data and seeds and writes ``DIR/table2_D.md`` / ``.json``;
``figure2`` sweeps the full model's m and dT and writes ``DIR/figure2_D.png`` / ``.md`` /
``.json``; ``families`` trains the session additions in the BERT4Rec, SASRec and GRU4Rec
families and RecBole's SASRec (:mod:`~recbole_session.reproduce.families`) and writes
``DIR/families_D.md`` / ``.json``; ``paper-params`` prints paper Table 2's #params column, computed from the authors'
implementation's sizes. Runs are kept under ``--work`` (default ``DIR/runs``) by a key of everything that
defines them, config and code, so an interrupted command continues where it stopped and a finished
run is never trained again, unless other code finished it (then it is stale, said so and trained
again: :func:`~recbole_session.reproduce.runner.code_key`). Any ``--key=value`` is a RecBole config key for every row (e.g.
``--MAX_ITEM_LIST_LENGTH=20``). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from recbole_session.build import check_arguments
from recbole_session.checks import check_folder
from recbole_session.cli import UsageError, add_renamed, parse_overrides
from recbole_session.files import update_section
from recbole_session.model.sequential_recommender.sessionbert4rec import reference_parameter_count
from recbole_session.paths import properties_dir
from recbole_session.reproduce import families, figure2, table2
from recbole_session.reproduce.runner import run_all, shared_recipe, unfinished
from recbole_session.reproduce.table2 import COMBOS, combo_label

PROG = "python -m recbole_session.reproduce"
PRESET_DIR = "preset"


class ReproduceError(Exception):
    """Bad options: one line, exit code 2."""


def preset_file(name: str) -> Path:
    """``paper`` -> ``properties/preset/SessionBERT4Rec-paper.yaml``; a path is taken as is."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ReproduceError(f"--preset {name}: no such file")
        return path
    path = properties_dir() / PRESET_DIR / f"SessionBERT4Rec-{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("SessionBERT4Rec-") for p in path.parent.glob("SessionBERT4Rec-*.yaml"))
        raise ReproduceError(f"--preset {name}: unknown preset (known: {', '.join(known)}; or give a .yaml file)")
    return path


def int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ReproduceError(f"{option} {text}: expected integers separated by commas, e.g. 2,3,4,5") from None
    if not values or min(values) < 1:
        raise ReproduceError(f"{option} {text}: expected positive integers separated by commas")
    return values


# --rows names: RecBole's two models, the switches of a combination joined by '+', then V-SKNN
ROW_KEYS = ["sasrec", "bert4rec", "off", "st", "sse", "tas", "st+sse", "st+tas", "sse+tas", "st+sse+tas", "knn"]


def row_key(label: str) -> str:
    if label in (table2.SASREC, table2.BERT4REC):
        return label.split()[0].lower()
    if label == table2.KNN:
        return "knn"
    return "off" if label == table2.OFF else label.replace("+ ", "").replace(" ", "+").lower()


# paper Table 1-2 and the authors' run configurations: (items, max length L, m, dT), d 256, 4 layers
PAPER_SIZES = {"Steam": (4331, 15, 5, 32), "ML-1M": (3327, 200, 3, 16), "ML-20M": (12239, 100, 5, 64)}


def paper_params_table() -> str:
    """Paper Table 2's #params column, from :func:`reference_parameter_count`."""
    lines = ["| dataset | " + " | ".join(combo_label(*c) for c in COMBOS) + " |", "|---|" + "---|" * len(COMBOS)]
    for name, (items, max_len, m, dt) in PAPER_SIZES.items():
        counts = [reference_parameter_count(items, max_len, 256, 4, bool(st), m * se, dt * te) for st, se, te in COMBOS]
        lines.append(f"| {name} | " + " | ".join(f"{c:,}" for c in counts) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("table2", "figure2", "families", "paper-params"),
                        help="table2 (ablation), figure2 (m and dT sweeps), families (the additions in "
                             "BERT4Rec, SASRec and GRU4Rec) or paper-params")
    parser.add_argument("--dataset", "-d", default=None, help="dataset name (folder under data_path)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N for every row (default 3)")
    parser.add_argument("--out", default="reproduce_results", help="output folder of the tables")
    parser.add_argument("--work", default=None, help="folder of the runs (default OUT/runs); reused to resume")
    parser.add_argument("--preset", default=None,
                        help="'paper' (d 256, 4 layers, L 200, 800 epochs: for a GPU) or a yaml file, for every row")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    add_renamed(parser, "--data_path", "--data-path", default=None,
                help="the folder holding <dataset>/ (RecBole's data_path; default: the config's, atomic_files/)")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep each run's best model as WORK/<dataset>/<run>.pth (default: deleted)")
    parser.add_argument("--docs", default=None, help="also write the narrative into this Markdown file's section")
    parser.add_argument("--rows", default=None,
                        help="table2: only these rows, comma-separated among " + ", ".join(ROW_KEYS)
                        + "; families: among " + ", ".join(families.row_keys())
                        + " (a family or a switch set names its rows)")
    parser.add_argument("--segments", default="2,3,4,5", help="figure2: values of m (dT fixed)")
    parser.add_argument("--temporal-dims", default="8,16,32,64", help="figure2: values of dT (m fixed)")
    return parser


def config_files_for(args: argparse.Namespace, base: dict[str, Any]) -> list[str]:
    """The preset, and the yaml the converter writes next to a dataset it named (its fields)."""
    files = []
    data_path = Path(base.get("data_path") or "atomic_files")
    written = data_path / args.dataset / f"{args.dataset}.yaml"
    if written.is_file() and not (properties_dir() / "dataset" / f"{args.dataset}.yaml").is_file():
        files.append(str(written.resolve()))
    if args.preset:
        files.append(str(preset_file(args.preset).resolve()))
    return files


def run(args: argparse.Namespace, overrides: dict[str, Any], command: str) -> dict[str, Any]:
    started = time.perf_counter()
    if args.seeds < 1 or args.jobs < 1 or args.threads < 1:
        raise ReproduceError("--seeds, --jobs and --threads must be at least 1")
    cores = os.cpu_count() or 1
    if args.jobs > cores or args.threads > cores:  # more only thrash (100,000 threads died loading a library)
        raise ReproduceError(f"--jobs and --threads must be at most this machine's {cores} cores")
    check_arguments(None, args.dataset, None, None)
    check_folder(args.out, "--out")
    if args.work:
        check_folder(args.work, "--work")
    if args.docs and Path(args.docs).is_dir():
        raise ReproduceError(f"--docs {args.docs}: is a folder, not a Markdown file")
    sweep = (int_list(args.segments, "--segments"), int_list(args.temporal_dims, "--temporal-dims"))
    wanted = [key.strip().lower() for key in (args.rows or "").split(",") if key.strip()]
    if args.what == "families":
        try:
            family_keys = families.select(wanted)
        except ValueError as err:
            raise ReproduceError(f"--rows {args.rows}: {err}") from None
    elif args.what == "table2":
        unknown = sorted(set(wanted) - set(ROW_KEYS))
        if unknown:
            raise ReproduceError(f"--rows {args.rows}: unknown {', '.join(unknown)} (known: {', '.join(ROW_KEYS)})")
    base = {**overrides, "use_gpu": args.device == "cuda"}
    # absolute: the runs train in WORK/_cwd, where a relative data_path would name another folder
    base["data_path"] = str(Path(args.data_path or overrides.get("data_path") or "atomic_files").resolve())
    files = config_files_for(args, base)
    recipe, facts = shared_recipe(args.dataset, files, base)
    shared = {**base, **recipe}
    m, dt = int(facts["max_session_segments"] or 3), int(facts["temporal_dim"] or 16)
    seeds = list(range(1, args.seeds + 1))
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "runs"
    if args.what == "table2":
        rows = table2.table_rows(m, dt)
        if wanted:
            rows = [row for row in rows if row_key(row[0]) in wanted]
    elif args.what == "families":
        rows = families.rows_for(family_keys)
    else:
        rows, sweeps = figure2.grid_rows(*sweep, m, dt)
    specs = table2.specs_for(rows, args.dataset, seeds, shared, files)
    flat = [spec for row in specs.values() for spec in row]
    print(f"{args.what} on {args.dataset}: {len(specs)} rows x {len(seeds)} seeds = {len(flat)} runs; "
          + table2.describe_budget(recipe, facts), flush=True)
    finished_before = len(flat) - len(unfinished(flat, work))
    paths = run_all(flat, work, args.jobs, args.threads, progress=lambda line: print(line, flush=True),
                    keep_checkpoints=args.keep_checkpoints)
    by_label = {label: paths[i * len(seeds):(i + 1) * len(seeds)] for i, label in enumerate(specs)}
    split = shared.get("eval_split", "loo")
    # another split is another table: its files and docs section do not replace leave-one-out's
    output_name = args.dataset if split == "loo" else f"{args.dataset}_{split}"
    summary = (families.summarize if args.what == "families" else table2.summarize)(specs, by_label, work)
    payload = {"what": args.what, "dataset": args.dataset, "split": split,
               "seeds": seeds, "recipe": recipe, "facts": facts,
               "m": m, "dt": dt, "command": command, "machine": table2.machine(args.device),
               "minutes": (time.perf_counter() - started) / 60, "rows": summary["rows"],
               "runs": len(flat), "finished_before": finished_before,
               "summary": {k: v for k, v in summary.items() if k != "rows"}}
    if args.what == "table2":
        payload["claims"] = table2.claims(summary["rows"])
        written = table2.write_outputs(out, output_name, payload, command)
        line = table2.headline(payload)
    elif args.what == "families":
        payload["claims"] = families.claims(summary["rows"])
        written = families.write_outputs(out, output_name, payload)
        line = families.headline(payload)
    else:
        budget = table2.describe_budget(recipe, facts)
        written = figure2.write_outputs(out, output_name, summary["rows"], rows, sweeps, payload, command, budget)
        line = {"dataset": args.dataset, "seeds": seeds, "minutes": round(payload["minutes"], 1),
                **{f"ndcg10_all[{label}]": round(row["mean"]["test/full/ndcg@10"], 4)
                   for label, row in summary["rows"].items()}}
    for path in written:
        print(f"written: {path}", flush=True)
    if args.docs:
        text = Path(written[1] if args.what == "figure2" else written[0]).read_text()
        body = text.replace("# ", "### ", 1).replace("](figure2_", f"]({out.as_posix()}/figure2_")
        update_section(args.docs, f"reproduce-{args.what}-{output_name}", body, title="# Benchmarks")
    return line


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    command = " ".join([PROG, *argv])
    if args.what == "paper-params":
        print(paper_params_table())
        return 0
    try:
        if not args.dataset:
            raise ReproduceError(f"{args.what} needs --dataset")
        line = run(args, parse_overrides(rest), command)
    except (ReproduceError, UsageError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(line))
    return 0
