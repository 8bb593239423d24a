"""Quality of the five ASARS variants and RecBole's GRU4Rec on ml-100k with 1-hour sessions,
trained and tested through RecBole (leave-one-out, full ranking), as the paper's Table 2
(MRR@10/20/30/40, Recall@20, plus NDCG@20). Writes a Markdown table to benchmarks/results/.

    python benchmarks/asars_variants.py [--quick] [--epochs 30] [--gru-epochs 10] [--set key=value ...]

Every ASARS variant uses properties/model/ASARS.yaml plus ``--set`` overrides; GRU4Rec uses
RecBole's defaults but ``--gru-batch-size``; both select the best epoch on valid MRR@20 (early stopping) and are tested
once with it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import yaml
from _asars_common import SESSION_GAP, hour_data

from recbole_session.model.sequential_recommender.asars import VARIANTS
from recbole_session.quick_start import run_recbole_session

EVAL = {"metrics": ["Recall", "MRR", "NDCG"], "topk": [10, 20, 30, 40], "valid_metric": "MRR@20"}
COLUMNS = ["mrr@10", "mrr@20", "mrr@30", "mrr@40", "recall@20", "ndcg@20"]


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
    parser.add_argument("--quick", action="store_true", help="50 rows per user, 3 epochs each")
    parser.add_argument("--epochs", type=int, default=30, help="max epochs of each ASARS variant")
    parser.add_argument("--gru-epochs", type=int, default=10, help="max epochs of GRU4Rec")
    parser.add_argument("--stopping-step", type=int, default=5, help="early stopping patience (epochs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="ASARS config overrides")
    parser.add_argument("--gru-batch-size", type=int, default=256,
                        help="GRU4Rec train_batch_size (RecBole's default 2048 gives it only ~20 steps an epoch here)")
    parser.add_argument("--out", default=None, help="Markdown file (default benchmarks/results/asars_variants_ml-100k[_quick].md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    epochs, gru_epochs = (3, 3) if args.quick else (args.epochs, args.gru_epochs)
    asars_set = parse_set(args.set)
    out = Path(args.out) if args.out else (
        Path(__file__).resolve().parent / "results" / f"asars_variants_ml-100k{'_quick' if args.quick else ''}.md"
    )

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = hour_data(work / "atomic", max_user_inter=50 if args.quick else None)
        os.chdir(work)  # RecBole writes ./log here
        base = {"data_path": str(data), "session_gap": SESSION_GAP, "checkpoint_dir": str(work / "saved"),
                "show_progress": False, "state": "WARNING", "use_gpu": False, "seed": args.seed,
                "stopping_step": args.stopping_step, **EVAL}
        jobs = [("GRU4Rec", "GRU4Rec", {"epochs": gru_epochs, "train_batch_size": args.gru_batch_size})]
        jobs += [(f"ASARS_{v}", "ASARS", {"epochs": epochs, "variant": v, **asars_set}) for v in VARIANTS]
        for label, model, overrides in jobs:
            start = time.perf_counter()
            result = run_recbole_session(model, "ml-100k", config_dict={**base, **overrides})
            seconds = time.perf_counter() - start
            rows.append((label, result, seconds))
            test = result["test_result"]
            print(f"{label:18s} " + "  ".join(f"{c} {test[c]:.4f}" for c in COLUMNS) + f"  ({seconds:.0f} s)", flush=True)

    stats_note = "1-hour sessions, min 2 sessions per user, newest 50 rows per user" if args.quick else \
        "1-hour sessions, min 2 sessions per user, newest 200 rows per user"
    lines = [
        "# ASARS variants vs GRU4Rec on ml-100k (1-hour sessions)",
        "",
        f"Data: ml-100k from the recbole wheel, {stats_note} (`benchmarks/_asars_common.py`). "
        "Leave-one-out, full ranking over all items, test on each user's last item with the epoch "
        f"of best valid MRR@20. Max epochs: GRU4Rec {gru_epochs}, ASARS {epochs}; early stopping "
        f"after {args.stopping_step} epochs without improvement; seed {args.seed}; {args.threads} torch thread(s).",
        f"ASARS: properties/model/ASARS.yaml{' + ' + str(asars_set) if asars_set else ''}; "
        f"GRU4Rec: RecBole defaults, train_batch_size {args.gru_batch_size}.",
        "",
        "| model | " + " | ".join(c.upper().replace("RECALL", "Recall") for c in COLUMNS)
        + " | params | wall s |",
        "|---" * (len(COLUMNS) + 3) + "|",
    ]
    for label, result, seconds in rows:
        test = result["test_result"]
        lines.append(f"| {label} | " + " | ".join(f"{test[c]:.4f}" for c in COLUMNS)
                     + f" | {result['n_params']} | {seconds:.0f} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".md.tmp")
    tmp_out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp_out.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
