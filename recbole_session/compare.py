"""Paired significance test between two runs evaluated on the same candidates.

    python -m recbole_session.compare RUN_A RUN_B [--split test] [--metrics ndcg@10,recall@10]

RUN_A / RUN_B are ``.results.json`` files written by ``run_recbole_session`` (one run) or
``--seeds`` (per-user values averaged over the seeds), or a run's ``.log``. For every protocol
and metric both have, a paired t-test over users (``scipy.stats.ttest_rel``) compares the
per-user values; the runs must hold the same users and the same candidates (fingerprints).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from scipy import stats

from recbole_session.cli import ArgumentParser, UsageError, fail
from recbole_session.evaluation.results import load_results

PROG = "python -m recbole_session.compare"


class CompareError(UsageError):
    """Runs that cannot be paired (one line, exit code 2, as every bad input)."""


def paired_tests(a: dict[str, Any], b: dict[str, Any], split: str = "test",
                 metrics: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per ``<protocol>/<metric>``: means, difference (B - A), t, p, users."""
    if split not in a["per_user"] or split not in b["per_user"]:
        raise CompareError(f"no per-user '{split}' values in both runs")
    pa, pb = a["per_user"][split], b["per_user"][split]
    if pa["users"] != pb["users"]:
        raise CompareError(
            f"the runs evaluated different users ({len(pa['users'])} vs {len(pb['users'])}): "
            "they are not on the same dataset split"
        )
    rows = []
    for key in pa["per_user"]:
        protocol, _, metric = key.rpartition("/")
        if key not in pb["per_user"] or (metrics and metric not in metrics):
            continue
        if pa["fingerprints"].get(protocol) != pb["fingerprints"].get(protocol):
            raise CompareError(
                f"protocol '{protocol}': the runs used different candidates (fingerprints "
                f"{pa['fingerprints'].get(protocol)} vs {pb['fingerprints'].get(protocol)}); "
                "check data and eval_negatives_seed"
            )
        x = np.asarray(pa["per_user"][key], dtype=np.float64)
        y = np.asarray(pb["per_user"][key], dtype=np.float64)
        if np.array_equal(x, y):
            t, p = 0.0, 1.0
        else:
            test = stats.ttest_rel(y, x)
            t, p = float(test.statistic), float(test.pvalue)
        rows.append({"key": key, "mean_a": float(x.mean()), "mean_b": float(y.mean()),
                     "diff": float(y.mean() - x.mean()), "t": t, "p": p, "n": len(x)})
    if not rows:
        raise CompareError("the runs have no protocol metric in common")
    return rows


def format_rows(rows: list[dict[str, Any]], name_a: str, name_b: str) -> str:
    width = max(len(r["key"]) for r in rows)
    head = f"{'metric':<{width}}  {'A':>8}  {'B':>8}  {'B-A':>8}  {'t':>8}  {'p':>9}  users"
    lines = [f"A = {name_a}", f"B = {name_b}", head]
    for r in rows:
        lines.append(f"{r['key']:<{width}}  {r['mean_a']:8.4f}  {r['mean_b']:8.4f}  {r['diff']:+8.4f}  "
                     f"{r['t']:8.3f}  {r['p']:9.3g}  {r['n']}")
    return "\n".join(lines)


def describe(data: dict[str, Any], path: str) -> str:
    seeds = f" seeds {data['seeds']}" if data.get("kind") == "seeds" else f" seed {data.get('seed')}"
    return f"{data.get('model')} on {data.get('dataset')},{seeds} ({path})"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("run_a", help=".results.json (or .log) of run A")
    parser.add_argument("run_b", help=".results.json (or .log) of run B")
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--metrics", default=None, help="comma-separated, e.g. recall@10,ndcg@10 (default: all)")
    args = parser.parse_args(argv)
    try:
        a, b = load_results(args.run_a), load_results(args.run_b)
        metrics = [m.strip().lower() for m in args.metrics.split(",")] if args.metrics else None
        rows = paired_tests(a, b, args.split, metrics)
    except UsageError as err:  # CompareError, and a results file that is not one
        return fail(PROG, err)
    print(format_rows(rows, describe(a, args.run_a), describe(b, args.run_b)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
