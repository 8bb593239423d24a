"""Quality of the ASARS variants, two ablations and RecBole's GRU4Rec on the converter's
``--preset asars-small`` of ml-100k (1-hour sessions), trained and tested through RecBole
(leave-one-out, full ranking), as the paper's Table 2 (MRR@10/20/30/40, Recall@20, plus
NDCG@20), and the same with every item the user interacted with before the target removed from
the ranking (``full_unseen``).

    python benchmarks/asars_variants.py [--seeds 3] [--quick] [--epochs 30] [--stopping-step 10]
        [--rows-per-user N] [--rows time_user gru4rec ...] [--cache DIR [--only-seeds 2,3]]
        [--set key=value ...]

Rows: ``gru4rec`` (RecBole's GRU4Rec with its defaults), ``plain`` (the session RNN alone: no
user, no dwell), the five paper variants, and ``mean_user`` (the trained ``time_user`` model
with every user embedding replaced by their mean: what the user profile adds). Every row gets
the same data (max length 200), the same epoch budget, RecBole's early stopping on valid MRR@20
with the same patience, and is tested once at its best valid epoch; ASARS rows use
``properties/model/ASARS.yaml`` (+ ``--set``), GRU4Rec RecBole's defaults at ASARS's batch size
(``--gru-batch-size``): no row is tuned. ``--rows-per-user N`` keeps each user's newest N rows
(every user stays, so the test set is the same; an epoch costs less).
Mean ± sample std over seeds; p: paired t-test against GRU4Rec on per-user values (each user's
value averaged over seeds). Writes ``benchmarks/results/asars_variants_ml-100k[_quick].md`` and
its section of ``docs/benchmarks.md`` (named after the table file, so that runs with other budgets keep their own); the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import _asars_common as shared
import torch
import yaml

from recbole_session.model.sequential_recommender.asars import PAPER_VARIANTS

EVAL = {"metrics": ["Recall", "MRR", "NDCG"], "topk": [10, 20, 30, 40], "valid_metric": "MRR@20"}
ROWS = ("gru4rec", "plain", *PAPER_VARIANTS)  # mean_user comes with time_user
# RecBole's GRU4Rec re-runs the whole padded history for every training target: at length 200
# an epoch took 535 s against ASARS' 24 s (benchmarks/asars_speed.py, batch 64), too long for
# three seeds on a shared 2-core machine; the ml-100k dataset default (50) keeps its newest
# 50 items, which hold the whole current session of 85% of the test rows
GRU4REC_MAX_LENGTH = 50
# every model of the comparison trains at the same batch size: ASARS.yaml's (the paper's)
ASARS_BATCH = yaml.safe_load((Path(__file__).resolve().parent.parent / "properties" / "model" / "ASARS.yaml").read_text())["train_batch_size"]


def parse_set(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: write key=value")
        out[key] = yaml.safe_load(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (1..N)")
    parser.add_argument("--quick", action="store_true", help="50 rows per user, 3 epochs, 1 seed")
    parser.add_argument("--epochs", type=int, default=30, help="max epochs of every row")
    parser.add_argument("--stopping-step", type=int, default=10, help="early stopping patience (epochs)")
    parser.add_argument("--rows-per-user", type=int, default=None, metavar="N",
                        help="keep each user's newest N rows (default all)")
    parser.add_argument("--gru-batch-size", type=int, default=ASARS_BATCH,
                        help=f"GRU4Rec's train_batch_size (default ASARS.yaml's, {ASARS_BATCH})")
    parser.add_argument("--gru-max-length", type=int, default=GRU4REC_MAX_LENGTH,
                        help="GRU4Rec's MAX_ITEM_LIST_LENGTH (its cost grows with it; ASARS keeps 200)")
    parser.add_argument("--rows", nargs="*", choices=ROWS, default=list(ROWS), help="rows to run (default all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--cache", default=None, help="folder for per-(row, seed) results, to resume a run")
    parser.add_argument("--only-seeds", default=None, metavar="2,3",
                        help="run only these of the seeds 1..N (to split a long run over processes with --cache)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="ASARS config overrides")
    parser.add_argument("--out", default=None, help="Markdown table (default benchmarks/results/asars_variants_ml-100k[_quick].md)")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds needs at least 1")
    if "gru4rec" not in args.rows:
        parser.error("--rows needs gru4rec (the reference of the paired tests)")
    torch.set_num_threads(args.threads)
    epochs, seeds = (3, [1]) if args.quick else (args.epochs, shared.seed_list(args.seeds))
    if args.only_seeds:
        wanted = {int(part) for part in args.only_seeds.split(",")}
        if not wanted <= set(seeds):
            parser.error(f"--only-seeds {args.only_seeds}: not among the seeds {seeds}")
        seeds = [seed for seed in seeds if seed in wanted]
    asars_set = parse_set(args.set)
    rows_per_user = shared.QUICK_ROWS if args.quick else args.rows_per_user
    out = Path(args.out).resolve() if args.out else shared.RESULTS / f"asars_variants_ml-100k{'_quick' if args.quick else ''}.md"
    common = {"epochs": epochs, "stopping_step": args.stopping_step, **EVAL}

    rows = {}
    for name in args.rows:
        if name == "gru4rec":
            rows[name] = ("GRU4Rec", {**common, "MAX_ITEM_LIST_LENGTH": args.gru_max_length,
                                         "train_batch_size": args.gru_batch_size}, {})
        else:
            ablations = {"mean_user": shared.mean_user} if name == "time_user" else {}
            rows[name] = ("ASARS", {**common, "variant": name, **asars_set}, ablations)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = shared.asars_data(work / "atomic", quick=args.quick, rows_per_user=args.rows_per_user)
        os.chdir(work)  # RecBole writes ./log here
        cache = Path(args.cache).resolve() if args.cache else None
        results = shared.run_grid(rows, seeds, data, work, cache)
    summary = shared.summarize(results, "gru4rec")

    tu, gru = summary.get("time_user"), summary["gru4rec"]
    body = [
        f"`python benchmarks/asars_variants.py --seeds {len(seeds)}"
        + (" --quick" if args.quick else "") + (f" --epochs {epochs}" if not args.quick else "")
        + (f" --rows-per-user {args.rows_per_user}" if args.rows_per_user else "")
        + (f" --set {' '.join(args.set)}" if args.set else "") + "`",
        "",
        f"Data: ml-100k from the recbole wheel, converted with `--preset {shared.PRESET}` (`{shared.DATASET}`: 1-hour "
        "sessions cut first, items with >= 10 events, sessions of >= 2 items, users with >= 2 sessions"
        + (f"; newest {rows_per_user} rows per user" if rows_per_user else "") + f"), max length {shared.MAX_LENGTH}. "
        "Leave-one-out, test on each user's last item, full ranking over all items; `unseen`: the "
        "items the user interacted with before the target are removed from the ranking "
        "(`full_unseen` protocol). Every row: at most "
        f"{epochs} epochs, early stopping after {args.stopping_step} epochs without a better valid "
        f"MRR@20, tested once at its best valid epoch; seeds {', '.join(map(str, seeds))}; "
        f"{args.threads} torch thread(s). ASARS: `properties/model/ASARS.yaml`"
        + (f" + {asars_set}" if asars_set else "") + f"; GRU4Rec: RecBole's defaults with batch {args.gru_batch_size} and max length "
        f"{args.gru_max_length}. `mean_user` is "
        "the trained `time_user` with every user embedding set to their mean. Mean ± sample std over "
        "seeds; p: paired t-test against GRU4Rec on per-user MRR@20 (averaged over seeds).",
        "",
        shared.markdown_table(summary, "gru4rec"),
    ]
    if tu is not None:
        diff = tu["mean"]["full/mrr@20"] - gru["mean"]["full/mrr@20"]
        spread = tu["std"]["full/mrr@20"] + gru["std"]["full/mrr@20"]
        body += ["", f"time_user - GRU4Rec, MRR@20: {diff:+.4f} (seed spread, std of both summed: {spread:.4f}); "
                 f"goal time_user >= GRU4Rec by more than the spread: {'reached' if diff > spread else 'not reached'}."]
    # the ASARS overrides in the title: the sections of several --set runs must be told apart
    title = (f"ASARS variants vs GRU4Rec on ml-100k (1-hour sessions), at most {epochs} epochs"
             + (f", ASARS with {' '.join(args.set)}" if args.set else ""))
    shared.write_outputs(out, out.stem, title, "\n".join(body))
    print(f"wrote {out}")

    line = {"seeds": len(seeds)}
    for label, row in summary.items():
        line[f"{label}_mrr20"] = round(row["mean"]["full/mrr@20"], 4)
        line[f"{label}_mrr20_std"] = round(row["std"]["full/mrr@20"], 4)
        line[f"{label}_unseen_mrr20"] = round(row["mean"]["full_unseen/mrr@20"], 4)
        if row["p"]["full/mrr@20"] is not None:
            line[f"{label}_p_vs_gru4rec"] = round(row["p"]["full/mrr@20"], 4)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
