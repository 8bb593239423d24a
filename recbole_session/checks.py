"""Checks of a Config before any data is loaded: unknown keys, value types and value ranges,
and the config values that RecBole's models would turn into code.

:data:`RULES` is the one table of value ranges (key -> check); :func:`check_config` applies it,
with the type check of the overrides and the unknown-key check, and raises
:class:`~recbole_session.cli.UsageError` naming the option and what was expected. A key is
*known* when a yaml file of RecBole or of this package defines it, RecBole's or this package's
code reads it (``config["key"]``), or the run's own config files set it.

:data:`CODE_PATHS` is the table of the places where a RecBole model's ``__init__`` evaluates a
config value or unpickles a file that a config value or the dataset folder names (read from
RecBole 1.2.1's source; a test keeps it complete). :func:`check_code_paths` refuses, before
anything is built, every value that would reach one of them with something other than data: our
Config runs it on every config it makes, from files, dicts, command lines and checkpoints alike.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import recbole

from recbole_session.cli import UsageError, suggestion
from recbole_session.evaluation.candidates import parse_protocols
from recbole_session.literals import load_yaml, short
from recbole_session.paths import PACKAGE_DIR, properties_dir

# a config key read in code: config["key"] or config['key']
_READ_KEY = re.compile(r"config\[\s*[\"'](\w+)[\"']\s*\]")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _protocols(value: Any) -> bool:
    if not value:  # [] switches the protocols off
        return True
    try:
        parse_protocols(value)
    except (ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class Rule:
    check: Callable[[Any], bool]
    expected: str


def _at_least(low: int) -> Rule:
    return Rule(lambda v: _is_int(v) and v >= low, f"an integer >= {low}")


_PROBABILITY = Rule(lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)")

# key -> the values it accepts (checked on the final config: overrides, config files and yaml)
RULES: dict[str, Rule] = {
    "epochs": _at_least(1),
    "train_batch_size": _at_least(1),
    "eval_batch_size": _at_least(1),
    "MAX_ITEM_LIST_LENGTH": _at_least(1),
    "stopping_step": _at_least(1),
    "eval_step": _at_least(0),
    "learning_rate": Rule(lambda v: _is_number(v) and v > 0, "a number > 0"),
    "weight_decay": Rule(lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "mask_ratio": Rule(lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)"),
    "ft_ratio": Rule(lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "dropout_prob": _PROBABILITY,
    "hidden_dropout_prob": _PROBABILITY,
    "attn_dropout_prob": _PROBABILITY,
    "eval_protocols": Rule(_protocols,
                           "a list of full, random<N>, popular<N>, uni<N>, pop<N> (e.g. [random100, full])"),
}

_KIND = {bool: "True or False", int: "an integer", float: "a number"}


def _given(config, key: str) -> str:
    """How the user gave ``key`` (for the message)."""
    value = short(config[key])
    for source in (config.cmd_config_dict, config.variable_config_dict):
        if key in source:
            return f"--{key}={value}"
    if key in config.file_config_dict:
        return f"{key}: {value} (config files)"
    return f"{key}: {value}"


def check_types(config, overrides: dict[str, Any]) -> None:
    """An override whose default is a number or a bool must be one too (``--epochs=ten``
    would otherwise fail deep inside training)."""
    for key in overrides:
        value = config[key]  # typed as the Config types it (a "16" in config_dict is 16)
        default = config.internal_config_dict.get(key)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = _is_int(value)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            continue
        if not ok:
            raise UsageError(f"bad override --{key}={short(value)}: {key} expects {_KIND[type(default)]} (default {default!r})")


def check_values(config) -> None:
    """Every key of :data:`RULES` that the config sets must pass its check."""
    for key, rule in RULES.items():
        if key in config and config[key] is not None and not rule.check(config[key]):
            raise UsageError(f"bad value {_given(config, key)}: {key} expects {rule.expected}")


class UnsafeConfigError(UsageError):
    """A config value that a RecBole model would run as code or unpickle (one line)."""


@dataclass(frozen=True)
class CodePath:
    """A place where ``model``'s ``__init__`` turns the value of ``key`` into code or objects:

    - ``kind="name"``: ``eval()``s the value; it must be one of ``names`` (a bare class name,
      which eval only looks up);
    - ``kind="torch"``: ``torch.load`` reads the file the value names, with torch's default
      unpickler (a full one where ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set); the file must
      open with the weights-only unpickler, as the package's checkpoints do;
    - ``kind="npy"``: ``np.load(<dataset folder>/<file>, allow_pickle=True)``, which unpickles a
      file that is not a plain ``.npy`` array; ``key`` is the file name.

    ``active``: whether the config reaches the place (RecBole's own condition)."""

    model: str
    key: str
    kind: str
    active: Callable[[Any], bool] = lambda config: True
    names: tuple[str, ...] = ()


def _set(key: str) -> Callable[[Any], bool]:
    return lambda config: config[key] not in (None, "")


# RecBole 1.2.1's models whose __init__ calls eval(), torch.load() or np.load(allow_pickle=True)
# on something a config value or the dataset folder gives (tests/test_safety.py scans RecBole's
# model sources and fails on a call this table does not cover)
CODE_PATHS: tuple[CodePath, ...] = (
    # kd_dagfm.py: self.teacher_network = eval(f"{config['teacher']}")(...)
    CodePath("KD_DAGFM", "teacher", "name", names=("CrossNet", "CIN")),
    CodePath("KD_DAGFM", "warm_up", "torch", lambda c: c["phase"] != "teacher_training"),
    CodePath("NeuMF", "mf_pretrain_path", "torch", lambda c: bool(c["use_pretrain"])),
    CodePath("NeuMF", "mlp_pretrain_path", "torch", lambda c: bool(c["use_pretrain"])),
    CodePath("ConvNCF", "pre_model_path", "torch", lambda c: c["train_method"] == "after_pretrain"),
    CodePath("NAIS", "pretrain_path", "torch", _set("pretrain_path")),
    CodePath("RaCT", "pre_model_path", "torch", lambda c: c["train_stage"] in ("critic_pretrain", "finetune")),
    CodePath("S3Rec", "pre_model_path", "torch", lambda c: c["train_stage"] == "finetune"),
    CodePath("LDiffRec", "item_emb.npy", "npy", lambda c: _is_int(c["n_cate"]) and c["n_cate"] > 1),
)
# torch.load without weights_only= unpickles fully when this is set in the environment
FORCE_FULL_UNPICKLER = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def _npy_problem(path: Path) -> str | None:
    """What makes ``path`` more than a plain array to ``np.load(allow_pickle=True)``, read from
    its header only (a file without numpy's magic is unpickled whole; an object dtype unpickles
    its items), or None."""
    import numpy as np

    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                return f"a .npy file of version {version[0]}.{version[1]}, which this check cannot read"
            _, _, dtype = read_header(handle)
    except OSError as err:
        return f"cannot read the file ({err.strerror})"
    except ValueError:  # no magic, a bad header: np.load(allow_pickle=True) would unpickle it
        return "not a .npy array (numpy would read it as a pickle, which can run code)"
    if dtype.hasobject:
        return f"an array of Python objects (dtype {dtype}): loading it unpickles them, which can run code"
    return None


def _torch_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a file torch's weights-only unpickler reads, or None."""
    from recbole_session.checkpoint import CheckpointError, load

    try:
        load(path, map_location="cpu")
    except CheckpointError as err:
        return str(err).split(": ", 1)[-1]
    return None


def check_code_paths(config) -> None:
    """Refuse (:class:`UnsafeConfigError`) a config whose values would make a RecBole model run
    code or unpickle a file (:data:`CODE_PATHS`), and ``.npy`` files in the dataset folder that
    ``np.load(allow_pickle=True)`` would unpickle; reads only file headers and weights-only
    pickles, builds nothing."""
    model = config["model"]
    for path in CODE_PATHS:
        if path.model != model or not path.active(config):
            continue
        if path.kind == "name":
            value = config[path.key]
            if value not in path.names:
                raise UnsafeConfigError(
                    f"refused: {model} evaluates its key {path.key} as Python code: {path.key} must be one of "
                    f"{', '.join(path.names)}, not {short(value)}")
            continue
        if path.kind == "npy":
            file = Path(config["data_path"]) / path.key
            if not file.is_file():
                raise UsageError(f"{file}: no such file ({model} with {_given(config, 'n_cate')} reads it)")
            continue  # its contents: the folder's scan below
        value = config[path.key]
        if not isinstance(value, str) or not value:
            raise UsageError(f"bad value {_given(config, path.key)}: {model} loads this file here: expected a path")
        if os.environ.get(FORCE_FULL_UNPICKLER, "0").lower() in ("1", "y", "yes", "true"):
            raise UnsafeConfigError(
                f"refused: {model} reads {path.key} ({short(value)}) with torch.load, and {FORCE_FULL_UNPICKLER} "
                "makes that a full unpickler, which can run code: unset it")
        problem = _torch_file_problem(Path(value))
        if problem is not None:
            raise UnsafeConfigError(f"{value}: {path.key} of {model}: {problem}")
    folder = Path(config["data_path"])
    for file in sorted(folder.glob("*.npy")) if folder.is_dir() else ():
        problem = _npy_problem(file)
        if problem is not None:
            raise UnsafeConfigError(f"{file}: refused: {problem}")


@functools.cache
def _yaml_keys() -> frozenset[str]:
    """The keys of every yaml property file of RecBole and of this package."""
    keys: set[str] = set()
    roots = [Path(recbole.__file__).parent / "properties", properties_dir()]
    for file in (f for root in roots for f in root.rglob("*.yaml")):
        try:
            loaded = load_yaml(file.read_text(encoding="utf-8"))
        except Exception:  # a file we cannot read defines no keys
            continue
        if isinstance(loaded, dict):
            keys |= {str(k) for k in loaded}
    return frozenset(keys)


@functools.cache
def _code_keys() -> frozenset[str]:
    """The keys RecBole's and this package's code read as ``config["key"]``."""
    keys: set[str] = set()
    for root in (Path(recbole.__file__).parent, PACKAGE_DIR):
        for file in root.rglob("*.py"):
            keys |= set(_READ_KEY.findall(file.read_text(encoding="utf-8", errors="replace")))
    return frozenset(keys)


def known_keys(config) -> set[str]:
    """The keys an override may set (see the module docstring)."""
    given = set(config.cmd_config_dict) | set(config.variable_config_dict)
    own = set(config.internal_config_dict) | set(config.file_config_dict) | (set(config.final_config_dict) - given)
    return own | _yaml_keys() | _code_keys()


def check_keys(config, overrides: dict[str, Any]) -> None:
    """Refuse an override no yaml file and no code knows (``--max_session_segmentz=0``)."""
    unknown = [key for key in overrides if key not in config.internal_config_dict
               and key not in config.file_config_dict]
    if not unknown:
        return
    known = known_keys(config)
    for key in unknown:
        if key not in known:
            raise UsageError(f"unknown config key --{key}={short(overrides[key])}{suggestion(key, known)} "
                             "(known keys: those of RecBole's and this package's yaml files)")


def search_keys(config) -> set[str]:
    """The keys a search space may vary: those of the model's yaml and RecBole's defaults (the
    config the search starts from), and of its config files."""
    return set(config.internal_config_dict) | set(config.file_config_dict)


def check_config(config, overrides: dict[str, Any] | None = None) -> None:
    """Keys, types and ranges of a Config (and of the overrides it was built with)."""
    overrides = overrides or {}
    check_keys(config, overrides)
    check_types(config, overrides)
    check_values(config)
