"""End to end on session-aware ml-100k through RecBole's real Trainer: the protocols in
``run_recbole_session``, ``--seeds`` (different models, identical candidates, mean ± std),
results files, the paired comparison and re-evaluating a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recbole_session import compare
from recbole_session import evaluate as reevaluate_cli
from recbole_session.evaluation.stats import paired_difference
from recbole_session.quick_start import main

PROTOCOL_KEYS = {f"{p}/{m}@{k}" for p in ("random100", "popular100", "full")
                 for m in ("recall", "mrr", "ndcg", "hit") for k in (10, 20)}


@pytest.fixture
def seeds_run(fast_config, capsys):
    """Two seeds of a small STAMP through the command line (one epoch each)."""
    overrides = {**fast_config, "train_batch_size": 1024, "embedding_size": 16}
    argv = ["--model=STAMP", "--dataset=ml-100k", "--seeds=1,2"] + [f"--{k}={v}" for k, v in overrides.items()]
    assert main(argv) == 0
    out = capsys.readouterr().out
    path = Path(out.strip().splitlines()[-1].removeprefix("results: "))
    return json.loads(path.read_text()), path, out


def test_seeds_protocols_and_results_files(seeds_run):
    summary, path, out = seeds_run
    assert summary["kind"] == "seeds" and summary["seeds"] == [1, 2]
    assert path.with_name(path.name.replace(".json", ".md")).is_file()
    files = [Path(r["results_file"]) for r in summary["runs"]]
    runs = [json.loads(f.read_text()) for f in files]
    for run, seed, file in zip(runs, (1, 2), files):
        assert run["seed"] == seed and run["n_params"] > 0
        assert set(run["test_protocols"]) == PROTOCOL_KEYS == set(run["valid_protocols"])
        # "full" is RecBole's own full ranking of the same model
        assert run["test_protocols"]["full/ndcg@10"] == run["test_result"]["ndcg@10"]
        assert run["valid_protocols"]["full/recall@20"] == run["best_valid_result"]["recall@20"]
        assert file.with_suffix(".json").name.endswith(".results.json")
        assert file.with_name(file.name.replace(".results.json", ".log")).is_file()  # next to its log
        md = file.with_suffix(".md").read_text()
        assert "| test/random100/ndcg@10 |" in md and f"trainable parameters: {run['n_params']}" in md

    # different models (other weights, other scores) on identical candidates
    weights = [torch.load(r["model_file"], map_location="cpu")["state_dict"] for r in runs]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert runs[0]["per_user"]["test"]["fingerprints"] == runs[1]["per_user"]["test"]["fingerprints"]
    assert runs[0]["per_user"]["test"]["users"] == runs[1]["per_user"]["test"]["users"]
    assert runs[0]["test_protocols"] != runs[1]["test_protocols"]

    # mean ± sample std over seeds, for every protocol metric and the parameter count
    for key in ("test/random100/ndcg@10", "valid/popular100/recall@10", "test/full/mrr@20"):
        split, metric = key.split("/", 1)
        values = np.array([r[f"{split}_protocols"][metric] for r in runs])
        assert summary["mean"][key] == pytest.approx(values.mean())
        assert summary["std"][key] == pytest.approx(values.std(ddof=1))
        assert key in out
    assert summary["mean"]["n_params"] == runs[0]["n_params"] and summary["std"]["n_params"] == 0
    averaged = np.mean([r["per_user"]["test"]["per_user"]["random100/ndcg@10"] for r in runs], axis=0)
    np.testing.assert_allclose(summary["per_user"]["test"]["per_user"]["random100/ndcg@10"], averaged, atol=1e-6)

    # each seed's own per-user values are kept, in the seeds' order, for the seeds' bootstrap
    for i, run in enumerate(runs):
        assert summary["per_user"]["test"]["per_seed"]["random100/ndcg@10"][i] == \
            run["per_user"]["test"]["per_user"]["random100/ndcg@10"]

    # the comparison of two runs is the bootstrap of the stored per-user values (one seed pair)
    rows = compare.paired_tests(runs[0], runs[1], "test", ["ndcg@10"])
    a = np.array(runs[0]["per_user"]["test"]["per_user"]["popular100/ndcg@10"])
    b = np.array(runs[1]["per_user"]["test"]["per_user"]["popular100/ndcg@10"])
    row = next(r for r in rows if r["key"] == "popular100/ndcg@10")
    assert row["users"] == len(a) == 173 and row["seeds"] == 1
    expected = paired_difference([a], [b], runs[0]["per_user"]["test"]["users"])
    assert (row["diff"], row["ci_low"], row["ci_high"], row["p"]) == (
        expected.diff, expected.ci_low, expected.ci_high, expected.p)
    assert compare.main([str(files[0]), str(files[1])]) == 0

    # a saved checkpoint is re-evaluated without training: the same values
    stem = path.parent / "reeval"
    assert reevaluate_cli.main([runs[0]["model_file"], "--protocols", "random100,popular100,full",
                                "--split", "test", "--out", str(stem)]) == 0
    again = json.loads(Path(f"{stem}.results.json").read_text())
    assert again["test_protocols"] == runs[0]["test_protocols"]


def test_compare_refuses_unpaired_runs(tmp_path, capsys):
    base = {"model": "M", "dataset": "d", "seed": 1,
            "per_user": {"test": {"users": ["1", "2"], "fingerprints": {"random100": "aa"},
                                  "per_user": {"random100/ndcg@10": [0.5, 1.0]}}}}
    other = json.loads(json.dumps(base))
    other["per_user"]["test"]["fingerprints"]["random100"] = "bb"
    (tmp_path / "a.results.json").write_text(json.dumps(base))
    (tmp_path / "b.results.json").write_text(json.dumps(other))
    (tmp_path / "bad.results.json").write_text("{\n  \"x\": 1,\n}")
    assert compare.main([str(tmp_path / "a.results.json"), str(tmp_path / "b.results.json")]) == 2
    assert "different candidates" in capsys.readouterr().err
    assert compare.main([str(tmp_path / "a.results.json"), str(tmp_path / "bad.results.json")]) == 2
    assert "bad.results.json: line 3" in capsys.readouterr().err


def test_cli_rejects_bad_seeds(fast_config, capsys):
    assert main(["--model=STAMP", "--dataset=ml-100k", "--seeds=1,x", f"--data_path={fast_config['data_path']}"]) == 2
    assert "bad --seeds '1,x'" in capsys.readouterr().err
