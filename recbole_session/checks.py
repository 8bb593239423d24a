"""Checks of a Config before any data is loaded: unknown keys, value types and value ranges.

:data:`RULES` is the one table of value ranges (key -> check); :func:`check_config` applies it,
with the type check of the overrides and the unknown-key check, and raises
:class:`~recbole_session.cli.UsageError` naming the option and what was expected. A key is
*known* when a yaml file of RecBole or of this package defines it, RecBole's or this package's
code reads it (``config["key"]``), or the run's own config files set it.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import recbole

from recbole_session.cli import UsageError, suggestion
from recbole_session.evaluation.candidates import parse_protocols
from recbole_session.literals import load_yaml
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
    value = config[key]
    for source in (config.cmd_config_dict, config.variable_config_dict):
        if key in source:
            return f"--{key}={value!r}"
    if key in config.file_config_dict:
        return f"{key}: {value!r} (config files)"
    return f"{key}: {value!r}"


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
            raise UsageError(f"bad override --{key}={value!r}: {key} expects {_KIND[type(default)]} (default {default!r})")


def check_values(config) -> None:
    """Every key of :data:`RULES` that the config sets must pass its check."""
    for key, rule in RULES.items():
        if key in config and config[key] is not None and not rule.check(config[key]):
            raise UsageError(f"bad value {_given(config, key)}: {key} expects {rule.expected}")


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
            raise UsageError(f"unknown config key --{key}={overrides[key]!r}{suggestion(key, known)} "
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
