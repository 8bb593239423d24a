"""``python -m recbole_session.compare`` on small synthetic results files (no training): two seed
sets, ``--seeds`` summaries with and without their per-seed values, and the pairing errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recbole_session import compare
from recbole_session.evaluation.results import save_seed_results
from recbole_session.evaluation.stats import RESAMPLES, holm, paired_difference

USERS = [str(u) for u in range(30)]
KEYS = ("full/ndcg@10", "random100/ndcg@10")
SEEDS = (1, 2, 3)
# B - A per seed: the seeds disagree, so the users alone would separate the rows
SEED_EFFECT = {1: 0.20, 2: -0.05, 3: 0.05}


def values(model: str, seed: int, key: str) -> list[float]:
    # the users' level, shared by A and B (paired), and a little noise of each model's own
    base = np.random.default_rng([seed, KEYS.index(key)]).random(len(USERS)) * 0.5
    noise = np.random.default_rng([ord(model), seed, KEYS.index(key)]).normal(0, 0.02, len(USERS))
    return np.round(base + noise + (SEED_EFFECT[seed] if model == "B" else 0.0), 6).tolist()


def write_run(folder: Path, model: str, seed: int) -> Path:
    path = folder / f"{model}-seed{seed}.results.json"
    payload = {"kind": "run", "model": model, "dataset": "d", "seed": seed,
               "test_protocols": {key: float(np.mean(values(model, seed, key))) for key in KEYS},
               "per_user": {"test": {"users": USERS, "fingerprints": {"full": "f0", "random100": "r0"},
                                     "per_user": {key: values(model, seed, key) for key in KEYS}}}}
    path.write_text(json.dumps(payload))
    return path


@pytest.fixture
def runs(tmp_path) -> dict[str, list[Path]]:
    return {model: [write_run(tmp_path, model, seed) for seed in SEEDS] for model in ("A", "B")}


def summary(runs: list[Path], stem: Path) -> Path:
    results = [{**json.loads(p.read_text()), "results_file": str(p)} for p in runs]
    return save_seed_results(results, list(SEEDS), results[0]["model"], "d", stem)


def test_two_seed_sets(runs, capsys):
    argv = ["--a", *map(str, runs["A"]), "--b", *map(str, runs["B"]), "--metrics", "ndcg@10"]
    assert compare.main(argv) == 0
    out = capsys.readouterr().out
    rows = compare.paired_tests(compare.load_side(argv[1:4]), compare.load_side(argv[5:8]))
    assert [r["key"] for r in rows] == list(KEYS) and rows[0]["seeds"] == 3
    for row, p_holm in zip(rows, holm([r["p"] for r in rows])):
        expected = paired_difference([values("A", s, row["key"]) for s in SEEDS],
                                     [values("B", s, row["key"]) for s in SEEDS], USERS)
        assert (row["diff"], row["ci_low"], row["ci_high"], row["p"], row["verdict"]) == (
            expected.diff, expected.ci_low, expected.ci_high, expected.p, expected.verdict)
        line = next(line for line in out.splitlines() if line.startswith(row["key"]))
        assert f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]" in line and f"{p_holm:.3g}" in line
        assert line.rstrip().endswith(f"{row['verdict']:<13}  {len(USERS)}")
    assert f"seeds paired: 1, 2, 3; hierarchical bootstrap, {RESAMPLES} resamples (seeds and users" in out
    # the seeds disagree: not separated, whereas the users alone (seed-averaged values) separate
    full = rows[0]
    assert full["verdict"] == "not separated"
    averaged = paired_difference([np.mean([values("A", s, KEYS[0]) for s in SEEDS], 0)],
                                 [np.mean([values("B", s, KEYS[0]) for s in SEEDS], 0)], USERS)
    assert averaged.verdict == "better"


def test_seeds_summaries_keep_each_seed_and_compare_as_seed_sets(runs, tmp_path, capsys):
    a, b = summary(runs["A"], tmp_path / "A-seeds"), summary(runs["B"], tmp_path / "B-seeds")
    kept = json.loads(a.read_text())["per_user"]["test"]
    assert kept["per_seed"]["full/ndcg@10"] == [values("A", s, "full/ndcg@10") for s in SEEDS]
    from_summaries = compare.paired_tests(compare.load_side([str(a)]), compare.load_side([str(b)]))
    from_runs = compare.paired_tests(compare.load_side(list(map(str, runs["A"]))),
                                     compare.load_side(list(map(str, runs["B"]))))
    assert from_summaries == from_runs
    # a summary on one side, its seeds' run files on the other
    assert compare.paired_tests(compare.load_side([str(a)]), compare.load_side(list(map(str, runs["B"])))) == from_runs
    assert compare.main([str(a), str(b)]) == 0
    assert "seeds paired: 1, 2, 3" in capsys.readouterr().out


def test_an_older_summary_counts_as_one_seed(runs, tmp_path, capsys):
    """A summary written before per-seed values were kept: its seed-averaged values are one
    seed (users only, which the output says); against a seed set it cannot be paired."""
    paths = []
    for model in ("A", "B"):
        path = summary(runs[model], tmp_path / f"{model}-old")
        data = json.loads(path.read_text())
        del data["per_user"]["test"]["per_seed"]
        path.write_text(json.dumps(data))
        paths.append(path)
    assert compare.main(list(map(str, paths))) == 0
    out = capsys.readouterr().out
    assert "one seed pair: the interval holds the users' variance only" in out
    assert compare.main(["--a", str(paths[0]), "--b", *map(str, runs["B"])]) == 2
    err = capsys.readouterr().err
    assert "A-old.results.json holds per-user values averaged over seeds only" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (lambda r: ["--a", str(r["A"][0]), str(r["A"][1]), "--b", str(r["B"][0]), str(r["B"][2])],
     "A has seeds [1, 2] and B [1, 3]: pair the same seeds"),
    (lambda r: ["--a", str(r["A"][0]), str(r["A"][0]), "--b", str(r["B"][0]), str(r["B"][1])],
     "side A holds seed 1 twice"),
    (lambda r: [str(r["A"][0]), "--b", str(r["B"][0])], "give either RUN_A RUN_B or both --a"),
    (lambda r: ["--a", str(r["A"][0])], "give either RUN_A RUN_B or both --a"),
    (lambda r: [str(r["A"][0])], "expected two runs (RUN_A RUN_B), got 1"),
])
def test_pairing_errors_are_one_line(runs, capsys, argv, message):
    assert compare.main(argv(runs)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("python -m recbole_session.compare: error:")


def test_a_summary_whose_per_seed_values_do_not_fit_is_refused(runs, tmp_path, capsys):
    path = summary(runs["A"], tmp_path / "A-seeds")
    data = json.loads(path.read_text())
    data["per_user"]["test"]["per_seed"]["full/ndcg@10"].pop()
    path.write_text(json.dumps(data))
    assert compare.main([str(path), str(runs["B"][0])]) == 2
    assert "field 'per_user.test.per_seed.full/ndcg@10' expects 3 lists (one per seed) of 30 numbers" in capsys.readouterr().err


def test_a_slice_by_the_targets_session_flags_keeps_only_those_targets(tmp_path):
    """Under the last-session split a user has a target that opens its session and targets that
    continue it: the slice takes targets by the runs' per-row flags, not users."""
    users = ["u1", "u1", "u1", "u2", "u2"]
    opens = [True, False, False, True, False]
    a_vals, b_vals = [0.0, 0.5, 0.5, 0.0, 0.5], [1.0, 0.5, 0.5, 1.0, 0.5]  # B wins only where a session opens
    sides = []
    for model, vals in (("A", a_vals), ("B", b_vals)):
        sides.append({"kind": "run", "model": model, "seed": 1, "per_user": {"test": {
            "users": users, "opens": opens, "fingerprints": {"full": "f"}, "per_user": {"full/ndcg@10": vals}}}})
    opening = compare.paired_tests(*sides, opens=True)[0]
    continuing = compare.paired_tests(*sides, opens=False)[0]
    assert (opening["mean_a"], opening["mean_b"], opening["diff"]) == (0.0, 1.0, 1.0)
    assert (continuing["mean_a"], continuing["mean_b"], continuing["diff"]) == (0.5, 0.5, 0.0)
    del sides[0]["per_user"]["test"]["opens"]
    with pytest.raises(compare.CompareError, match="no per-target session-opening flags"):
        compare.paired_tests(*sides, opens=True)
