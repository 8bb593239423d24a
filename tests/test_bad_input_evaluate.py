"""Bad input to ``python -m recbole_session.evaluate`` and ``python -m recbole_session.compare``:
the bad-input contract (exit code 2, one stderr line naming the file and field or the option,
nothing left behind), the output paths checked before anything is loaded, and the Python
function's arguments checked at the door. The checkpoint is conftest's tiny SASRec."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path

import pytest

from recbole_session import evaluate
from recbole_session.cli import UsageError
from recbole_session.evaluation.candidates import MAX_NEGATIVES_SEED
from tests.bad_input import BadInput, check, drop_permission_override, steps, write

EVALUATE = "recbole_session.evaluate:main"
COMPARE = "recbole_session.compare:main"
LOCKED_EVALUATE = "tests.test_bad_input_evaluate:evaluate_without_permission_override"
LOCKED_COMPARE = "tests.test_bad_input_evaluate:compare_without_permission_override"
CHECKPOINT: dict[str, str] = {}  # the tiny SASRec's path, for the setups that copy it (set by the test)
FAST = ("--protocols", "full", "--split", "test")


def evaluate_without_permission_override(argv: list[str]) -> int:
    """evaluate's main in a process that file permissions apply to (root's override dropped)."""
    drop_permission_override()
    return evaluate.main(argv)


def compare_without_permission_override(argv: list[str]) -> int:
    drop_permission_override()
    from recbole_session.compare import main

    return main(argv)


def _mkdir(name: str):
    return lambda folder: (folder / name).mkdir()


def _lock(name: str):
    return lambda folder: (folder / name).chmod(0o555)


def _checkpoint_in(name: str):
    def setup(folder: Path) -> None:
        (folder / name).mkdir()
        shutil.copy(CHECKPOINT["SASRec"], folder / name / "model.pth")
    return setup


EVALUATE_CASES = [
    # the results files: checked before the checkpoint's data is loaded
    BadInput("evaluate", "--out onto a folder", EVALUATE, ("{ckpt}", *FAST, "--out", "{tmp}"),
             "is a folder; --out takes a stem (e.g."),
    BadInput("evaluate", "--out in a folder it may not write", LOCKED_EVALUATE,
             ("{ckpt}", *FAST, "--out", "{tmp}/locked/run"),
             "locked/run.results.json: cannot write in", setup=steps(_mkdir("locked"), _lock("locked")),
             subprocess=True),
    BadInput("evaluate", "a checkpoint in a folder it may not write, without --out", LOCKED_EVALUATE,
             ("{tmp}/locked/model.pth", *FAST),
             "permission denied (choose a writable folder with --out STEM)",
             setup=steps(_checkpoint_in("locked"), _lock("locked")), subprocess=True),
    BadInput("evaluate", "--out under a file", EVALUATE, ("{ckpt}", *FAST, "--out", "{tmp}/file/run"),
             "file is not a folder", setup=write("file", "x")),
    BadInput("evaluate", "--out whose results file is a folder", EVALUATE, ("{ckpt}", *FAST, "--out", "{tmp}/run"),
             "run.results.json: is a folder; give a file name", setup=_mkdir("run.results.json")),
    BadInput("evaluate", "--out with a 250-character name", EVALUATE, ("{ckpt}", *FAST, "--out", "{tmp}/" + "y" * 250),
             "a name too long (255 bytes at most"),
    # the options
    BadInput("evaluate", "--protocols random100000 (more than the items)", EVALUATE,
             ("{ckpt}", "--protocols", "random100000", "--split", "test"),
             "--protocols random100000: 100000 negatives, but dataset 'ml-100k' has 1272 items"),
    BadInput("evaluate", "--protocols pop5000 (more than the items)", EVALUATE,
             ("{ckpt}", "--protocols", "pop5000", "--split", "test"), "--protocols pop5000: 5000 negatives"),
    BadInput("evaluate", "--protocols random1250 (more than a user's unseen items)", EVALUATE,
             ("{ckpt}", "--protocols", "random1250", "--split", "test"),
             "can be negatives (< 1250); use a smaller N"),
    BadInput("evaluate", "--protocols ''", EVALUATE, ("{ckpt}", "--protocols", ""), "no evaluation protocol given"),
    BadInput("evaluate", "--split ''", EVALUATE, ("{ckpt}", "--split", ""), "--split must name valid and/or test, got ''"),
    BadInput("evaluate", "--eval_negatives_seed -1", EVALUATE, ("{ckpt}", *FAST, "--eval_negatives_seed", "-1"),
             f"--eval_negatives_seed expects an integer from 0 to {MAX_NEGATIVES_SEED}"),
    BadInput("evaluate", "--eval_negatives_seed 2**32", EVALUATE,
             ("{ckpt}", *FAST, "--eval_negatives_seed", str(MAX_NEGATIVES_SEED + 1)),
             f"got {MAX_NEGATIVES_SEED + 1}"),
    BadInput("evaluate", "--eval_negatives_seed x", EVALUATE, ("{ckpt}", *FAST, "--eval_negatives_seed", "x"),
             "argument --eval_negatives_seed: invalid int value: 'x'"),
]

RUN = {"kind": "run", "model": "M", "dataset": "d", "seed": 1,
       "per_user": {"test": {"users": ["1", "2"], "fingerprints": {"random100": "aa"},
                             "per_user": {"random100/ndcg@10": [0.5, 1.0]}}}}


def _run(**changes) -> str:
    """RUN as JSON, with ``changes`` at dotted paths (``None``: the field removed)."""
    data = json.loads(json.dumps(RUN))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return json.dumps(data)


def _compare_case(what: str, b: str | bytes, message: str, name: str = "b.results.json",
                  extra: tuple[str, ...] = ()) -> BadInput:
    return BadInput("compare", what, COMPARE, ("{tmp}/a.results.json", f"{{tmp}}/{name}", *extra), message,
                    setup=steps(write("a.results.json", _run()), write(name, b)))


NDCG = "per_user__test__per_user__random100/ndcg@10"
COMPARE_CASES = [
    _compare_case("a results file that is not JSON", '{\n  "x": 1,\n}', "b.results.json: line 3: not valid JSON"),
    _compare_case("a results file that is not UTF-8", b'{"model": "\xff"}', "b.results.json: not UTF-8 text"),
    _compare_case("a results file nested 100,000 deep", "[" * 100_000 + "]" * 100_000, "JSON nested too deep"),
    _compare_case("a results file holding a list", "[1, 2]",
                  "b.results.json: field '(top level)' expects an object, got list [1, 2]"),
    _compare_case("a results file without per_user", '{"model": "M"}', "b.results.json: field 'per_user' missing"),
    _compare_case("per_user that is a list", _run(per_user=[1]), "field 'per_user' expects an object"),
    _compare_case("a split without users", _run(per_user__test__users=None),
                  "field 'per_user.test.users' expects a list of user ids, missing"),
    _compare_case("fingerprints that are a string", _run(per_user__test__fingerprints="aa"),
                  "field 'per_user.test.fingerprints' expects an object (protocol -> fingerprint text), got str 'aa'"),
    _compare_case("fewer values than users", _run(**{NDCG: [0.5]}),
                  "field 'per_user.test.per_user.random100/ndcg@10' expects a list of 2 numbers (one per user), got list [0.5]"),
    _compare_case("a value that is not a number", _run(**{NDCG: ["x", 1.0]}), "expects a list of 2 numbers"),
    _compare_case("a model name that is a number", _run(model=5), "field 'model' expects a name, got int 5"),
    BadInput("compare", "a results file that does not exist", COMPARE, ("{tmp}/a.results.json", "{tmp}/none.results.json"),
             "none.results.json: no results file", setup=write("a.results.json", _run())),
    BadInput("compare", "a run's .log without its results file", COMPARE, ("{tmp}/a.results.json", "{tmp}/run.log"),
             "run.results.json: no results file", setup=steps(write("a.results.json", _run()), write("run.log", "x"))),
    BadInput("compare", "a folder", COMPARE, ("{tmp}/a.results.json", "{tmp}"), "is a folder, not a results file",
             setup=write("a.results.json", _run())),
    BadInput("compare", "a results file it may not read", LOCKED_COMPARE, ("{tmp}/a.results.json", "{tmp}/b.results.json"),
             "b.results.json: cannot read: permission denied",
             setup=steps(write("a.results.json", _run()), write("b.results.json", _run()),
                          lambda folder: (folder / "b.results.json").chmod(0)), subprocess=True),
    _compare_case("runs of other users", _run(per_user__test__users=["1", "3"]), "the runs evaluated different users"),
    _compare_case("runs on other candidates", _run(per_user__test__fingerprints={"random100": "bb"}),
                  "protocol 'random100': the runs used different candidates"),
    _compare_case("--metrics that neither run has", _run(), "the runs have no protocol metric in common",
                  extra=("--metrics", "auc")),
    _compare_case("--split train", _run(), "argument --split: invalid choice: 'train'", extra=("--split", "train")),
]

CASES = EVALUATE_CASES + COMPARE_CASES


@pytest.fixture
def open_folder(tmp_path):
    """The case's folder; its locked folders are opened again afterwards, for pytest to remove."""
    yield tmp_path
    for path in [tmp_path, *tmp_path.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2(case, checkpoints, open_folder):
    CHECKPOINT["SASRec"] = checkpoints["SASRec"]
    argv = tuple(a.replace("{ckpt}", checkpoints["SASRec"]) for a in case.argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        outcome = check(dataclasses.replace(case, argv=argv), open_folder)
    assert len(outcome.stderr) < 1000, outcome.stderr


def test_the_table_lists_each_case_once():
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("out", ["{tmp}", "{tmp}/file/run", "{tmp}/run"])
def test_output_paths_are_checked_before_anything_is_loaded(out, checkpoints, tmp_path, monkeypatch, capsys):
    """A results path that cannot be written fails before the checkpoint's data and model are
    built (it failed after the whole evaluation)."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "run.results.json").mkdir()

    def loaded(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded before the output paths were checked")

    monkeypatch.setattr(evaluate, "from_checkpoint", loaded)
    assert evaluate.main([checkpoints["SASRec"], *FAST, "--out", out.replace("{tmp}", str(tmp_path))]) == 2
    assert "--out" in capsys.readouterr().err


def test_reevaluate_refuses_wrong_argument_types_in_one_line(tmp_path):
    path = str(tmp_path / "model.pth")
    calls = [
        (lambda: evaluate.reevaluate(5, "full"), "reevaluate: path expects a checkpoint path \\(str or Path\\), got int"),
        (lambda: evaluate.reevaluate(path, 5), "reevaluate: protocols expects a comma-separated string or a list"),
        (lambda: evaluate.reevaluate(path, ["full", 1]), "protocols expects .* got \\['full', 1\\]"),
        (lambda: evaluate.reevaluate(path, "full", "test"), "splits expects a tuple of 'valid' and/or 'test', got 'test'"),
        (lambda: evaluate.reevaluate(path, "full", ("train",)), "splits expects a tuple of 'valid' and/or 'test'"),
        (lambda: evaluate.reevaluate(path, "full", data_path=5), "reevaluate: data_path expects a path"),
        (lambda: evaluate.reevaluate(path, "full", out=["x"]), "reevaluate: out expects a path"),
        (lambda: evaluate.reevaluate(path, "full", seed=-1), "--eval_negatives_seed expects an integer from 0"),
        (lambda: evaluate.reevaluate(path, "full", seed=True), "--eval_negatives_seed expects an integer from 0"),
        (lambda: evaluate.reevaluate(path, "full", seed="7"), "--eval_negatives_seed expects an integer from 0"),
    ]
    for call, message in calls:
        with pytest.raises(UsageError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value)
