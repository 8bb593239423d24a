"""The tune command's bad-input table (``tests/bad_input.py``): every option's range, every file
it reads (the search space, the output folder, a folder to resume), each refused in one line
with exit code 2 before any data is loaded or Ray starts. A folder to resume whose Ray state
changed since the search signed it is refused before Ray unpickles anything: a crafted
``tuner.pkl`` runs nothing. And tune_model's argument types, checked before anything else."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from recbole_session.cli import UsageError
from recbole_session.tune import tune_model
from recbole_session.tune.settings import SearchSettings
from recbole_session.tune.space import MAX_SPACE_BYTES
from recbole_session.tune.trust import KEY_ENV, MANIFEST, verify_manifest, write_manifest
from tests.bad_input import MARKER, BadInput, Gadget, check, drop_permission_override, write

TUNE = "recbole_session.tune.__main__:main"
LOCKED_TUNE = "tests.test_bad_input_tune:without_permission_override"
DATA = "--data_path={tmp}/data"  # ml-100k has a recipe: nothing is built before a check fails
SPACE = "{tmp}/space.yaml"
GRU = ("--model=GRU4Rec", "--dataset=ml-100k", "--out", "{tmp}/out", DATA)
SPACE_TEXT = "dropout_prob: {grid: [0.2, 0.3]}\n"
# a "billion laughs": 9 aliases of 9 aliases ... of a 3-letter string expand to 9^7 * 3 characters
ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, name in zip("abcdef", "bcdefg"))


def without_permission_override(argv: list[str]) -> int:
    """tune's main in a process that file permissions apply to (see drop_permission_override)."""
    drop_permission_override()
    from recbole_session.tune.__main__ import main

    return main(argv)


def _gadget(folder: Path) -> bytes:
    return pickle.dumps(Gadget(os.system, (f"touch {folder / MARKER}",)))


def _locked(folder: Path) -> None:
    (folder / "locked").mkdir()
    (folder / "locked").chmod(0o555)


def _searched(folder: Path) -> Path:
    """An output folder as a search leaves it (settings, space copy, Ray's experiment), signed
    with the tests' key."""
    out = folder / "out"
    experiment = out / "ray" / "search"
    experiment.mkdir(parents=True)
    settings = SearchSettings("GRU4Rec", "ml-100k", str(folder / "space.yaml"), [], {"data_path": str(folder / "data")})
    (out / "search.json").write_text(json.dumps(asdict(settings)))
    (out / "space.yaml").write_text(SPACE_TEXT)
    (experiment / "tuner.pkl").write_bytes(pickle.dumps({"_tuner_kwargs": {}}))
    (experiment / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    (experiment / "trial_1" / "params.pkl").parent.mkdir()
    (experiment / "trial_1" / "params.pkl").write_bytes(pickle.dumps({"dropout_prob": 0.2}))
    write_manifest(out)
    return out


def _crafted_tuner(folder: Path) -> None:
    """A signed folder whose tuner.pkl was then replaced by one that runs a command."""
    (_searched(folder) / "ray" / "search" / "tuner.pkl").write_bytes(_gadget(folder))


def _added_file(folder: Path) -> None:
    (_searched(folder) / "ray" / "search" / "trial_1" / "checkpoint.pkl").write_bytes(_gadget(folder))


def _removed_file(folder: Path) -> None:
    (_searched(folder) / "ray" / "search" / "trial_1" / "params.pkl").unlink()


def _edited_settings(folder: Path) -> None:
    settings = _searched(folder) / "search.json"
    settings.write_text(settings.read_text().replace("ml-100k", "ml-1m"))


def _unsigned(folder: Path) -> None:
    (_searched(folder) / MANIFEST).unlink()


def _other_key(folder: Path) -> None:
    """Signed with another user's key (a folder copied from elsewhere)."""
    saved = os.environ[KEY_ENV]
    os.environ[KEY_ENV] = str(folder / "other" / "resume.key")
    try:
        _searched(folder)
    finally:
        os.environ[KEY_ENV] = saved
    shutil.rmtree(folder / "other")


def _forged_manifest(folder: Path) -> None:
    """The attacker rewrites the manifest to match the crafted tuner.pkl, without the key."""
    out = _searched(folder)
    (out / "ray" / "search" / "tuner.pkl").write_bytes(_gadget(folder))
    manifest = json.loads((out / MANIFEST).read_text())
    import hashlib

    data = (out / "ray" / "search" / "tuner.pkl").read_bytes()
    for entry in manifest["files"]:
        if entry["path"].endswith("tuner.pkl"):
            entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (out / MANIFEST).write_text(json.dumps(manifest))


def case(input: str, argv: tuple[str, ...], message: str, setup=None, **kw) -> BadInput:
    return BadInput("tune", input, TUNE, argv, message, setup, **kw)


OPTION_CASES = [
    case("--reduction-factor=1", ("--model=GRU4Rec", "--reduction-factor=1"),
         "argument --reduction-factor: expected an integer >= 2 (ASHA keeps 1/factor of the trials at each rung), got 1"),
    case("--grace-period=0", ("--model=GRU4Rec", "--grace-period=0"),
         "argument --grace-period: expected an integer >= 1 (evaluations), got 0"),
    case("--num-samples=0", ("--model=GRU4Rec", "--num-samples=0"), "argument --num-samples: expected an integer >= 1, got 0"),
    case("--cpus-per-trial=0", ("--model=GRU4Rec", "--cpus-per-trial=0"),
         "argument --cpus-per-trial: expected a number >= 0.0001 (CPUs, fractions allowed), got 0"),
    case("--cpus-per-trial=nan", ("--model=GRU4Rec", "--cpus-per-trial=nan"), "argument --cpus-per-trial: expected a number"),
    case("--gpus-per-trial=-1", ("--model=GRU4Rec", "--gpus-per-trial=-1"),
         "argument --gpus-per-trial: expected 0 or a number >= 0.0001 (GPUs, fractions share one), got -1"),
    case("--max-concurrent=0", ("--model=GRU4Rec", "--max-concurrent=0"),
         "argument --max-concurrent: expected an integer >= 1 (trials at once), got 0"),
    case("--num-cpus=-2", ("--model=GRU4Rec", "--num-cpus=-2"),
         "argument --num-cpus: expected an integer >= 1 (CPUs of the local Ray instance), got -2"),
    case("--verbose=7", ("--model=GRU4Rec", "--verbose=7"), "argument --verbose: invalid choice: 7"),
    case("--scheduler=hyperband", ("--model=GRU4Rec", "--scheduler=hyperband"), "argument --scheduler: invalid choice"),
    case("--out onto an existing file", GRU, "out: is a file, not a folder (--out: move it away or choose another folder)", write("out", "x")),
    case("--out under an existing file", ("--model=GRU4Rec", "--dataset=ml-100k", "--out", "{tmp}/f/out", DATA),
         "f: is a file, not a folder, so", write("f", "x")),
    # permissions hold in a process they apply to (see drop_permission_override)
    BadInput("tune", "an output folder it may not write", LOCKED_TUNE,
             ("--model=GRU4Rec", "--dataset=ml-100k", "--out", "{tmp}/locked/out", DATA),
             "out: cannot write there: permission denied (--out: choose a writable folder)", _locked, subprocess=True),
    case("an empty --out (an unset shell variable)", ("--model=GRU4Rec", "--dataset=ml-100k", "--out=", DATA),
         "--out is empty: name the output folder"),
    case("an --out name longer than the file system allows",
         ("--model=GRU4Rec", "--dataset=ml-100k", "--out", "{tmp}/" + "o" * 300, DATA),
         "oooooooo': cannot use it as a folder: File name too long (--out)"),
    case("--address that is not host:port", (*GRU, "--address=ray://headnode"),
         "--address 'ray://headnode': expected auto, host:port or ray://host:port"),
    case("--address where no Ray cluster listens", (*GRU, "--address=127.0.0.1:1"),
         "--address 127.0.0.1:1: no Ray cluster answers there (Connection refused)"),
    case("a RecBole config file that is not UTF-8", (*GRU, "--config_files", "{tmp}/c.yaml"),
         "c.yaml, line 2: not UTF-8 text (byte 0xff)", write("c.yaml", b"epochs: 1\nx: \xff\n")),
    case("--num-samples that makes too many trials", (*GRU, "--num-samples=1000000"),
         "GRU4Rec.yaml: the search would make"),
    case("--resume without --out", ("--resume",), "--resume needs the --out folder of the search to continue"),
    case("--resume with --out a file", ("--resume", "--out", "{tmp}/f"), "f: is a file, not a folder (--out: move it away or choose another folder)",
         write("f", "x")),
    case("--resume on a folder with no search", ("--resume", "--out", "{tmp}"), "nothing to resume in"),
    case("--resume with an override", ("--resume", "--out", "{tmp}", "--epochs=3"),
         "--resume continues the search as it was started: give no --key=value overrides"),
]

SPACE_CASES = [
    case("a search space of nested yaml aliases (alias bomb)", ("--space", SPACE, *GRU),
         "space.yaml, line 6: not valid yaml: expands to more than 1,000,000 characters through its aliases",
         write("space.yaml", ALIAS_BOMB)),
    case("a search space whose alias refers to itself", ("--space", SPACE, *GRU),
         "space.yaml, line 1: not valid yaml: an alias refers to the node that holds it (a cycle)",
         write("space.yaml", "dropout_prob: &x {grid: [0.1, *x]}\n")),
    case("a search space that is not UTF-8", ("--space", SPACE, *GRU), "space.yaml, line 2: not utf-8 text",
         write("space.yaml", b"dropout_prob: {grid: [0.1]}\nhidden_size: {grid: [8]} # \xff\n")),
    case("an empty search space", ("--space", SPACE, *GRU), "space.yaml: the search space is empty",
         write("space.yaml", "# nothing yet\n")),
    case("a search space that is a list", ("--space", SPACE, *GRU),
         "space.yaml, line 1: a search space is a mapping of hyper-parameter names",
         write("space.yaml", "- dropout_prob\n- hidden_size\n")),
    case("a huge search space file", ("--space", SPACE, *GRU),
         f"space.yaml: larger than {MAX_SPACE_BYTES:,} bytes: not a search space",
         write("space.yaml", "# " + "x" * MAX_SPACE_BYTES + "\n")),
    case("a search space that never ends (/dev/zero)", ("--space", "/dev/zero", *GRU),
         "/dev/zero: larger than 65,536 bytes: not a search space"),
    case("a search space with a Python object tag", ("--space", SPACE, *GRU),
         "space.yaml, line 1: not valid yaml: could not determine a constructor for the tag",
         write("space.yaml", "dropout_prob: !!python/object/apply:os.system ['touch {tmp}/ran']\n")),
    case("a search space that is a folder", ("--space", "{tmp}", *GRU), "cannot read the search space: Is a directory"),
    case("a yaml 1.1 boolean as a search-space key", ("--space", SPACE, *GRU),
         "space.yaml, line 1, key 'on': a hyper-parameter name must be a RecBole config key",
         write("space.yaml", "on: {grid: [1, 2]}\n")),
    case("grid values of the wrong type for the key", ("--space", SPACE, *GRU),
         "space.yaml, line 2, key 'hidden_size': hidden_size expects an integer (default 128), got 'big' in its grid",
         write("space.yaml", "dropout_prob: {grid: [0.1]}\nhidden_size: {grid: [64, big]}\n")),
    case("uniform over an integer key", ("--space", SPACE, *GRU),
         "key 'hidden_size': hidden_size expects an integer (default 128), but uniform draws floats: use grid or choice",
         write("space.yaml", "hidden_size: {uniform: [8, 64]}\n")),
    case("a grid of a million trials", ("--space", SPACE, *GRU),
         "space.yaml: the search would make 1,000,000 trials (its grids times --num-samples), more than 100,000",
         write("space.yaml", "".join(f"{key}: {{grid: {list(range(1, 11))}}}\n" for key in (
             "hidden_size", "embedding_size", "num_layers", "train_batch_size", "eval_step", "stopping_step")))),
    case("a long value in a bad search space", ("--space", SPACE, *GRU), "got 'xxxxxxxxxxxx",
         write("space.yaml", "dropout_prob: {uniform: " + "x" * 50_000 + "}\n")),
]

RESUME_CASES = [
    case("--resume on a folder whose tuner.pkl was replaced", ("--resume", "--out", "{tmp}/out"),
         "tuner.pkl: changed since the search wrote it: refused to resume", _crafted_tuner),
    case("--resume on a folder with a file added to Ray's state", ("--resume", "--out", "{tmp}/out"),
         "trial_1/checkpoint.pkl: added since the search ended: refused to resume", _added_file),
    case("--resume on a folder with a file removed from Ray's state", ("--resume", "--out", "{tmp}/out"),
         "trial_1/params.pkl: removed since the search wrote it: refused to resume", _removed_file),
    case("--resume on a folder whose search.json was edited", ("--resume", "--out", "{tmp}/out"),
         "search.json: changed since the search wrote it", _edited_settings),
    case("--resume on a folder without a manifest (older version, copied)", ("--resume", "--out", "{tmp}/out"),
         "no resume.json, so its Ray state cannot be trusted", _unsigned),
    case("--resume on a folder signed by another user", ("--resume", "--out", "{tmp}/out"),
         "resume.json: the signature does not match this user's key", _other_key),
    case("--resume on a folder whose manifest was rewritten to match", ("--resume", "--out", "{tmp}/out"),
         "resume.json: the signature does not match this user's key", _forged_manifest),
]

CASES = OPTION_CASES + SPACE_CASES + RESUME_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, open_folder):
    check(case, open_folder)
    assert not (open_folder / MARKER).exists()


def test_the_crafted_tuner_pkl_would_run_code(tmp_path):
    """The refused file is live: Ray's unpickler (cloudpickle) runs it, so refusing it before
    Ray reads the folder is what keeps the marker from being created."""
    import ray.cloudpickle

    ray.cloudpickle.loads(_gadget(tmp_path))
    assert (tmp_path / MARKER).exists()


def test_a_signed_folder_verifies_and_any_change_is_refused(tmp_path):
    out = _searched(tmp_path)
    verify_manifest(out)  # as signed
    # every file the manifest lists is checked, the settings and space copy included
    signed = json.loads((out / MANIFEST).read_text())["files"]
    assert {e["path"] for e in signed} == {"search.json", "space.yaml", "ray/search/tuner.pkl",
                                            "ray/search/experiment_state-2026-01-01_00-00-00.json",
                                            "ray/search/trial_1/params.pkl"}
    (out / "space.yaml").write_text(SPACE_TEXT.replace("0.3", "0.4"))
    with pytest.raises(UsageError, match=r"space\.yaml: changed since the search wrote it"):
        verify_manifest(out)


def test_resume_without_the_key_file_is_refused(tmp_path, monkeypatch):
    out = _searched(tmp_path)
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "elsewhere" / "resume.key"))
    with pytest.raises(UsageError, match="no resume key at .*elsewhere/resume.key: this folder was not signed"):
        verify_manifest(out)
    assert not (tmp_path / "elsewhere").exists()  # verifying never creates a key


def test_the_key_is_made_once_private_and_outside_the_folder(tmp_path, monkeypatch):
    key = tmp_path / "config" / "recbole-session" / "resume.key"
    monkeypatch.setenv(KEY_ENV, str(key))
    out = _searched(tmp_path)
    assert key.is_file() and (key.stat().st_mode & 0o777) == 0o600
    assert (key.parent.stat().st_mode & 0o777) == 0o700
    first = key.read_bytes()
    write_manifest(out)  # signing again reuses the key
    assert key.read_bytes() == first and list(key.parent.iterdir()) == [key]
    key.chmod(0o644)
    with pytest.raises(UsageError, match="the resume key may be read or written by others"):
        verify_manifest(out)


def test_the_default_key_lives_in_the_user_config_folder(monkeypatch, tmp_path):
    from recbole_session.tune.trust import key_file

    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert key_file() == tmp_path / "recbole-session" / "resume.key"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert key_file() == tmp_path / "home" / ".config" / "recbole-session" / "resume.key"


@pytest.mark.parametrize("kwargs, message", [
    ({"model": 42, "dataset": "ml-100k"}, r"tune_model: model must be a model name \(str\) or None, got 42"),
    ({"model": "GRU4Rec", "dataset": ["ml-100k"]}, r"tune_model: dataset must be a dataset name \(str\) or None, got \['ml-100k'\]"),
    ({"model": "GRU4Rec", "dataset": "ml-100k", "num_samples": "4"}, r"tune_model: num_samples must be an integer >= 1, got '4'"),
    ({"model": "GRU4Rec", "dataset": "ml-100k", "num_samples": True}, r"num_samples must be an integer >= 1, got True"),
    ({"model": "GRU4Rec", "dataset": "ml-100k", "reduction_factor": 1}, r"reduction_factor must be an integer >= 2"),
    ({"model": "GRU4Rec", "dataset": "ml-100k", "cpus_per_trial": "2"}, r"cpus_per_trial must be a number >= 0.0001"),
    ({"model": "GRU4Rec", "dataset": "ml-100k", "max_concurrent": 0}, r"max_concurrent must be an integer >= 1 \(trials at once\) or None"),
    ({"model": "GRU4Rec", "dataset": "ml-100k", "scheduler": "pbt"}, r"scheduler must be one of asha, fifo, got 'pbt'"),
    ({"model": "GRU4Rec", "dataset": "ml-100k", "config_file_list": "a.yaml"}, r"config_file_list must be a list of config files or None, got 'a.yaml'"),
    ({"model": "GRU4Rec", "dataset": "ml-100k", "config_dict": {1: 2}}, r"config_dict must be a dict of config keys \(str\) or None"),
    ({"model": "GRU4Rec", "dataset": "ml-100k", "resume": "yes"}, r"resume must be True or False, got 'yes'"),
    ({"model": "GRU4Rec", "dataset": "ml-100k", "space": 3}, r"space must be a search-space file \(str or Path\) or None, got 3"),
    ({"model": "GRU4Rec", "dataset": "ml-100k", "num_samples": list(range(10**5))},
     r"num_samples must be an integer >= 1, got \[0, 1, 2, 3, 4, 5, \.\.\.\]$"),
])
def test_tune_model_checks_argument_types_first(tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=message):
        tune_model(output=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
