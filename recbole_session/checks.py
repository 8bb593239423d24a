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
import shutil
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
# the keys of RecBole's distributed path, which its Config reads from final_config_dict
DISTRIBUTED_KEYS = frozenset({"nproc", "world_size", "ip", "port", "offset", "local_rank"})


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
    """``check(value, config)``: whether the value is acceptable; ``expected``: what is, in words
    (a function of the config where it depends on other keys)."""

    check: Callable[[Any, Any], bool]
    expected: str | Callable[[Any], str]

    def expects(self, config) -> str:
        return self.expected(config) if callable(self.expected) else self.expected


def _between(low: int, high: int) -> Rule:
    return Rule(lambda v, c: _is_int(v) and low <= v <= high,
                f"an integer >= {low}" + (f" and <= {high:,}" if high != math.inf else ""))


def _at_least(low: int) -> Rule:
    return _between(low, math.inf)


# numpy's (and so RecBole's init_seed's) seeds are 32-bit unsigned integers
MAX_SEED = 2**32 - 1
# a batch past this is no batch: RecBole's loaders and torch's indexing use 32-bit sizes
MAX_BATCH = 2**31 - 1
_PROBABILITY = Rule(lambda v, c: _is_number(v) and 0 <= v < 1, "a number in [0, 1)")
# RecBole's init_logger maps these (in any case) to logging levels and anything else to INFO
LOG_STATES = ("INFO", "DEBUG", "WARNING", "ERROR", "CRITICAL")
# RecBole's Trainer._build_optimizer knows these and silently trains with Adam on any other
LEARNERS = ("adam", "adamw", "sgd", "adagrad", "rmsprop", "sparse_adam")
# the losses of RecBole's sequential models
RECBOLE_LOSS_TYPES = ("CE", "BPR")
# RecBole's eval_args orders: random, time (sequential models need time order)
EVAL_ORDERS = ("RO", "TO")
# longer sequences than this are no session history: RecBole allocates rows x this length
MAX_SEQUENCE_LENGTH = 100_000


def _metric_names(config) -> list[str]:
    metrics = config["metrics"]
    return [str(m) for m in ([metrics] if isinstance(metrics, str) else (metrics or []))]


def _topk(config) -> list[int]:
    topk = config["topk"]
    return [topk] if _is_int(topk) else [k for k in (topk or []) if _is_int(k)]


def _computed_metrics(config) -> list[str]:
    """The metric names a run computes: ``ndcg@10`` for a top-k metric, ``auc`` for a value one."""
    from recbole.evaluator.register import metric_information

    names = []
    for metric in _metric_names(config):
        # RecBole's top-k metrics are the ones that read the top-k lists (rec.topk, rec.items)
        if {"rec.topk", "rec.items"} & set(metric_information.get(metric.lower(), ())):
            names += [f"{metric.lower()}@{k}" for k in _topk(config)]
        else:
            names.append(metric.lower())
    return names


def _known_metrics(value: Any) -> bool:
    from recbole.evaluator.register import metric_information

    names = [value] if isinstance(value, str) else value
    return (isinstance(names, (list, tuple)) and bool(names)
            and all(isinstance(m, str) and m.lower() in metric_information for m in names))


def _metric_choices(config) -> str:
    from recbole.evaluator.register import metric_information

    given = [m for m in _metric_names(config) if m.lower() not in metric_information]
    hint = suggestion(given[0], metric_information) if given else ""
    return f"a non-empty list of RecBole metrics{hint} (known: {', '.join(sorted(metric_information))})"


def _sizes(value: Any, config) -> bool:
    """A layer size or count: a positive integer, or a list of them (some models take one per layer)."""
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(_is_int(v) and v >= 1 for v in values)


def _loss_types(config) -> tuple[str, ...]:
    """The losses of a sequential model: its module's ``LOSS_TYPES`` where it declares them
    (ASARS), else RecBole's CE and BPR."""
    import sys

    module = sys.modules.get(getattr(config.model_class, "__module__", ""), None)
    return tuple(getattr(module, "LOSS_TYPES", None) or RECBOLE_LOSS_TYPES)


def _loss_type(value: Any, config) -> bool:
    from recbole.utils import ModelType

    return config["MODEL_TYPE"] != ModelType.SEQUENTIAL or value in _loss_types(config)


def _eval_order(value: Any, config) -> bool:
    from recbole.utils import ModelType

    if not isinstance(value, dict):
        return True  # RecBole's Config says "should be a dict" in one line itself
    order = value.get("order", "RO")
    return order in EVAL_ORDERS and (config["MODEL_TYPE"] != ModelType.SEQUENTIAL or order == "TO")


def _gpu_ids(value: Any, config) -> bool:
    return (_is_int(value) and value >= 0) or (
        isinstance(value, str) and all(part.strip().isdigit() for part in value.split(",")))


def _eval_split_problem(value: Any, config) -> str | None:
    """What ``eval_split`` expects that the config does not give (see
    :func:`recbole_session.data.split.split_problem`), or None."""
    from recbole_session.data.split import LAST_SESSION, split_problem

    problem = split_problem(config)
    if problem is None and value == LAST_SESSION:
        from recbole_session.data.dataset import SessionSequentialDataset
        from recbole_session.lookup import dataset_class

        cls = dataset_class(config["model"], config["MODEL_TYPE"])
        if not issubclass(cls, SessionSequentialDataset):  # a general model, RecBole's KSRDataset
            return (f"loo for {config['model']}, whose dataset class is RecBole's {cls.__name__} "
                    f"({LAST_SESSION} splits the rows of recbole_session's sequential dataset classes)")
    return problem


def _eval_split_expected(config) -> str:
    from recbole_session.data.split import EVAL_SPLITS

    return _eval_split_problem(config["eval_split"], config) or f"one of {', '.join(EVAL_SPLITS)}"


def _valid_metric(value: Any, config) -> bool:
    return isinstance(value, str) and value.lower() in _computed_metrics(config)


# the values each key of the session input (SessionBERT4Rec, SessionSASRec, SessionGRU4Rec)
# accepts; the models read them from here
SESSION_CHOICES = {
    "padding_side": ("left", "right"),
    "temporal_proj_init": ("default", "normal"),
    "temporal_join": ("add", "concat"),  # SessionGRU4Rec's
}


def _session_choice(key: str) -> Rule:
    choices = SESSION_CHOICES[key]
    return Rule(lambda v, c: v in choices, f"one of {', '.join(choices)}")


# SessionBERT4Rec's training rows (docs/sessionbert4rec.md)
TRAIN_REGIMES = ("prefix", "per_user", "window")


# key -> the values it accepts (checked on the final config: overrides, config files and yaml)
RULES: dict[str, Rule] = {
    "epochs": _at_least(1),
    "train_batch_size": _between(1, MAX_BATCH),
    "eval_batch_size": _between(1, MAX_BATCH),
    "MAX_ITEM_LIST_LENGTH": _between(1, MAX_SEQUENCE_LENGTH),
    "stopping_step": _at_least(1),
    "eval_step": _at_least(0),
    "seed": _between(0, MAX_SEED),
    "eval_negatives_seed": _between(0, MAX_SEED),
    "learning_rate": Rule(lambda v, c: _is_number(v) and v > 0, "a number > 0"),
    "weight_decay": Rule(lambda v, c: _is_number(v) and v >= 0, "a number >= 0"),
    "mask_ratio": Rule(lambda v, c: _is_number(v) and 0 < v < 1, "a number in (0, 1)"),
    "ft_ratio": Rule(lambda v, c: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    # SessionBERT4Rec's masking: of the chosen items, these shares become MASK or a random item
    "mask_token_prob": _PROBABILITY,
    "mask_random_prob": Rule(lambda v, c: _is_number(v) and 0 <= v and v + (c["mask_token_prob"] or 0) <= 1,
                             "a number in [0, 1] with mask_token_prob + mask_random_prob <= 1"),
    "train_regime": Rule(lambda v, c: v in TRAIN_REGIMES, f"one of {', '.join(TRAIN_REGIMES)}"),
    "dropout_prob": _PROBABILITY,
    "hidden_dropout_prob": _PROBABILITY,
    "attn_dropout_prob": _PROBABILITY,
    "eval_protocols": Rule(lambda v, c: _protocols(v),
                           "a list of full, random<N>, popular<N>, uni<N>, pop<N> (e.g. [random100, full])"),
    "state": Rule(lambda v, c: isinstance(v, str) and v.upper() in LOG_STATES, f"one of {', '.join(LOG_STATES)}"),
    "metrics": Rule(lambda v, c: _known_metrics(v), _metric_choices),
    "learner": Rule(lambda v, c: isinstance(v, str) and v.lower() in LEARNERS, f"one of {', '.join(LEARNERS)}"),
    "loss_type": Rule(_loss_type, lambda c: f"one of {', '.join(_loss_types(c))} for {c['model']}"),
    "eval_args": Rule(_eval_order, lambda c: f"order {' or '.join(EVAL_ORDERS)} ('TO', time order, for a "
                      f"sequential model such as {c['model']})"),
    "gpu_id": Rule(_gpu_ids, "GPU numbers separated by commas (e.g. 0 or '0,1')"),
    **{key: Rule(_sizes, "a positive integer (or a list of them)") for key in
       ("embedding_size", "hidden_size", "inner_size", "n_layers", "num_layers", "n_heads")},
    "eval_split": Rule(lambda v, c: _eval_split_problem(v, c) is None, _eval_split_expected),
    # the session input's switches and layout (0 switches SSE / TAS off)
    "max_session_segments": _at_least(0),
    "temporal_dim": _at_least(0),
    **{key: _session_choice(key) for key in ("padding_side", "temporal_proj_init", "temporal_join")},
    "valid_metric": Rule(_valid_metric, lambda c: "one of the metrics the run computes (metrics at each topk): "
                         + ", ".join(_computed_metrics(c)[:12])),
}

_KIND = {bool: "True or False", int: "an integer", float: "a number", str: "a string"}


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
        elif isinstance(default, str) and key not in RULES:  # RULES say more (gpu_id takes 0 too)
            ok = isinstance(value, (str, os.PathLike))
        else:
            continue
        if not ok:
            raise UsageError(f"bad override --{key}={short(value)}: {key} expects {_KIND[type(default)]} (default {default!r})")


def check_values(config, keys: tuple[str, ...] | None = None) -> None:
    """Every key of :data:`RULES` (or of ``keys``) that the config sets must pass its check."""
    for key, rule in RULES.items():
        if key not in config or (keys is not None and key not in keys):
            continue
        if config[key] is None:
            # null where RecBole's or the model's default is a value: RecBole fails late on it
            if (getattr(config, "internal_config_dict", None) or {}).get(key) is not None:
                raise UsageError(f"bad value {_given(config, key)}: {key} expects {rule.expects(config)}, not null")
            continue
        if not rule.check(config[key], config):
            raise UsageError(f"bad value {_given(config, key)}: {key} expects {rule.expects(config)}")


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


# RecBole writes its logs under these folders of the working directory (init_logger's LOGROOT,
# get_tensorboard's base_path)
LOG_FOLDERS = ("log", "log_tensorboard")
# the least free space a run's folders need before it starts (its log, its first checkpoint's
# header); the checkpoint's own size is checked once the model is built (:func:`check_room`)
MIN_FREE_BYTES = 1 << 20
# a checkpoint holds the weights and the optimizer's state (Adam: two more tensors per weight)
CHECKPOINT_COPIES = 3


def _megabytes(size: float) -> str:
    return f"{size / 1e6:,.1f} MB"


def check_folder(path: str | os.PathLike, option: str, need: int = MIN_FREE_BYTES) -> None:
    """``path`` is a folder this process can write into, or can create, on a disk with ``need``
    bytes free; :class:`UsageError` naming the folder and ``option`` otherwise. Creates nothing."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise UsageError(f"{option}: expected a folder")
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise UsageError(f"{path}: is a file, not a folder ({option}: move it away or choose another folder)")
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
    except OSError as err:  # a name longer than the file system allows
        raise UsageError(f"{short(str(path))}: cannot use it as a folder: {err.strerror} ({option})") from None
    if not existing.is_dir():
        raise UsageError(f"{existing}: is a file, not a folder, so {path} cannot be made ({option})")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: cannot write there: permission denied ({option}: choose a writable folder)")
    usage = shutil.disk_usage(existing)
    if usage.total == 0:  # /proc, /sys: nothing can be written there
        raise UsageError(f"{path}: cannot write there: not a folder on a disk ({option}: choose another folder)")
    free = usage.free
    if free < need:
        raise UsageError(f"{path}: no space left on the device: {_megabytes(free)} free, {_megabytes(need)} needed "
                         f"({option}: free some space or choose another folder)")


def check_outputs(config) -> None:
    """Before any data is loaded: the checkpoint folder and RecBole's log folders are writable
    folders with room (a run used to train for minutes and then die on a file named ``saved``
    or a full disk)."""
    check_folder(config["checkpoint_dir"], f"--checkpoint_dir={short(config['checkpoint_dir'])}")
    for folder in LOG_FOLDERS:
        check_folder(folder, f"RecBole writes its logs to ./{folder}")


def check_room(config, model) -> None:
    """Once the model is built, before training: room in the checkpoint folder for its checkpoints."""
    need = MIN_FREE_BYTES + CHECKPOINT_COPIES * sum(p.numel() * p.element_size() for p in model.parameters())
    check_folder(config["checkpoint_dir"], f"--checkpoint_dir={short(config['checkpoint_dir'])}", need)


def check_item_count(config, n_items: int, where: str) -> None:
    """The run's top-k lists and the sampled-candidate protocols it asks for fit ``n_items``
    items (``where`` says how they were counted): RecBole's evaluation fails on a top-k longer
    than the item list, and a protocol of N negatives needs more than N items."""
    largest = max(_topk(config), default=0)
    if largest > n_items:
        raise UsageError(f"bad value topk: {short(config['topk'])}: {config['dataset']} has {n_items:,} items ({where}), "
                         f"fewer than the largest topk {largest}")
    # the package's default protocols are skipped with a warning on a dataset too small for them
    # (after training, as before); protocols the user asked for must fit
    if config["eval_protocols"] and "eval_protocols" in (getattr(config, "external_config_dict", None) or {}):
        for protocol in parse_protocols(config["eval_protocols"]):
            if protocol.n and protocol.n >= n_items:
                raise UsageError(f"bad value eval_protocols: {protocol.name} ranks the target among {protocol.n:,} "
                                 f"sampled items, but {config['dataset']} has {n_items:,} items ({where})")


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
    return own | _yaml_keys() | _code_keys() | DISTRIBUTED_KEYS


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
