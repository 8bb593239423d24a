"""Which negatives train ASARS best under the paper's settings (hinge loss, Adagrad lr 0.2,
batch 64: ``properties/model/ASARS.yaml``): ``neg_distribution`` batch_popularity, uniform
and mixed (negatives per position, excluding only that position's target), and the paper's
text taken literally (batch popularity, excluding every item of the user's training rows:
``neg_exclude: history``), on the converter's ``--preset asars-small`` of ml-100k.

    python benchmarks/asars_negatives.py [--seeds 3] [--quick] [--variant time_user] [--epochs 30]
        [--stopping-step 10] [--rows ...] [--cache DIR]

Every row: the same data, epoch budget, early stopping on valid MRR@20 and test at the best
valid epoch; mean ± sample std over seeds, p: paired t-test against ``uniform`` on per-user
MRR@20. Writes ``benchmarks/results/asars_negatives_ml-100k[_quick].md`` and its section of
``docs/benchmarks.md``; the last line printed is one JSON object (``best``: the row with the
highest mean valid-selected test MRR@20).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import _asars_common as shared
import torch

from recbole_session.model.sequential_recommender.asars import USER_MODE, VARIANTS

USER_VARIANTS = tuple(USER_MODE)

EVAL = {"metrics": ["Recall", "MRR", "NDCG"], "topk": [10, 20, 30, 40], "valid_metric": "MRR@20"}
ROWS = {
    "batch_popularity": {"neg_distribution": "batch_popularity", "neg_exclude": "target"},
    "uniform": {"neg_distribution": "uniform", "neg_exclude": "target"},
    "mixed": {"neg_distribution": "mixed", "neg_exclude": "target"},
    "paper_local": {"neg_distribution": "batch_popularity", "neg_exclude": "history"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (1..N)")
    parser.add_argument("--quick", action="store_true", help="50 rows per user, 3 epochs, 1 seed")
    parser.add_argument("--variant", choices=VARIANTS, default="time_user")
    parser.add_argument("--epochs", type=int, default=30, help="max epochs of every row")
    parser.add_argument("--stopping-step", type=int, default=10, help="early stopping patience (epochs)")
    parser.add_argument("--rows", nargs="*", choices=list(ROWS), default=list(ROWS), help="rows to run (default all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--cache", default=None, help="folder for per-(row, seed) results, to resume a run")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds needs at least 1")
    torch.set_num_threads(args.threads)
    epochs, seeds = (3, [1]) if args.quick else (args.epochs, shared.seed_list(args.seeds))
    common = {"epochs": epochs, "stopping_step": args.stopping_step, "variant": args.variant, **EVAL}
    # the mean-user ablation of each row shows what its user embedding learned
    ablations = {label: {f"{label} mean_user": shared.mean_user} if args.variant in USER_VARIANTS else {} for label in ROWS}
    rows = {label: ("ASARS", {**common, **ROWS[label]}, ablations[label]) for label in args.rows}
    out = shared.RESULTS / f"asars_negatives_ml-100k{'_quick' if args.quick else ''}.md"

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = shared.asars_data(work / "atomic", quick=args.quick)
        os.chdir(work)  # RecBole writes ./log here
        results = shared.run_grid(rows, seeds, data, work, Path(args.cache).resolve() if args.cache else None)
    summary = shared.summarize(results, "uniform" if "uniform" in results else next(iter(results)))
    best = max((label for label in summary if label in ROWS), key=lambda label: summary[label]["mean"]["full/mrr@20"])

    body = "\n".join([
        f"`python benchmarks/asars_negatives.py --seeds {len(seeds)} --variant {args.variant}"
        + (" --quick" if args.quick else "") + "`",
        "",
        f"ASARS `{args.variant}` with `properties/model/ASARS.yaml` (hinge, Adagrad lr 0.2, batch 64, "
        f"32 negatives per trained position) on `{shared.DATASET}` (`--preset {shared.PRESET}`"
        + ("; newest 50 rows per user" if args.quick else "") + "). Rows differ only in the negatives: "
        "`batch_popularity`, `uniform`, `mixed` (half of the draws each) exclude only the position's "
        "target; `paper_local` draws by batch popularity and excludes every item of the user's "
        f"training rows (the paper's text taken literally). At most {epochs} epochs, early stopping "
        f"after {args.stopping_step} epochs without a better valid MRR@20, test at the best valid "
        f"epoch; seeds {', '.join(map(str, seeds))}. Mean ± sample std over seeds; p: paired t-test "
        "against `uniform` on per-user MRR@20.",
        "",
        shared.markdown_table(summary, "uniform"),
        "",
        f"Best mean test MRR@20 among the negatives (the `mean_user` rows are ablations, not choices): `{best}`.",
    ])
    shared.write_outputs(out, "asars_negatives", f"ASARS negatives under the paper's settings ({args.variant}, ml-100k)", body)
    print(f"wrote {out}")
    line = {"seeds": len(seeds), "variant": args.variant, "best": best}
    for label, row in summary.items():
        line[f"{label}_mrr20"] = round(row["mean"]["full/mrr@20"], 4)
        line[f"{label}_mrr20_std"] = round(row["std"]["full/mrr@20"], 4)
        line[f"{label}_unseen_mrr20"] = round(row["mean"]["full_unseen/mrr@20"], 4)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
