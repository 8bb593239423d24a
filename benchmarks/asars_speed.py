"""Per-epoch training time of ASARS (time_user, the paper's final model) against RecBole's
GRU4Rec on the same data (the converter's ``--preset asars-small`` of ml-100k, max length 200)
in the same run, at the same batch size (ASARS.yaml's, the paper's 64).

Repetitions alternate between the models and the medians are compared. The last line printed
is one JSON object; ``ratio`` = ASARS time_user epoch / GRU4Rec epoch (goal <= 1.5, the
paper's "half slower"), both in their default training regime: GRU4Rec trains RecBole's one
sample per prefix, ASARS one window per MAX_ITEM_LIST_LENGTH rows, every position at once.
``--with-prefix`` also times ASARS on RecBole's prefix samples (the same batches as GRU4Rec),
which gives the cost per sample (``ratio_prefix_regime``).

    python benchmarks/asars_speed.py [--quick] [--reps 3] [--with-prefix] [--threads 1] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import _asars_common as shared
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions on 50 rows per user")
    parser.add_argument("--reps", type=int, default=3, help="timed epochs per model")
    parser.add_argument("--batch-size", type=int, default=64, help="train_batch_size of both models")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: steadier figures on a shared machine)")
    parser.add_argument("--with-prefix", action="store_true", help="also time ASARS on prefix samples")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reps = 2 if args.quick else args.reps

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = shared.asars_data(work / "atomic", quick=args.quick)
        common = {"train_batch_size": args.batch_size, "epochs": 1}
        runs = {
            "GRU4Rec": shared.prepare("GRU4Rec", data, work, common),
            "ASARS": shared.prepare("ASARS", data, work, {**common, "variant": "time_user"}),
        }
        if args.with_prefix:
            runs["ASARS_prefix"] = shared.prepare("ASARS", data, work, {**common, "variant": "time_user", "train_regime": "prefix"})
        samples = {name: len(run[2]._dataset) for name, run in runs.items()}
        # training targets of an epoch: one per prefix sample, or every position of a window
        targets = {name: int(run[2]._dataset.inter_feat[run[0]["ITEM_LIST_LENGTH_FIELD"]].sum()) if name == "ASARS" else samples[name]
                   for name, run in runs.items()}
        times = {name: [] for name in runs}
        for rep in range(reps + 1):  # the first round warms up and is not counted
            order = list(runs) if rep % 2 == 0 else list(reversed(runs))
            for name in order:
                _, _, train, _, _, _, trainer = runs[name]
                start = time.perf_counter()
                trainer._train_epoch(train, epoch_idx=rep, show_progress=False)
                if rep > 0:
                    times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"{name:14s} train samples {samples[name]:6d}  epoch median {median:7.2f} s  "
              f"({', '.join(f'{t:.2f}' for t in times[name])})")
    result = {
        "ratio": round(medians["ASARS"] / medians["GRU4Rec"], 3),
        "asars_epoch_s": round(medians["ASARS"], 3),
        "gru4rec_epoch_s": round(medians["GRU4Rec"], 3),
        "reps": reps,
        "threads": args.threads,
        "train_batch_size": args.batch_size,
        "samples": samples,
        "targets": targets,
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }
    if args.with_prefix:
        result["ratio_prefix_regime"] = round(medians["ASARS_prefix"] / medians["GRU4Rec"], 3)
    lines = [
        f"`python benchmarks/asars_speed.py{' --quick' if args.quick else ''} --reps {reps}"
        f"{' --with-prefix' if args.with_prefix else ''}` (train_batch_size {args.batch_size} for both, "
        f"max length {shared.MAX_LENGTH}, {args.threads} torch thread(s), load average at the end "
        f"{result['load_average']}: the machine was shared).",
        "",
        "| model | samples | training targets | epoch median s | epochs s |",
        "|---|---|---|---|---|",
    ]
    for name, median in medians.items():
        lines.append(f"| {name} | {samples[name]} | {targets[name]} | {median:.2f} | "
                     f"{', '.join(f'{t:.2f}' for t in times[name])} |")
    lines += ["", f"ASARS time_user / GRU4Rec per epoch: **{result['ratio']}** (goal <= 1.5, the paper's "
              "\"half slower\"); both train every training target once per epoch, ASARS in one pass per window."]
    if args.with_prefix:
        lines.append(f"On GRU4Rec's own prefix samples ASARS costs {result['ratio_prefix_regime']}x GRU4Rec per epoch.")
    shared.write_outputs(shared.RESULTS / f"asars_speed{'_quick' if args.quick else ''}.md", "asars_speed",
                         "ASARS speed vs GRU4Rec (ml-100k, 1-hour sessions)", "\n".join(lines))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
