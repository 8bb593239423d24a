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

import os
from pathlib import Path
from typing import Any

import torch
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

from recbole_session.checkpoint import STATE_KEY, from_literal
from recbole_session.literals import ConfigLoader, YamlBudgetError, parse_literal
from recbole_session.lookup import get_model
from recbole_session.paths import properties_dir


class ConfigFileError(ValueError):
    """A config file that cannot be read; the message is one line naming the file."""


def data_folder_config(data_path: str | os.PathLike, dataset: str) -> Path | None:
    """``<data_path>/<dataset>/<dataset>.yaml`` when the converter wrote it, else ``None``."""
    file = Path(data_path) / dataset / f"{dataset}.yaml"
    return file if file.is_file() else None


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

    def _build_yaml_loader(self):
        return ConfigLoader

    def _load_config_files(self, file_list):
        merged: dict[str, Any] = {}
        for file in file_list or []:
            try:
                with open(file, encoding="utf-8") as handle:
                    loaded = yaml.load(handle.read(), Loader=self.yaml_loader)
            except OSError as err:
                raise ConfigFileError(f"{file}: cannot read the config file ({err.strerror})") from None
            except UnicodeDecodeError as err:
                raise ConfigFileError(f"{file}: not utf-8 text (byte {err.start})") from None
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                line = f", line {mark.line + 1}" if mark is not None else ""
                if isinstance(err, YamlBudgetError):
                    raise ConfigFileError(f"{file}{line}: refused: {err.problem}") from None
                raise ConfigFileError(f"{file}{line}: not valid yaml ({getattr(err, 'problem', None) or err})") from None
            if loaded is not None and not isinstance(loaded, dict):
                raise ConfigFileError(f"{file}: a config file is a mapping of keys to values (key: value lines)")
            merged.update(loaded or {})
        return merged

    def _convert_config_dict(self, config_dict: dict[str, Any]) -> dict[str, Any]:
        return {key: parse_literal(value) if isinstance(value, str) else value
                for key, value in config_dict.items()}

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError(
                    "model need to be specified in at least one of the these ways: "
                    "[model variable, config file, config dict, command line] "
                )
        if isinstance(model, str):
            final_model, final_model_class = model, get_model(model)
        else:
            final_model, final_model_class = model.__name__, model

        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError(
                    "dataset need to be specified in at least one of the these ways: "
                    "[dataset variable, config file, config dict, command line] "
                )
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
            self._load_file(own, True)
            self.dataset_config_file = str(own)

    def _load_file(self, file: Path, of_dataset: bool) -> None:
        loaded = self._update_internal_config_dict(str(file)) or {}
        if of_dataset:  # RecBole's category of the keys that change the dataset
            self.parameters["Dataset"] += [key for key in loaded if key not in self.parameters["Dataset"]]

    def _set_default_parameters(self):
        final = self.final_config_dict
        if (
            final.get("MODEL_TYPE") == ModelType.SEQUENTIAL
            and final.get("loss_type") == "CE"
            and "train_neg_sample_args" not in self.external_config_dict
        ):
            final["train_neg_sample_args"] = None
        data_root = final["data_path"]
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
        use_gpu = bool(final.get("use_gpu")) and torch.cuda.is_available()
        device = str(final.get("device") or "cpu")
        config["device"] = torch.device(device if use_gpu and device.startswith("cuda") else "cpu")
        config["use_gpu"] = use_gpu
        config.compatibility_settings()
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
