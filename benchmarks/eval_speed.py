"""Speed of the papers' three protocols against RecBole's own sampled evaluation.

    python benchmarks/eval_speed.py [--quick] [--model SASRec] [--dataset ml-100k] [--epochs 1] [--repeats 3]

Trains one RecBole model (SASRec by default) briefly, then on the test split of the same
trained model times:
- RecBole ``uni100``: RecBole's ``Trainer.evaluate`` on its ``NegSampleEvalDataLoader``
  (each eval row copied once per candidate and scored by ``predict``);
- the three protocols ``random100``, ``popular100`` and ``full`` together through
  :func:`recbole_session.evaluation.evaluate_protocols` (one ``full_sort_predict`` per row),
  cold (the candidate sets built from the data inside the timing) and warm (cached);
- RecBole's ``full`` ranking, for reference.

The last line printed is a JSON object; ``ratio`` = three protocols (cold) / RecBole uni100
(median over ``--repeats``), ``ratio_warm`` the same with cached candidate sets.
Results also go to ``benchmarks/results/eval_speed.json`` and a section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recbole_session.build import build, make_config  # noqa: E402
from recbole_session.evaluation import evaluate_protocols  # noqa: E402
from recbole_session.evaluation import protocols as protocols_module  # noqa: E402
from recbole_session.files import update_section, write_atomic  # noqa: E402

PAPER = ["random100", "popular100", "full"]


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="SASRec", help="a RecBole sequential model with full_sort_predict")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data_path", default=None, help="default: the package's (atomic_files/)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timings are medians over this many")
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "eval_speed.json"))
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1

    base = {"epochs": args.epochs, "show_progress": False, "state": "ERROR", "use_gpu": torch.cuda.is_available(),
            "checkpoint_dir": str(Path("saved").resolve())}
    if args.data_path:
        base["data_path"] = args.data_path
    built = build(make_config(args.model, args.dataset, None, base))
    config, dataset, test, model, trainer = built.config, built.dataset, built.test_data, built.model, built.trainer
    trainer.fit(built.train_data, built.valid_data, saved=False, show_progress=False)

    # RecBole's uni100 on the same trained model: its own Config, dataset, sampler and dataloader
    uni = build(make_config(args.model, args.dataset, None, {
        **base, "eval_args": {**config["eval_args"], "mode": "uni100"}}))
    uni_test, uni_trainer = uni.test_data, uni.trainer
    uni_trainer.model = model
    t_uni, uni_result = timed(lambda: uni_trainer.evaluate(uni_test, load_best_model=False), args.repeats)
    t_full, _ = timed(lambda: trainer.evaluate(test, load_best_model=False), args.repeats)

    def cold():
        protocols_module._HISTORIES.pop(dataset, None)  # rebuild the candidate sets each time
        return evaluate_protocols(model, test, config, PAPER, dataset=dataset)

    t_cold, ours = timed(cold, args.repeats)
    t_warm, _ = timed(lambda: evaluate_protocols(model, test, config, PAPER, dataset=dataset), args.repeats)

    report = {
        "model": args.model, "dataset": args.dataset, "epochs": args.epochs, "device": str(config["device"]),
        "torch_threads": torch.get_num_threads(), "eval_rows": len(test.dataset), "items": dataset.item_num - 1,
        "repeats": args.repeats, "recbole_uni100_s": round(t_uni, 4), "recbole_full_s": round(t_full, 4),
        "protocols3_s": round(t_cold, 4), "protocols3_warm_s": round(t_warm, 4),
        "recbole_uni100_ndcg@10": float(uni_result["ndcg@10"]), "random100_ndcg@10": ours["random100/ndcg@10"],
        "popular100_ndcg@10": ours["popular100/ndcg@10"], "full_ndcg@10": ours["full/ndcg@10"],
        "ratio": round(t_cold / t_uni, 4), "ratio_warm": round(t_warm / t_uni, 4),
    }
    write_atomic(Path(args.out), json.dumps(report, indent=1) + "\n")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    update_section(DOCS, "eval_speed", "\n".join([
        "### Evaluation: the three protocols against RecBole's `uni100` (`benchmarks/eval_speed.py`)", "",
        f"`python benchmarks/eval_speed.py{' --quick' if args.quick else ''}`: {args.model} trained "
        f"{args.epochs} epoch(s) on {args.dataset}, then on its test split ({report['eval_rows']} rows, "
        f"{report['items']} items), medians of {args.repeats} run(s), {report['device']}, "
        f"{report['torch_threads']} torch thread(s), load average {load} at the end.", "",
        "| RecBole `uni100` s | three protocols s (candidates built) | the same, candidates cached | "
        "RecBole `full` s | ratio (goal <= 0.2) |", "|---|---|---|---|---|",
        f"| {t_uni:.3f} | {t_cold:.3f} | {t_warm:.3f} | {t_full:.3f} | {report['ratio']:.3f} |", "",
        "RecBole's `uni100` copies every eval row once per candidate and scores the copies with `predict`; "
        "the protocols score each row once with `full_sort_predict` and keep each protocol's candidates.",
    ]), title="# Benchmarks")
    print(f"RecBole uni100 {t_uni:.3f} s | three protocols {t_cold:.3f} s (warm {t_warm:.3f} s) | "
          f"RecBole full {t_full:.3f} s")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
