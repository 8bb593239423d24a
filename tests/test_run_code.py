"""What a run is a function of: the code key of reproduce's runs (a finished run of other code
is stale and trained again, old work folders included) and the environment every results file
records (versions, CPU kernels, threads, GPU), readable next to files written before it."""

from __future__ import annotations

import json
from concurrent.futures import Future
from pathlib import Path

import pytest
import recbole
import torch

import recbole_session
from recbole_session.evaluation.results import (
    environment,
    load_results,
    save_run_results,
    save_seed_results,
)
from recbole_session.reproduce import runner
from recbole_session.reproduce.runner import RunSpec, code_key, code_sources, run_all, unfinished

PACKAGE = Path(recbole_session.__file__).parent


def names(paths: list[Path]) -> set[str]:
    """``recbole_session/build.py``, ``recbole/trainer/trainer.py``: paths from the package folder."""
    found = set()
    for path in paths:
        root = max(i for i, part in enumerate(path.parts) if part in ("recbole", "recbole_session"))
        found.add("/".join(path.parts[root:]))
    return found


def test_code_sources_are_the_runs_code():
    sriem, bert = names(code_sources("SRIEM")), names(code_sources("SessionBERT4Rec"))
    # the model, its trainer, the run path and RecBole's classes of the model, trainer and dataset
    assert {"recbole_session/model/sequential_recommender/sriem.py", "recbole_session/trainer/sriem_trainer.py",
            "recbole_session/build.py", "recbole_session/evaluation/protocols.py", "recbole_session/compat.py",
            "recbole_session/reproduce/runner.py", "recbole/trainer/trainer.py",
            "recbole/data/dataset/sequential_dataset.py", "recbole/model/abstract_recommender.py"} <= sriem
    # another model's file, the tables, the statistics and the search are not a run's code
    assert not {"recbole_session/model/sequential_recommender/sessionbert4rec.py",
                "recbole_session/reproduce/table2.py", "recbole_session/compare.py",
                "recbole_session/tune/search.py"} & sriem
    assert {"recbole_session/model/sequential_recommender/sessionbert4rec.py",
            "recbole/model/sequential_recommender/bert4rec.py"} <= bert
    assert "recbole_session/model/sequential_recommender/sriem.py" not in bert
    # RecBole's own models: their file and RecBole's trainer
    assert {"recbole/model/sequential_recommender/gru4rec.py", "recbole/trainer/trainer.py"} <= names(
        code_sources("GRU4Rec"))


def test_code_key_follows_the_code_not_its_comments(monkeypatch, tmp_path):
    code_key.cache_clear()
    before = code_key("SRIEM")
    assert before == code_key("SRIEM") and before != code_key("GRU4Rec")
    protocols = PACKAGE / "evaluation" / "protocols.py"
    text = runner._code_text

    def edited(change):
        def read(path: Path) -> str:
            return change(text(path)) if path == protocols else text(path)
        return read

    # a comment or a docstring is not code: _code_text drops them
    source = tmp_path / "a.py"
    source.write_text('"""Doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 1  # one\n')
    plain = runner._code_text(source)
    source.write_text('"""Other doc."""\n\n# a comment\ndef f(x):\n    """Other."""\n    return x + 1  # two\n')
    assert runner._code_text(source) == plain
    source.write_text('def f(x):\n    return x + 2\n')
    assert runner._code_text(source) != plain
    # a changed line of a module every run uses is another key
    monkeypatch.setattr(runner, "_code_text", edited(lambda code: code + "\nX = 1"))
    code_key.cache_clear()
    assert code_key("SRIEM") != before
    # so is another version of this package or of RecBole
    monkeypatch.setattr(runner, "_code_text", text)
    for module, version in ((recbole_session, "9.9.9"), (recbole, "0.0.1")):
        with monkeypatch.context() as patch:
            patch.setattr(module, "__version__", version)
            code_key.cache_clear()
            assert code_key("SRIEM") != before
    code_key.cache_clear()
    assert code_key("SRIEM") == before


class InlinePool:
    """ProcessPoolExecutor's stand-in: records what run_all submits, trains nothing."""

    submitted: list[RunSpec] = []

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, spec, stem, keep):
        InlinePool.submitted.append(spec)
        future: Future = Future()
        future.set_result({"label": spec.label, "train_seconds": 0.0, "best_epoch": 1, "epochs_run": 1,
                           "test_protocols": {"full/ndcg@10": 0.5}})
        return future


def test_a_run_of_other_code_is_stale_and_trained_again(tmp_path, monkeypatch):
    work = tmp_path / "runs"
    spec = RunSpec("SRIEM row", "SRIEM", "ml-100k", 1, {"epochs": 1})
    folder = work / spec.dataset
    folder.mkdir(parents=True)
    current = runner.results_path(spec.stem(work.resolve()))
    assert current.name == f"sriem_row-{spec.key()}-{spec.code_key()}-seed1.results.json"
    # a work folder of the old format (no code key in the name, none in the file) and a run of
    # other code: neither is finished for this code, and neither breaks anything
    old = folder / f"sriem_row-{spec.key()}-seed1.results.json"
    other = folder / f"sriem_row-{spec.key()}-0123456789ab-seed1.results.json"
    unrelated = folder / f"sriem_row-{spec.key()}-0123456789ab-seed2.results.json"
    for path in (old, other, unrelated):
        path.write_text(json.dumps({"label": spec.label, "per_user": {}}))
    assert unfinished([spec], work) == [spec]
    assert spec.stale(work.resolve()) == sorted([old, other])
    monkeypatch.setattr(runner, "ProcessPoolExecutor", InlinePool)
    InlinePool.submitted = []
    lines: list[str] = []
    assert run_all([spec], work, progress=lines.append) == [current]
    assert InlinePool.submitted == [spec]
    assert lines[0].startswith(f"1 of 1 runs were finished in {work.resolve()} by other code") and "SRIEM row seed 1" in lines[0]
    assert old.is_file() and other.is_file()  # kept, unused
    # once this code's run is there it is reused, and the stale files are not mentioned again
    current.write_text(json.dumps({"label": spec.label, "code": spec.code_key(), "per_user": {}}))
    InlinePool.submitted, lines = [], []
    assert run_all([spec], work, progress=lines.append) == [current]
    assert InlinePool.submitted == [] and lines == [f"1 of 1 runs already finished in {work.resolve()}: not trained again"]


def test_environment_schema(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    env = environment("cpu")
    assert set(env) == {"python", "torch", "recbole", "recbole_session", "numpy", "platform", "cpu",
                        "cpu_capability", "kernel_variables", "threads", "device", "gpu"}
    assert (env["torch"], env["recbole"], env["recbole_session"]) == (
        torch.__version__, recbole.__version__, recbole_session.__version__)
    # the kernels torch runs in this process (chosen when it loaded), and the variables that choose them
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["kernel_variables"] == {"ATEN_CPU_CAPABILITY": "default"}
    assert env["threads"] == torch.get_num_threads() and env["cpu"]
    assert (env["device"], env["gpu"]) == ("cpu", None)
    json.dumps(env)  # goes into JSON files as is


def test_results_files_record_the_environment_and_old_ones_still_read(tmp_path):
    config = {"model": "GRU4Rec", "dataset": "ml-100k", "seed": 1, "eval_negatives_seed": 12345, "device": "cpu",
              "eval_split": "loo"}
    run = {"test_result": {"ndcg@10": 0.25}, "n_params": 10}
    path = save_run_results(run, config, {}, tmp_path / "new")
    written = load_results(path)
    assert written["environment"] == environment("cpu")
    assert f"({written['environment']['cpu_capability']} kernels)" in (tmp_path / "new.results.md").read_text()
    # a run that recorded where it trained keeps that, not this process's environment
    elsewhere = {**environment("cpu"), "cpu_capability": "AVX2", "threads": 8}
    moved = load_results(save_run_results({**run, "environment": elsewhere}, config, {}, tmp_path / "moved"))
    assert moved["environment"] == elsewhere
    # a file written before environments were recorded still reads, alone and in a seeds file
    old = tmp_path / "old.results.json"
    old.write_text(json.dumps({"kind": "run", "test_result": {"ndcg@10": 0.5}, "n_params": 10, "per_user": {}}))
    legacy = load_results(old)
    assert "environment" not in legacy
    seeds = load_results(save_seed_results([written, legacy], [1, 2], "GRU4Rec", "ml-100k", tmp_path / "s"))
    assert seeds["environment"] is None and [r["environment"] for r in seeds["runs"]] == [written["environment"], None]
    assert seeds["mean"]["test/ndcg@10"] == pytest.approx(0.375)
    same = load_results(save_seed_results([written, written], [1, 2], "GRU4Rec", "ml-100k", tmp_path / "t"))
    assert same["environment"] == written["environment"]
    mixed = load_results(save_seed_results([written, moved], [1, 2], "GRU4Rec", "ml-100k", tmp_path / "u"))
    assert mixed["environment"] is None
    assert "differs between the runs" in (tmp_path / "u.results.md").read_text()
