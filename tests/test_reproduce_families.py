"""``python -m recbole_session.reproduce families``: the rows of each family, the claims against each
family's base (selection on valid, intervals over seeds and users, Holm), the overheads, the
headline; and one tiny run of the command through the real training path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_reproduce import write_synthetic_runs

from recbole_session.evaluation import stats
from recbole_session.reproduce import families, table2

USERS = [str(u) for u in range(30)]
SEEDS = [1, 2, 3]
# (test N@10 level, valid N@10 level, parameters, seconds per epoch) per row; GRU4Rec's full model
# is the best on valid, SASRec's full model the best on test: the choice must follow valid
LEVELS = {
    "BERT4Rec (switches off)": (0.10, 0.10, 1000, 2.0), "BERT4Rec + ST + SSE + TAS": (0.13, 0.11, 1008, 2.2),
    "SASRec (switches off)": (0.12, 0.10, 2000, 1.0), "SASRec + ST": (0.12, 0.10, 2001, 1.0),
    "SASRec + ST + SSE + TAS": (0.25, 0.12, 2010, 1.1),
    "GRU4Rec (switches off)": (0.08, 0.08, 500, 0.5), "GRU4Rec + ST + SSE + TAS": (0.09, 0.20, 505, 0.6),
    table2.SASREC: (0.11, 0.09, 2000, 1.0),
}


def synthetic_run(path: Path, label: str, seed: int) -> None:
    test, valid, params, per_epoch = LEVELS[label]
    rng = np.random.default_rng([seed, len(label), ord(label[0])])
    users = np.random.default_rng(seed).random(len(USERS)) * 0.2  # users' own level, shared (paired)
    per_user = {f"{p}/{m}": np.round(users + test + rng.normal(0, 0.01, len(users)), 6).tolist()
                for p in table2.PROTOCOLS for m in ("recall@10", "ndcg@10")}
    path.write_text(json.dumps({
        "kind": "run", "model": "M", "dataset": "ml-100k", "seed": seed, "n_params": params,
        "train_seconds": per_epoch * 10, "best_epoch": 5, "epochs_run": 10, "device": "cpu", "run_cpu_seconds": 1.0,
        "test_protocols": {k: float(np.mean(v)) for k, v in per_user.items()},
        "valid_protocols": {k: valid for k in per_user},
        "per_user": {"test": {"users": USERS, "fingerprints": {p: "f" for p in table2.PROTOCOLS},
                              "per_user": per_user}}}))


def test_rows_keys_and_selection():
    keys = families.row_keys()
    assert len(keys) == 16 and keys[-1] == families.SASREC_KEY
    assert families.select(["off", "st+sse+tas", "sasrec-recbole"]) == [
        "bert4rec:off", "bert4rec:st+sse+tas", "sasrec:off", "sasrec:st+sse+tas", "gru4rec:off",
        "gru4rec:st+sse+tas", "sasrec-recbole"]
    assert families.select(["gru4rec"]) == [f"gru4rec:{k}" for k, _ in families.SWITCH_ROWS]
    with pytest.raises(ValueError, match="unknown xyz"):
        families.select(["xyz"])
    rows = dict((label, (model, overrides)) for label, model, overrides in families.rows_for(keys))
    assert rows["SASRec + ST"] == ("SessionSASRec", {"session_token": True, "max_session_segments": 0, "temporal_dim": 0})
    assert rows["GRU4Rec (switches off)"] == ("SessionGRU4Rec", {"session_token": False, "max_session_segments": 0,
                                                                 "temporal_dim": 0})
    assert rows["BERT4Rec + ST + SSE + TAS"][1] == {"session_token": True, "max_session_segments": 3, "temporal_dim": 16}
    assert rows[table2.SASREC] == ("SASRec", {})


def test_claims_per_family_choose_on_valid_and_adjust_over_families(tmp_path):
    work = tmp_path / "runs"
    rows = [row for row in families.rows_for(families.row_keys()) if row[0] in LEVELS]
    specs = table2.specs_for(rows, "ml-100k", SEEDS, {}, [])
    paths = write_synthetic_runs(specs, work, synthetic_run)
    summary = families.summarize(specs, paths, work)
    rows = summary["rows"]
    out = families.claims(rows)

    def values(label: str) -> list[list[float]]:
        return [json.loads(p.read_text())["per_user"]["test"]["per_user"]["full/ndcg@10"] for p in paths[label]]

    expected = stats.paired_difference(values("SASRec (switches off)"), values("SASRec + ST + SSE + TAS"), USERS)
    got = out["sasrec"]
    assert (got["diff"], got["ci_low"], got["ci_high"], got["p"], got["verdict"]) == (
        expected.diff, expected.ci_low, expected.ci_high, expected.p, expected.verdict)
    assert got["verdict"] == "better" and got["seeds"] == 3
    assert [out[f]["p_holm_families"] for f in families.FAMILIES] == stats.holm([out[f]["p"] for f in families.FAMILIES])
    # overheads against the family's base
    assert got["params_over_base_pct"] == pytest.approx(0.5) and got["epoch_time_ratio"] == pytest.approx(1.1)
    assert rows["SASRec + ST"]["params_over_base_pct"] == pytest.approx(0.05)
    # the best session model is the one best on valid (GRU4Rec's full), never a base row
    assert out["best_row"] == "GRU4Rec + ST + SSE + TAS"
    best = out["best_vs_sasrec"]
    assert best["verdict"] == "worse" and best["ci_high"] < 0
    payload = {"dataset": "ml-100k", "split": "loo", "seeds": SEEDS, "minutes": 0.1, "command": "test",
               "machine": "test", "runs": 24, "finished_before": 0, "rows": rows, "claims": out,
               "summary": {k: v for k, v in summary.items() if k != "rows"},
               "facts": {"users": 30, "items": 9, "interactions": 99},
               "recipe": {"stopping_step": 10, "eval_step": 1, "learner": "adamw", "learning_rate": 0.001,
                          "weight_decay": 0.05, "train_batch_size": 128, "epoch_steps": 10, "epochs": 10,
                          "valid_metric": "NDCG@10", "valid_protocol": "random100"}}
    md, js = families.write_outputs(tmp_path, "ml-100k", payload)
    text = md.read_text()
    assert (f"- SASRec: SASRec + ST + SSE + TAS − SASRec (switches off): {got['diff']:+.4f}, 95 % CI "
            f"[{got['ci_low']:+.4f}, {got['ci_high']:+.4f}]") in text
    assert "| sasrec | SASRec + ST | 2,001 | +0.05 % |" in text
    head = families.headline(payload)
    assert head["seeds"] == SEEDS and head["sasrec_ci_low"] == round(got["ci_low"], 4)
    assert {f"{f}_{k}" for f in families.FAMILIES for k in ("base_ndcg10_all", "full_ndcg10_all", "ci_low", "ci_high")} <= set(head)
    assert json.loads(js.read_text())["claims"]["best_row"] == "GRU4Rec + ST + SSE + TAS"


def test_families_command_trains_and_prints_one_json_line(atomic_root, tmp_path):
    """One family's base and full rows, one seed, one epoch of 2 steps, through the real runner."""
    out = subprocess.run(
        [sys.executable, "-m", "recbole_session.reproduce", "families", "--dataset", "ml-100k", "--seeds", "1",
         "--rows", "gru4rec:off,gru4rec:st+sse+tas", "--data_path", str(atomic_root), "--out", str(tmp_path / "out"),
         "--epochs=1", "--epoch_steps=2", "--embedding_size=16", "--hidden_size=16"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["seeds"] == [1] and line["gru4rec_base_ndcg10_all"] is not None
    assert line["gru4rec_ci_low"] <= line["gru4rec_ci_high"] and line["sasrec_base_ndcg10_all"] is None
    assert 0 < line["gru4rec_params_pct"] < 100
    text = (tmp_path / "out" / "families_ml-100k.md").read_text()
    assert "| gru4rec | GRU4Rec + ST + SSE + TAS |" in text and table2.ONE_SEED.strip() in text


def test_old_option_spellings_still_work_with_a_notice(capsys):
    """One spelling per option across the commands (RecBole's data_path; --out as convert, evaluate,
    recommend and reproduce spell it); the old ones are read the same, with one line saying so."""
    from recbole_session.reproduce import build_parser as reproduce_parser
    from recbole_session.tune.__main__ import build_parser as tune_parser

    assert reproduce_parser().parse_known_args(["families"])[0].data_path is None
    assert reproduce_parser().parse_known_args(["families", "--data_path", "A"])[0].data_path == "A"
    assert capsys.readouterr().err == ""
    assert reproduce_parser().parse_known_args(["families", "--data-path", "B"])[0].data_path == "B"
    assert capsys.readouterr().err.splitlines() == [
        "python -m recbole_session.reproduce: --data-path is now spelled --data_path (the old spelling still works)"]
    assert tune_parser().parse_known_args(["--out", "C"])[0].output == "C"
    assert tune_parser().parse_known_args(["--output=D"])[0].output == "D"
    assert capsys.readouterr().err.splitlines()[0].endswith("--output is now spelled --out (the old spelling still works)")
    assert tune_parser().parse_known_args([])[0].output is None
