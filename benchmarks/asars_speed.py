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
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _asars_common import asars_data, prepare


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
        data = asars_data(work / "atomic", quick=args.quick)
        common = {"train_batch_size": args.batch_size, "epochs": 1}
        runs = {
            "GRU4Rec": prepare("GRU4Rec", data, work, common),
            "ASARS": prepare("ASARS", data, work, {**common, "variant": "time_user"}),
        }
        if args.with_prefix:
            runs["ASARS_prefix"] = prepare("ASARS", data, work, {**common, "variant": "time_user", "train_regime": "prefix"})
        samples = {name: len(run[2]._dataset) for name, run in runs.items()}
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
    }
    if args.with_prefix:
        result["ratio_prefix_regime"] = round(medians["ASARS_prefix"] / medians["GRU4Rec"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
