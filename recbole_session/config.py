"""RecBole ``Config`` that knows this package's models and property files.

Loading order (later wins): RecBole's own defaults and quick-start presets, then
``properties/overall.yaml``, ``properties/model/<Model>.yaml`` and
``properties/dataset/<dataset>.yaml`` of this package, then ``<data_path>/<dataset>/<dataset>.yaml``
when the converter wrote one next to the data (a dataset converted under another name, or with a
preset), then the user's config files, ``config_dict`` and ``--key=value`` command-line
overrides (RecBole's precedence).

Nothing a user or a file gives is evaluated: strings are typed as literals
(:func:`recbole_session.literals.parse_literal`, where RecBole calls ``eval``) and yaml is read
with the safe loader (where RecBole uses ``yaml.FullLoader``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType
from recbole.utils.argument_list import dataset_arguments

from recbole_session.checkpoint import STATE_KEY, from_literal
from recbole_session.checks import check_code_paths, check_values
from recbole_session.cli import UsageError
from recbole_session.literals import (
    ConfigLoader,
    YamlBudgetError,
    YamlShapeError,
    load_yaml_mapping,
    parse_literal,
)
from recbole_session.lookup import get_model
from recbole_session.paths import properties_dir


class ConfigFileError(ValueError):
    """A config file that cannot be read; the message is one line naming the file."""


# the size past which a config file is refused unread (a config is a few kB)
MAX_CONFIG_FILE_BYTES = 1_000_000
# named in the refusal of a key that a dataset folder's yaml may not set
DATASET_KEY_EXAMPLES = ("USER_ID_FIELD", "load_col", "session_gap", "MAX_ITEM_LIST_LENGTH")


def read_config_file(file: str | os.PathLike, what: str) -> dict[str, Any]:
    """A config file's mapping of keys to values (safe loader, bounded size, string keys);
    :class:`ConfigFileError` naming the file (and line) otherwise."""
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_CONFIG_FILE_BYTES + 1)
    except OSError as err:
        reason = "it is a folder" if isinstance(err, IsADirectoryError) else err.strerror
        raise ConfigFileError(f"{file}: cannot read the {what} ({reason})") from None
    if len(raw) > MAX_CONFIG_FILE_BYTES:
        raise ConfigFileError(f"{file}: refused: a {what} larger than {MAX_CONFIG_FILE_BYTES:,} bytes")
    try:
        return load_yaml_mapping(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ConfigFileError(f"{file}, line {line}: not UTF-8 text (byte {raw[err.start]:#04x})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        # yaml marks an error at the end of the text one line past the last one
        line = f", line {min(mark.line + 1, max(1, len(raw.splitlines())))}" if mark is not None else ""
        if isinstance(err, YamlBudgetError):
            raise ConfigFileError(f"{file}{line}: refused: {err.problem}") from None
        if isinstance(err, YamlShapeError):
            if "mapping" in err.problem:
                raise ConfigFileError(f"{file}: a {what} is a mapping of keys to values (key: value lines)") from None
            raise ConfigFileError(f"{file}{line}: {err.problem}") from None
        raise ConfigFileError(f"{file}{line}: not valid yaml ({getattr(err, 'problem', None) or err})") from None


@functools.cache
def dataset_keys() -> frozenset[str]:
    """The keys a dataset folder's yaml may set: RecBole's dataset arguments and the keys of this
    package's dataset property files (what the converter writes there)."""
    keys = set(dataset_arguments)
    for file in (properties_dir() / "dataset").glob("*.yaml"):
        keys |= set(read_config_file(file, "dataset yaml"))
    return frozenset(keys)


def read_dataset_config(file: Path) -> dict[str, Any]:
    """A dataset folder's yaml (:func:`data_folder_config`), refused unless it sets dataset keys
    only: the folder comes with the data, and a model key there (e.g. one that RecBole's models
    evaluate) would change the run without the user asking."""
    loaded = read_config_file(file, "dataset yaml")
    for key in loaded:
        if key not in dataset_keys():
            text = file.read_text(encoding="utf-8")
            line = next((n for n, row in enumerate(text.splitlines(), 1) if row.startswith(f"{key}:")), None)
            where = f", line {line}" if line else ""
            raise ConfigFileError(f"{file}{where}, key '{key}': a dataset folder's yaml sets dataset keys only "
                                  f"(such as {', '.join(sorted(DATASET_KEY_EXAMPLES))}); give other keys with "
                                  "--config_files or --key=value")
    return loaded


def data_folder_config(data_path: str | os.PathLike, dataset: str) -> Path | None:
    """``<data_path>/<dataset>/<dataset>.yaml`` when the converter wrote it, else ``None``."""
    file = Path(data_path) / dataset / f"{dataset}.yaml"
    return file if file.is_file() else None


def init_cpu_process_group(final: dict[str, Any]) -> None:
    """RecBole's distributed set-up (its ``_init_device``) on the CPU: the gloo backend, the
    process's global rank ``local_rank + offset``, ``device`` cpu, and the machine's cores shared
    among its ``nproc`` processes (unless ``OMP_NUM_THREADS`` says otherwise). As RecBole, the
    processes other than the first of each machine log errors only and show no progress."""
    torch.distributed.init_process_group(
        backend="gloo", rank=final["local_rank"] + final["offset"], world_size=final["world_size"],
        init_method=f"tcp://{final['ip']}:{final['port']}")
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, final["nproc"])))
    final.update(device=torch.device("cpu"), single_spec=False, use_gpu=False)
    if final["local_rank"] != 0:
        final.update(state="error", show_progress=False, verbose=False)


class Config(RecBoleConfig):
    """Drop-in replacement for :class:`recbole.config.Config`.

    Differences from RecBole's:
    - model names are looked up in ``recbole_session`` first, then in RecBole;
    - this package's property files are loaded on top of RecBole's, and a dataset's own yaml
      next to its atomic files on top of those (``dataset_config_file`` names it);
    - ``data_path`` is honoured for every dataset (RecBole forces ``ml-100k`` onto its bundled
      copy, which has no sessions);
    - a sequential model with ``loss_type: CE`` gets ``train_neg_sample_args: None`` unless the
      user set it (RecBole 1.2.1 raises otherwise);
    - values are parsed as literals and yaml with the safe loader, never evaluated;
    - :meth:`from_literals` rebuilds a Config from the plain dict a checkpoint stores.
    """

    dataset_config_file: str | None = None

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None) -> None:
        super().__init__(model, dataset, config_file_list, config_dict)
        # before anything is built from it: no value may reach code in a RecBole model
        check_code_paths(self)

    def _build_yaml_loader(self):
        return ConfigLoader

    def _load_config_files(self, file_list):
        merged: dict[str, Any] = {}
        for file in file_list or []:
            merged.update(read_config_file(file, "config file"))
        return merged

    def _convert_config_dict(self, config_dict: dict[str, Any]) -> dict[str, Any]:
        return {key: parse_literal(value) if isinstance(value, str) else value
                for key, value in config_dict.items()}

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise UsageError("no model given: name it as an argument, in a config file, in config_dict or "
                                 "with --model=...")
        if isinstance(model, str):
            final_model, final_model_class = model, get_model(model)
        else:
            final_model, final_model_class = model.__name__, model

        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise UsageError("no dataset given: name it as an argument, in a config file, in config_dict or "
                                 "with --dataset=...")
        return final_model, final_model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        props = properties_dir()
        for file, of_dataset in ((props / "overall.yaml", False), (props / "model" / f"{model}.yaml", False),
                                 (props / "dataset" / f"{dataset}.yaml", True)):
            if file.is_file():
                self._load_file(file, of_dataset)
        data_path = self.external_config_dict.get("data_path") or self.internal_config_dict.get("data_path")
        own = data_folder_config(data_path, dataset) if data_path else None
        if own is not None:
            loaded = read_dataset_config(own)
            self.internal_config_dict.update(loaded)
            self.parameters["Dataset"] += [key for key in loaded if key not in self.parameters["Dataset"]]
            self.dataset_config_file = str(own)

    def _load_file(self, file: Path, of_dataset: bool) -> None:
        loaded = self._update_internal_config_dict(str(file)) or {}
        if of_dataset:  # RecBole's category of the keys that change the dataset
            self.parameters["Dataset"] += [key for key in loaded if key not in self.parameters["Dataset"]]

    def _init_device(self) -> None:
        final = self.final_config_dict
        if "local_rank" in final and not torch.cuda.is_available():
            # RecBole's distributed path hard-codes NCCL and CUDA devices: without CUDA, the
            # processes train on the CPU over gloo (recbole_session.distributed)
            init_cpu_process_group(final)
            return
        super()._init_device()

    def _set_default_parameters(self):
        final = self.final_config_dict
        if (
            final.get("MODEL_TYPE") == ModelType.SEQUENTIAL
            and final.get("loss_type") == "CE"
            and "train_neg_sample_args" not in self.external_config_dict
        ):
            final["train_neg_sample_args"] = None
        data_root = final["data_path"]
        # RecBole's own reading of metrics raises KeyError / NotImplementedError on a bad list
        check_values(self, keys=("metrics",))
        super()._set_default_parameters()
        final["data_path"] = os.path.join(data_root, self.dataset)

    @classmethod
    def from_literals(cls, literals: dict[str, Any]) -> Config:
        """The Config whose :func:`recbole_session.checkpoint.config_literals` is ``literals``,
        rebuilt without evaluating anything; on a machine without CUDA it runs on the CPU."""
        config = cls.__new__(cls)
        state = literals.get(STATE_KEY) or {}
        final = {key: from_literal(value) for key, value in literals.items() if key != STATE_KEY}
        config.yaml_loader = ConfigLoader
        config.file_config_dict, config.variable_config_dict, config.cmd_config_dict = {}, {}, {}
        config.external_config_dict, config.internal_config_dict = {}, {}
        config.model, config.dataset = final["model"], final["dataset"]
        config.model_class = get_model(config.model)
        config._init_parameters_category()
        if isinstance(state.get("parameters"), dict):
            config.parameters = {k: list(v) for k, v in state["parameters"].items()}
        config.final_config_dict = final
        # a checkpoint always loads in one process, whatever its run's processes were
        final.update(single_spec=True, local_rank=0)
        use_gpu = bool(final.get("use_gpu")) and torch.cuda.is_available()
        device = str(final.get("device") or "cpu")
        config["device"] = torch.device(device if use_gpu and device.startswith("cuda") else "cpu")
        config["use_gpu"] = use_gpu
        config.compatibility_settings()
        check_code_paths(config)
        return config

    def __getstate__(self) -> dict:
        # Ray's object store pickles the Config held by a shared dataset; keep the model class
        # out of it (it is found again by name on load)
        state = self.__dict__.copy()
        state["model_class"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.__dict__.get("model_class") is None:
            self.model_class = get_model(self.model)
