"""Ray Tune searches: search-space files, and real searches on a local Ray instance (shared by
the tests of this module) with RecBole's GRU4Rec on the session-aware ml-100k, 1 epoch, tiny
sizes: outputs, a failing trial, resume after an interrupted search, and retraining the
winner from best.yaml through run_recbole_session.py."""

from __future__ import annotations

import ast
import csv
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from bad_input import sigint_default

from recbole_session.quick_start import UsageError
from recbole_session.tune import (
    SearchResult,
    SearchSpaceError,
    load_space,
    parse_space,
    start_ray,
    tune_model,
)
from recbole_session.tune.search import _shared_dataset
from recbole_session.tune.space import default_space_file
from recbole_session.tune.trust import MANIFEST, verify_manifest

REPO = Path(__file__).resolve().parent.parent
TUNE_DIR = REPO / "properties" / "tune"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# keys each model's yaml defines, as agreed with the model branches; once a model's yaml is in
# properties/model/, its own keys are checked instead
MODEL_KEYS = {
    "SessionBERT4Rec": {"session_token", "max_session_segments", "temporal_dim"},
    "SRIEM": {"embedding_size", "attention_size", "importance"},
    "ASARS": {"variant", "rnn_type", "embedding_size", "hidden_size", "loss_type"},
}
ASARS_VARIANTS = {"user_att", "user_cat", "time_att", "time_cat", "time_user"}
PAPER_GRID = {
    "hidden_size": [8, 16, 32, 64, 128, 256],
    "mask_ratio": [0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
    "n_heads": [1, 2, 4, 8],
    "max_session_segments": [2, 3, 4, 5],
    "temporal_dim": [8, 16, 32, 64],
}


class _Touch:
    """Unpickles as ``os.system('touch <marker>')``: a crafted tuner.pkl."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _recbole_yaml_keys(name: str) -> set[str]:
    import recbole

    path = Path(recbole.__file__).parent / "properties" / name
    return set(yaml.safe_load(path.read_text()) or {})


# ---------------------------------------------------------------- search-space files


def test_every_space_file_parses_into_a_ray_search_space():
    from ray.tune.search.sample import Domain

    files = sorted(TUNE_DIR.glob("*.yaml"))
    assert {f.stem for f in files} >= {"SessionBERT4Rec", "SRIEM", "ASARS", "GRU4Rec"}
    for file in files:
        space = load_space(file)
        ray_space = space.to_ray()
        assert set(ray_space) == set(space.params) and ray_space, file
        for name, param in space.params.items():
            if param.kind == "grid":
                assert ray_space[name] == {"grid_search": list(param.args)}
            else:
                assert isinstance(ray_space[name], Domain), (file, name)


def test_session_bert4rec_space_is_the_paper_grid():
    space = load_space(default_space_file("SessionBERT4Rec"))
    assert {name: (p.kind, list(p.args)) for name, p in space.params.items()} == {
        name: ("grid", values) for name, values in PAPER_GRID.items()
    }
    assert space.grid_size() == 6 * 6 * 4 * 4 * 4
    # every hidden size of the grid splits evenly over every head count
    assert all(h % n == 0 for h in PAPER_GRID["hidden_size"] for n in PAPER_GRID["n_heads"])


@pytest.mark.parametrize("model, base", [("SessionBERT4Rec", "BERT4Rec"), ("SRIEM", None), ("ASARS", None),
                                         ("VSKNN", None)])
def test_space_keys_are_keys_of_the_model_config(model, base):
    overall = _recbole_yaml_keys("overall.yaml")
    model_yaml = REPO / "properties" / "model" / f"{model}.yaml"
    if model_yaml.is_file():
        known = set(yaml.safe_load(model_yaml.read_text()) or {})
    else:
        known = MODEL_KEYS[model] | (_recbole_yaml_keys(f"model/{base}.yaml") if base else set())
    space = load_space(default_space_file(model))
    assert set(space.params) <= known | overall, set(space.params) - known - overall
    # the model-specific part of the space is the model's own, not RecBole's training keys
    assert set(space.params) & (known - overall)


def test_asars_space_uses_the_model_variants():
    space = load_space(default_space_file("ASARS"))
    assert set(space.params["variant"].args) == ASARS_VARIANTS


def test_recbole_model_spaces_use_recbole_keys():
    for model in ("GRU4Rec", "BERT4Rec"):
        keys = _recbole_yaml_keys(f"model/{model}.yaml") | _recbole_yaml_keys("overall.yaml")
        assert set(load_space(default_space_file(model)).params) <= keys


def test_space_kinds_and_float_notation():
    space = parse_space("lr: {loguniform: [1e-4, 1e-2]}\nd: {uniform: [0, 1]}\nh: {choice: [a, b]}\n")
    assert space.params["lr"].args == (1e-4, 1e-2) and space.params["lr"].log_scale
    assert space.params["d"].args == (0.0, 1.0) and space.params["h"].values == ("a", "b")
    assert space.grid_size() == 1 and space.params["h"].line == 3


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a: {grid: [1, 2]}\nlr: {loguniform: [0, 1]}\n", r"space\.yaml, line 2, key 'lr': loguniform needs 0 < low"),
        ("dropout: {uniform: [0.5, 0.1]}\n", r"line 1, key 'dropout': uniform needs low < high"),
        ("x: {uniform: [1]}\n", r"line 1, key 'x': uniform needs \[low, high\]"),
        ("a: {grid: [1]}\n\nh: {sample: [1, 2]}\n", r"line 3, key 'h': write exactly one of grid, choice"),
        ("h: [8, 16]\n", r"line 1, key 'h': write exactly one of"),
        ("h: {grid: []}\n", r"line 1, key 'h': grid needs a non-empty list"),
        ("h: {choice: [1, 1]}\n", r"line 1, key 'h': choice lists 1 twice"),
        ("h: {grid: [1]}\nh: {grid: [2]}\n", r"line 2, key 'h': 'h' is given twice \(line 1 too\)"),
        ("epochs: {grid: [1]}\nmodel: {choice: [GRU4Rec]}\n", r"line 2, key 'model': 'model' is set by the search"),
        ("", r"space\.yaml: the search space is empty"),
        ("- 1\n", r"line 1: a search space is a mapping"),
        ("h: {grid: [1\n", r"space\.yaml, line \d+: not valid yaml"),
    ],
)
def test_bad_space_files_name_file_line_and_key(tmp_path, text, expected):
    file = tmp_path / "space.yaml"
    file.write_text(text)
    with pytest.raises(SearchSpaceError, match=expected):
        load_space(file)


def test_dataset_is_shared_unless_a_dataset_key_is_searched(atomic_root):
    from recbole_session.quick_start import make_config

    config = make_config("GRU4Rec", "ml-100k", None, {"data_path": str(atomic_root)})
    blob = _shared_dataset(config, parse_space("hidden_size: {grid: [8, 16]}"))
    import pickle

    dataset = pickle.loads(blob)
    assert dataset.inter_num == 19524 and dataset.user_num == 174
    assert _shared_dataset(config, parse_space("MAX_ITEM_LIST_LENGTH: {grid: [10, 20]}")) is None


# ---------------------------------------------------------------- real searches


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray instance (2 CPUs) for every search of this module."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="rbs-ray-")  # short: Ray's socket paths live under it
    assert start_ray(num_cpus=2, temp_dir=temp_dir)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory):
    """A folder to run searches in (RecBole writes ./log relative to the working directory)."""
    root = tmp_path_factory.mktemp("tune")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        yield root


@pytest.fixture(scope="module")
def tiny(atomic_root) -> dict:
    """RecBole keys fixed for every trial: 1 epoch of a tiny GRU4Rec on ml-100k."""
    return {
        "data_path": str(atomic_root),
        "epochs": 1,
        "embedding_size": 8,
        "hidden_size": 8,
        "train_batch_size": 256,
        "eval_batch_size": 512,
        "MAX_ITEM_LIST_LENGTH": 20,
        "state": "WARNING",
    }


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _finished_trials(experiment: Path) -> list[Path]:
    return [f for f in experiment.glob("trial_*/result.json") if '"finished": true' in f.read_text()]


@dataclass
class Search:
    """The search of this module: started by the command line, stopped, then resumed."""

    returncode: int
    stdout: str
    rows_before: list[dict[str, str]]
    results_before: dict[Path, bytes]
    signed_files: int  # the files the interrupted search signed for --resume
    result: SearchResult


@pytest.fixture(scope="module")
def search(ray_address, search_dir, tiny) -> Search:
    """Three trials, one at a time, with the default (ASHA) scheduler; dropout 1.5 is a bad
    value (torch's Dropout rejects it), so that trial fails while the other two finish.

    The search runs in its own driver process (the command line) that joins this module's Ray
    instance, and is stopped with SIGINT (Ctrl+C) as soon as its first trial has finished; it
    is then resumed here through the Python API. (One search for all these tests: Ray is slow
    to start trials on 2 shared cores.)"""
    space = search_dir / "gru.yaml"
    space.write_text("dropout_prob: {grid: [0.2, 0.3, 1.5]}\nlearning_rate: {loguniform: [1e-3, 1e-2]}\n")
    out = search_dir / "search"
    cmd = [sys.executable, "-m", "recbole_session.tune", "--model=GRU4Rec", "--dataset=ml-100k",
           "--space", str(space), "--out", str(out), "--address", ray_address,
           "--max-concurrent", "1", "--verbose", "0", *[f"--{k}={v}" for k, v in tiny.items()]]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=sigint_default)
    deadline = time.time() + 300
    while not _finished_trials(out / "ray" / "search"):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, "no trial finished"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=120)
    rows_before = _read_csv(out / "results.csv")
    results_before = {f: f.read_bytes() for f in _finished_trials(out / "ray" / "search")}
    # the interrupted search signed its folder after Ray's last write (the process has exited,
    # the Ray instance it joined still runs): --resume accepts it
    verify_manifest(out)
    signed_files = len(json.loads((out / MANIFEST).read_text())["files"])
    result = tune_model(resume=True, output=out, verbose=0)
    return Search(proc.returncode, stdout, rows_before, results_before, signed_files, result)


def test_interrupted_search_resumes_without_rerunning_finished_trials(search, tiny):
    assert search.returncode == 130, search.stdout[-3000:]
    assert "the search was interrupted: continue it with" in search.stdout
    before = search.rows_before
    finished_before = {r["trial"]: r for r in before if r["status"] == "finished"}
    # the second trial was running, waiting, or not yet created by Ray's grid generator
    assert len(finished_before) == 1 and all(r["status"] in ("interrupted", "not run") for r in before[1:])

    out = search.result.output
    after = _read_csv(out / "results.csv")
    assert sorted(float(r["dropout_prob"]) for r in after) == [0.2, 0.3, 1.5]  # each value once
    assert sorted(r["status"] for r in after) == ["error", "finished", "finished"]
    assert not search.result.interrupted
    for trial, row in finished_before.items():  # kept as they were, not trained again
        again = next(r for r in after if r["trial"] == trial)
        assert (again["valid_score"], again["seconds"], again["learning_rate"]) == (
            row["valid_score"], row["seconds"], row["learning_rate"])
    for file, content in search.results_before.items():
        assert file.read_bytes() == content
    with pytest.raises(UsageError, match="already holds a search"):
        tune_model("GRU4Rec", "ml-100k", out / "space.yaml", output=out, config_dict=tiny)


def test_a_real_search_folder_is_signed_and_a_replaced_tuner_pkl_is_refused(search, tmp_path):
    out = search.result.output
    # the resumed, finished search signed its folder again, with the trials it added
    verify_manifest(out)
    files = {e["path"] for e in json.loads((out / MANIFEST).read_text())["files"]}
    assert {"search.json", "space.yaml", "ray/search/tuner.pkl"} <= files and len(files) > search.signed_files
    # TensorBoard's files too: closed before the folder was signed
    assert any("/events.out.tfevents." in f for f in files)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("ray_tmp"))
    verify_manifest(copy)  # relative paths: a moved folder still resumes
    marker = tmp_path / "ran"
    (copy / "ray" / "search" / "tuner.pkl").write_bytes(pickle.dumps(_Touch(marker)))
    with pytest.raises(UsageError, match=r"tuner\.pkl: changed since the search wrote it: refused to resume"):
        tune_model(resume=True, output=copy, verbose=0)
    assert not marker.exists()


def test_search_writes_every_output(search):
    out = search.result.output
    rows = _read_csv(out / "results.csv")
    assert len(rows) == 3 and [r["trial"] for r in rows] == [r["trial"] for r in search.result.rows]
    finished = [r for r in rows if r["status"] == "finished"]
    assert sorted(float(r["dropout_prob"]) for r in finished) == [0.2, 0.3]
    for row in finished:
        assert 1e-3 <= float(row["learning_rate"]) <= 1e-2
        assert row["epochs"] == "1" and float(row["seconds"]) > 0 and int(row["n_params"]) > 0
        assert row["threads"] == "1"  # torch's threads = the trial's CPUs
        assert float(row["valid_score"]) == float(row["valid/ndcg@10"])  # valid_metric NDCG@10
        assert 0 <= float(row["test/ndcg@10"]) <= float(row["test/hit@10"]) <= 1
        trial_dir = Path(row["trial_dir"])
        assert (trial_dir / "recbole.log").is_file()  # RecBole's log, one per trial
        assert not (trial_dir / "saved").exists()  # the trial's own checkpoint, deleted after its test
    # best first
    assert float(finished[0]["valid_score"]) >= float(finished[1]["valid_score"])
    assert rows[0] == finished[0]

    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["dropout_prob"] == float(rows[0]["dropout_prob"])
    assert best["learning_rate"] == pytest.approx(float(rows[0]["learning_rate"]), rel=1e-12)
    assert best["epochs"] == 1 and best["hidden_size"] == 8 and Path(best["data_path"]).is_dir()

    summary = (out / "summary.md").read_text()
    assert f"Trial `{rows[0]['trial']}`" in summary and "3 of 3 (1 error, 2 finished)" in summary
    assert "![plot_dropout_prob](plot_dropout_prob.png)" in summary
    for name in ("dropout_prob", "learning_rate"):
        assert (out / f"plot_{name}.png").read_bytes()[:8] == PNG_MAGIC
    assert not list(out.glob("*.tmp"))
    settings = json.loads((out / "search.json").read_text())
    assert settings["model"] == "GRU4Rec" and settings["overrides"]["epochs"] == 1
    assert search.result.best is not None and search.result.best["dropout_prob"] == best["dropout_prob"]


def test_failing_trial_is_recorded_and_the_search_goes_on(search):
    rows = _read_csv(search.result.output / "results.csv")
    failed = [r for r in rows if r["status"] == "error"]
    assert len(failed) == 1 and float(failed[0]["dropout_prob"]) == 1.5
    assert "dropout probability has to be between 0 and 1" in failed[0]["error"]
    assert failed[0]["valid_score"] == "" and failed[0]["test/ndcg@10"] == ""
    assert search.result.status_counts == {"finished": 2, "error": 1}
    assert "## Failed trials" in (search.result.output / "summary.md").read_text()


def _recbole_result(log: str, label: str) -> dict[str, float]:
    match = re.search(rf"{label}\s*:\s*OrderedDict\((\[.*?\])\)", log)
    assert match, log[-2000:]
    return dict(ast.literal_eval(match.group(1)))


def test_best_yaml_retrains_the_winner_through_the_cli(search, tmp_path):
    best_row = search.result.rows[0]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the trial trained with its 1 CPU
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_recbole_session.py"), "--model=GRU4Rec", "--dataset=ml-100k",
         "--config_files", str(search.result.output / "best.yaml"), "--state=INFO",
         f"--checkpoint_dir={tmp_path / 'saved'}", "--show_progress=False"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    valid, test = _recbole_result(log, "best valid "), _recbole_result(log, "test result")
    # same configuration, same seed, same data: the winner's numbers again
    assert valid["ndcg@10"] == best_row["valid/ndcg@10"] and valid["recall@20"] == best_row["valid/recall@20"]
    assert test["ndcg@10"] == best_row["test/ndcg@10"] and test["mrr@20"] == best_row["test/mrr@20"]


def test_usage_errors_stop_before_ray_starts(tmp_path, tiny, capsys):
    from recbole_session.tune.__main__ import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("hidden_size: {grid: [8, 16]}\nlearning_rate: {loguniform: [0, 1]}\n")
    data = f"--data_path={tiny['data_path']}"
    out = ["--out", str(tmp_path / "out")]
    cases = [
        (["--model=NoSuchModel", "--dataset=ml-100k", data, *out], "NoSuchModel"),
        (["--model=GRU4Rec", "--dataset=ml-100k", "--space", str(bad), data, *out],
         "bad.yaml, line 2, key 'learning_rate': loguniform needs 0 < low"),
        (["--model=GRU4Rec", "--dataset=ml-100k", "--space", str(tmp_path / "missing.yaml"), data, *out],
         "cannot read the search space"),
        (["--model=GRU4Rec", "--dataset=ml-100k", "--hidden_size=8", data, *out],
         "hidden_size is both searched"),
        (["--model=GRU4Rec", "--dataset=ml-100k", "--epochs=ten", data, *out], "epochs expects an integer"),
        (["--model=SASRec", "--dataset=ml-100k", data, *out], "no search space for SASRec"),
        # against the Ray instance of this process if one runs, else the machine (a trial that
        # asks for more than a local instance has would wait forever)
        (["--model=GRU4Rec", "--dataset=ml-100k", "--cpus-per-trial=4096", data, *out],
         "--cpus-per-trial=4096.0 but the local Ray instance has"),
        (["--model=GRU4Rec", "--dataset=ml-100k", "--gpus-per-trial=4096", data, *out],
         "--gpus-per-trial=4096.0 but the local Ray instance has"),
        (["--resume", "--out", str(tmp_path / "empty")], "nothing to resume"),
        (["--resume"], "needs the --out"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("python -m recbole_session.tune: error:") and message in err, (argv, err)
    assert not (tmp_path / "out").exists()


# a two-value grid over one key of each model of the package: the search's trials, with every
# other key at the model's own default (its yaml) but the sizes of EVERY_MODEL_SMALL
EVERY_MODEL_SPACES = {
    "SessionBERT4Rec": "hidden_size: {grid: [16, 32]}\n",
    "SRIEM": "learning_rate: {grid: [0.001, 0.002]}\n",
    "ASARS": "learning_rate: {grid: [0.1, 0.2]}\n",
    "VSKNN": "k: {grid: [50, 100]}\n",
    "SessionSASRec": "hidden_size: {grid: [16, 32]}\n",
    "SessionGRU4Rec": "hidden_size: {grid: [16, 32]}\n",
}
# smaller sizes than the yamls' (d 200 for SRIEM), so that the test is quick: what it checks
# (the data reaching a trial, the default validation protocol) does not depend on them
EVERY_MODEL_SMALL = {"SRIEM": ["--embedding_size=16", "--attention_size=8"],
                     "ASARS": ["--embedding_size=16", "--hidden_size=16"],
                     "SessionSASRec": ["--inner_size=32"], "SessionGRU4Rec": ["--embedding_size=16"]}


def test_every_model_of_the_package_searches_from_a_folder_with_a_relative_data_path(
        ray_address, atomic_root, tmp_path):
    """A 2-trial search of each model with its own defaults, run from a folder whose
    ``atomic_files/`` is the default (relative) ``data_path``, as the README runs it from the
    repository. A trial runs in its own folder: the dataset must reach it (the validation
    protocols once rebuilt it from the relative path and every trial failed)."""
    from recbole_session.lookup import _our_models

    assert set(EVERY_MODEL_SPACES) == set(_our_models())  # a new model joins this test
    (tmp_path / "atomic_files").symlink_to(atomic_root, target_is_directory=True)
    for model, text in EVERY_MODEL_SPACES.items():
        space = tmp_path / f"{model}.yaml"
        space.write_text(text)
        out = tmp_path / f"search-{model}"
        proc = subprocess.run(
            [sys.executable, "-m", "recbole_session.tune", f"--model={model}", "--dataset=ml-100k",
             "--space", str(space), "--out", str(out), "--address", ray_address, "--verbose", "0",
             "--epochs=1", "--state=WARNING", *EVERY_MODEL_SMALL.get(model, [])],
            cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{model}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        rows = _read_csv(out / "results.csv")
        assert [row["status"] for row in rows] == ["finished", "finished"], (model, [row["error"] for row in rows])
        assert (out / "best.yaml").is_file()


def test_a_search_whose_every_trial_failed_exits_1_naming_the_first_error(ray_address, search_dir, tiny):
    space = search_dir / "all-bad.yaml"
    space.write_text("dropout_prob: {grid: [1.5, 2.5]}\n")
    out = search_dir / "all-bad"
    proc = subprocess.run(
        [sys.executable, "-m", "recbole_session.tune", "--model=GRU4Rec", "--dataset=ml-100k", "--space", str(space),
         "--out", str(out), "--address", ray_address, "--verbose", "0", *[f"--{k}={v}" for k, v in tiny.items()]],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m recbole_session.tune: every trial failed; the first, ")
    assert "dropout probability has to be between 0 and 1" in last and "error.txt" in last
    assert not (out / "best.yaml").exists()
