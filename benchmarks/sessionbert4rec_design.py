"""Design choices of SessionBERT4Rec measured, each a ``--question``:

- ``init``: ``temporal_proj_init``, W_T of TAS initialised by PyTorch's default (the reference's)
  or by N(0, initializer_range) like Q and K (RecBole's initialisation of every other Linear),
  to pick the default of its yaml;
- ``gap``: why RecBole's BERT4Rec trains better than "switches off" although both have the same
  parameters and the same scores for the same weights. Switches off is run with each of
  RecBole's BERT4Rec training differences in turn (right padding, MASK-only corruption,
  RecBole's every-prefix rows), then with all three, next to RecBole's BERT4Rec; and all three
  switches on every-prefix rows.

Every row is trained with the same budget (the yaml's recipe: the same batch, steps per epoch
and selection), data and seeds through ``recbole_session.reproduce``'s runner (selection on valid
N@10 under random-100), and compared by paired t-tests over test users. The table goes to
``benchmarks/results/sessionbert4rec_<question>_<dataset>.md``, its narrative into
``docs/benchmarks.md``; the last stdout line is one JSON object.

    python benchmarks/sessionbert4rec_design.py --question gap --dataset ml-100k --seeds 3 --jobs 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recbole_session.files import update_section, write_atomic  # noqa: E402
from recbole_session.reproduce.runner import run_all, shared_recipe, unfinished  # noqa: E402
from recbole_session.reproduce.table2 import (  # noqa: E402
    N_ALL,
    cell,
    cost_note,
    describe_budget,
    machine,
    pair,
    specs_for,
    summarize,
    switches,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"


OFF = "switches off"
# RecBole's BERT4Rec: right padding, every chosen token becomes MASK, every-prefix training rows
RIGHT = {"padding_side": "right"}
MASK_ONLY = {"mask_token_prob": 1.0, "mask_random_prob": 0.0}
PREFIX = {"train_regime": "prefix"}


def init_rows(m: int, dt: int) -> list[tuple[str, str, dict]]:
    full = switches(1, 1, 1, m, dt)
    return [
        # the yaml's default (temporal_proj_init: default): the same runs as reproduce table2's full row
        ("all switches, W_T default", "SessionBERT4Rec", full),
        ("all switches, W_T normal", "SessionBERT4Rec", {**full, "temporal_proj_init": "normal"}),
    ]


def gap_rows(m: int, dt: int) -> list[tuple[str, str, dict]]:
    off = switches(0, 0, 0, m, dt)
    return [
        (OFF, "SessionBERT4Rec", off),  # reproduce table2's switches-off row
        (f"{OFF}, right padding", "SessionBERT4Rec", {**off, **RIGHT}),
        (f"{OFF}, MASK only", "SessionBERT4Rec", {**off, **MASK_ONLY}),
        (f"{OFF}, every-prefix rows", "SessionBERT4Rec", {**off, **PREFIX}),
        (f"{OFF}, all three", "SessionBERT4Rec", {**off, **RIGHT, **MASK_ONLY, **PREFIX}),
        ("BERT4Rec (RecBole)", "BERT4Rec", {}),
        # would the session additions, trained on RecBole's rows, beat RecBole's BERT4Rec?
        ("all switches, every-prefix rows", "SessionBERT4Rec", {**switches(1, 1, 1, m, dt), **PREFIX}),
    ]


# question -> (rows, [(question, row A, row B)]: the paired tests reported, B - A)
QUESTIONS = {
    "init": (init_rows, [("W_T init: normal - default", "all switches, W_T default", "all switches, W_T normal")]),
    "gap": (gap_rows, [(f"{change} - {OFF}", OFF, f"{OFF}, {change}")
                       for change in ("right padding", "MASK only", "every-prefix rows", "all three")]
            + [(f"RecBole's BERT4Rec - {OFF}, all three", f"{OFF}, all three", "BERT4Rec (RecBole)"),
               (f"all switches - {OFF}, both on every-prefix rows", f"{OFF}, every-prefix rows",
                "all switches, every-prefix rows"),
               ("all switches on every-prefix rows - RecBole's BERT4Rec", "BERT4Rec (RecBole)",
                "all switches, every-prefix rows")]),
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--question", choices=sorted(QUESTIONS), default="init")
    parser.add_argument("--regime", default=None, help="train_regime for every row (default: the yaml's)")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--work", default="/tmp/sessionbert4rec_design")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    base = {"use_gpu": False, **({"data_path": args.data_path} if args.data_path else {}),
            **({"train_regime": args.regime} if args.regime else {})}
    recipe, facts = shared_recipe(args.dataset, [], base)
    seeds = list(range(1, args.seeds + 1))
    make_rows, pairs = QUESTIONS[args.question]
    table = make_rows(int(facts["max_session_segments"]), int(facts["temporal_dim"]))
    specs = specs_for(table, args.dataset, seeds, {**base, **recipe}, [])
    flat = [spec for row in specs.values() for spec in row]
    finished_before = len(flat) - len(unfinished(flat, Path(args.work)))
    paths = run_all(flat, Path(args.work), args.jobs, 1, progress=lambda line: print(line, flush=True))
    by_label = {label: paths[i * len(seeds):(i + 1) * len(seeds)] for i, label in enumerate(specs)}
    summarized = summarize(specs, by_label, Path(args.work).resolve(), reference=table[0][0])
    summary = summarized["rows"]
    minutes = (time.perf_counter() - started) / 60
    tests = {question: pair(summary, a, b) for question, a, b in pairs}
    lines = [
        f"Measured {datetime.date.today().isoformat()} by `python benchmarks/sessionbert4rec_design.py "
        f"--question {args.question} --dataset {args.dataset} --seeds {args.seeds} --jobs {args.jobs}` ({minutes:.0f} min wall on "
        f"{machine()}"
        # a resumed command's wall time covers only the runs it trained; the runs' CPU time covers all
        + cost_note({"finished_before": finished_before, "runs": len(flat), "summary": summarized})
        + f"). Budget, the same for {describe_budget(recipe, facts)}; hidden {facts['hidden_size']}, "
        f"{facts['n_layers']} layers, L {facts['MAX_ITEM_LIST_LENGTH']}, seeds {seeds}, mean ± std.", "",
        "| row | N@10 Ran. | N@10 Pop. | N@10 All | R@10 All | best epoch / run |", "|---|---|---|---|---|---|",
    ]
    for label, row in summary.items():
        lines.append(f"| {label} | {cell(row, 'test/random100/ndcg@10')} | {cell(row, 'test/popular100/ndcg@10')} | "
                     f"{cell(row, N_ALL)} | {cell(row, 'test/full/recall@10')} | "
                     f"{row['best_epoch']:.0f} / {row['epochs_run']:.0f} |")
    lines += ["", "Paired t-tests over test users (per-user N@10 All averaged over seeds):", ""]
    lines += [f"- {q}: {t['diff']:+.4f}, p = {t['p']:.3g}" for q, t in tests.items()]
    body = "\n".join(lines) + "\n"
    title = f"SessionBERT4Rec design question '{args.question}' on {args.dataset}"
    write_atomic(RESULTS / f"sessionbert4rec_{args.question}_{args.dataset}.md", f"# {title}\n\n" + body)
    update_section(DOCS, f"sessionbert4rec_{args.question}-{args.dataset}", f"### {title}\n\n" + body,
                   title="# Benchmarks")
    result = {"question": args.question, "dataset": args.dataset, "seeds": seeds, "minutes": round(minutes, 1),
              **{f"ndcg10_all[{label}]": round(row["mean"][N_ALL], 4) for label, row in summary.items()},
              **{f"diff[{q}]": round(t["diff"], 4) for q, t in tests.items()},
              **{f"p[{q}]": round(t["p"], 4) for q, t in tests.items()}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
