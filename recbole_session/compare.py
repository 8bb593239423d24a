"""Paired comparison of two models evaluated on the same candidates, seeds included.

    python -m recbole_session.compare RUN_A RUN_B [--split test] [--metrics ndcg@10,recall@10]
    python -m recbole_session.compare --a A_SEED1 A_SEED2 ... --b B_SEED1 B_SEED2 ... [...]

RUN_A / RUN_B are ``.results.json`` files written by ``run_recbole_session`` (one run) or
``--seeds`` (a summary that keeps each seed's per-user values), or a run's ``.log``; ``--a`` /
``--b`` give each side as several files (a seed set: one run file per seed). Seeds are paired by
their number (the same seeds on both sides; two single runs are paired whatever their seeds).
For every protocol and metric both have: B - A, its 95 % interval and p from the hierarchical
bootstrap over seeds and users of :mod:`recbole_session.evaluation.stats`, p adjusted by Holm
over the printed rows, and the interval's verdict. The paired runs must hold the same users and
the same candidates (fingerprints).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recbole_session.cli import ArgumentParser, UsageError, exit_with, fail
from recbole_session.evaluation.results import load_results
from recbole_session.evaluation.stats import RESAMPLES, holm, paired_difference

PROG = "python -m recbole_session.compare"


class CompareError(UsageError):
    """Runs that cannot be paired (one line, exit code 2, as every bad input)."""


@dataclass(frozen=True)
class SeedRun:
    """One seed's per-user values of a split: ``seed`` None for values averaged over seeds (a
    ``--seeds`` summary written before the per-seed values were kept)."""

    seed: int | None
    users: list[str]
    fingerprints: dict[str, str]
    values: dict[str, list[float]]
    source: str
    opens: list[bool] = field(default_factory=list)  # per row: the target opens a session (when recorded)


def seed_runs(data: dict[str, Any], split: str, source: str = "") -> list[SeedRun]:
    """The seeds of one loaded results file: one for a run, one per seed for a seeds summary."""
    entry = data["per_user"].get(split)
    if entry is None:
        raise CompareError(f"{source or 'a run'}: no per-user '{split}' values")
    if data.get("kind") == "seeds" and "per_seed" in entry:
        return [SeedRun(seed, entry["users"], entry["fingerprints"],
                        {key: values[i] for key, values in entry["per_seed"].items()}, source,
                        list(entry.get("opens") or []))
                for i, seed in enumerate(data["seeds"])]
    seed = None if data.get("kind") == "seeds" else data.get("seed")
    return [SeedRun(seed, entry["users"], entry["fingerprints"], entry["per_user"], source,
                    list(entry.get("opens") or []))]


def pair_seeds(a: list[SeedRun], b: list[SeedRun]) -> list[tuple[SeedRun, SeedRun]]:
    """(A, B) of each seed: by seed number, or the one run of each side."""
    if len(a) == len(b) == 1:
        return [(a[0], b[0])]
    for side, runs in (("A", a), ("B", b)):
        averaged = [r.source for r in runs if r.seed is None]
        if averaged:
            raise CompareError(f"{averaged[0]} holds per-user values averaged over seeds only (a --seeds "
                               f"summary of an older version): give side {side} as its seeds' run files")
        seeds = [r.seed for r in runs]
        if len(set(seeds)) != len(seeds):
            raise CompareError(f"side {side} holds seed {max(seeds, key=seeds.count)} twice")
    by_seed = {r.seed: r for r in b}
    if set(by_seed) != {r.seed for r in a}:
        raise CompareError(f"A has seeds {sorted(r.seed for r in a)} and B {sorted(by_seed)}: "
                           "pair the same seeds")
    return [(r, by_seed[r.seed]) for r in sorted(a, key=lambda r: r.seed)]


def _as_runs(side: dict[str, Any] | list[dict[str, Any]], split: str) -> list[SeedRun]:
    files = side if isinstance(side, list) else [side]
    return [run for data in files for run in seed_runs(data, split, data.get("_path", ""))]


def _check_pair(ra: SeedRun, rb: SeedRun, protocol: str) -> None:
    if ra.users != rb.users:
        raise CompareError(
            f"the runs evaluated different users ({len(ra.users)} vs {len(rb.users)}): "
            "they are not on the same dataset split"
        )
    if ra.fingerprints.get(protocol) != rb.fingerprints.get(protocol):
        raise CompareError(
            f"protocol '{protocol}': the runs used different candidates (fingerprints "
            f"{ra.fingerprints.get(protocol)} vs {rb.fingerprints.get(protocol)}); "
            "check data and eval_negatives_seed"
        )


def paired_tests(a: dict[str, Any] | list[dict[str, Any]], b: dict[str, Any] | list[dict[str, Any]],
                 split: str = "test", metrics: list[str] | None = None,
                 users: set[str] | None = None, opens: bool | None = None) -> list[dict[str, Any]]:
    """One row per ``<protocol>/<metric>``: the seeds' mean of A and of B, B - A with its
    interval, p and verdict (:func:`~recbole_session.evaluation.stats.paired_difference`), the
    numbers of seeds, users and rows. ``a`` / ``b``: loaded results files (one, or a seed set);
    ``users`` keeps only those users' rows and ``opens`` only the targets that open (True) or
    continue (False) a session, by the runs' per-row flags (slices)."""
    pairs = pair_seeds(_as_runs(a, split), _as_runs(b, split))
    rows = []
    for key in pairs[0][0].values:
        protocol, _, metric = key.rpartition("/")
        if any(key not in ra.values or key not in rb.values for ra, rb in pairs) or (metrics and metric not in metrics):
            continue
        xs, ys, us = [], [], []
        for ra, rb in pairs:
            _check_pair(ra, rb, protocol)
            if opens is not None and len(ra.opens) != len(ra.users):
                raise CompareError(f"{ra.source or 'a run'}: no per-target session-opening flags to slice by")
            keep = [i for i, u in enumerate(ra.users)
                    if (users is None or u in users) and (opens is None or bool(ra.opens[i]) == opens)]
            xs.append(np.asarray(ra.values[key], dtype=np.float64)[keep])
            ys.append(np.asarray(rb.values[key], dtype=np.float64)[keep])
            us.append([ra.users[i] for i in keep])
        if not len(us[0]):
            raise CompareError("no evaluated row of the given users")
        try:
            result = paired_difference(xs, ys, us)
        except ValueError as err:
            raise CompareError(str(err)) from None
        rows.append({"key": key, "mean_a": float(np.mean([x.mean() for x in xs])),
                     "mean_b": float(np.mean([y.mean() for y in ys])), **result.to_json(),
                     "seed_pairs": [(ra.seed, rb.seed) for ra, rb in pairs]})
    if not rows:
        raise CompareError("the runs have no protocol metric in common")
    return rows


def format_rows(rows: list[dict[str, Any]], name_a: str, name_b: str) -> str:
    """The table, p adjusted by Holm over its rows (the metrics compared are one family)."""
    adjusted = holm([r["p"] for r in rows])
    width = max(len(r["key"]) for r in rows)
    first = rows[0]
    seeds = ", ".join("/".join(str(s) for s in dict.fromkeys(pair)) for pair in first["seed_pairs"])
    spread = ("one seed pair: the interval holds the users' variance only, not the seeds'"
              if first["seeds"] == 1 else "seeds and users resampled")
    head = (f"{'metric':<{width}}  {'A':>8}  {'B':>8}  {'B-A':>8}  {'95% CI':>19}  {'p':>7}  "
            f"{'p Holm':>7}  verdict        users")
    lines = [f"A = {name_a}", f"B = {name_b}",
             f"seeds paired: {seeds}; hierarchical bootstrap, {RESAMPLES} resamples ({spread})", head]
    for r, p_holm in zip(rows, adjusted):
        interval = f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
        lines.append(f"{r['key']:<{width}}  {r['mean_a']:8.4f}  {r['mean_b']:8.4f}  {r['diff']:+8.4f}  "
                     f"{interval:>19}  {r['p']:7.3g}  {p_holm:7.3g}  {r['verdict']:<13}  {r['users']}")
    return "\n".join(lines)


def describe(files: list[dict[str, Any]], paths: list[str]) -> str:
    data = files[0]
    if len(files) > 1:
        seeds = sorted(s for d in files for s in (d.get("seeds") or [d.get("seed")]))
        return f"{data.get('model')} on {data.get('dataset')}, seeds {seeds} ({len(files)} files)"
    seeds = f" seeds {data['seeds']}" if data.get("kind") == "seeds" else f" seed {data.get('seed')}"
    return f"{data.get('model')} on {data.get('dataset')},{seeds} ({paths[0]})"


def sides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The files of A and B: two positional runs, or the seed sets of ``--a`` and ``--b``."""
    if args.a or args.b:
        if args.runs or not (args.a and args.b):
            raise CompareError("give either RUN_A RUN_B or both --a FILE... and --b FILE..., not a mix")
        return args.a, args.b
    if len(args.runs) != 2:
        raise CompareError(f"expected two runs (RUN_A RUN_B), got {len(args.runs)}")
    return args.runs[:1], args.runs[1:]


def load_side(paths: list[str]) -> list[dict[str, Any]]:
    return [{**load_results(path), "_path": path} for path in paths]


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="RUN_A RUN_B: .results.json (a run or a --seeds summary) or a run's .log")
    parser.add_argument("--a", nargs="+", metavar="FILE", default=None, help="side A as a seed set, one file per seed")
    parser.add_argument("--b", nargs="+", metavar="FILE", default=None, help="side B as a seed set, one file per seed")
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--metrics", default=None, help="comma-separated, e.g. recall@10,ndcg@10 (default: all)")
    args = parser.parse_args(argv)
    try:
        paths_a, paths_b = sides(args)
        a, b = load_side(paths_a), load_side(paths_b)
        metrics = [m.strip().lower() for m in args.metrics.split(",")] if args.metrics else None
        rows = paired_tests(a, b, args.split, metrics)
    except UsageError as err:  # CompareError, and a results file that is not one
        return fail(PROG, err)
    print(format_rows(rows, describe(a, paths_a), describe(b, paths_b)))
    return 0


if __name__ == "__main__":
    exit_with(main())
