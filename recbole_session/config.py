"""RecBole ``Config`` that knows this package's models and property files.

Loading order (later wins): RecBole's own defaults and quick-start presets, then
``properties/overall.yaml``, ``properties/model/<Model>.yaml`` and
``properties/dataset/<dataset>.yaml`` of this package, then the user's config files,
``config_dict`` and ``--key=value`` command-line overrides (RecBole's precedence).
"""

from __future__ import annotations

import os

from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

from recbole_session.paths import properties_dir


class Config(RecBoleConfig):
    """Drop-in replacement for :class:`recbole.config.Config`.

    Differences from RecBole's:
    - model names are looked up in ``recbole_session`` first, then in RecBole;
    - this package's property files are loaded on top of RecBole's;
    - ``data_path`` is honoured for every dataset (RecBole forces ``ml-100k`` onto its bundled
      copy, which has no sessions);
    - a sequential model with ``loss_type: CE`` gets ``train_neg_sample_args: None`` unless the
      user set it (RecBole 1.2.1 raises otherwise).
    """

    def _get_model_and_dataset(self, model, dataset):
        from recbole_session.utils import get_model

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
        for file in (
            props / "overall.yaml",
            props / "model" / f"{model}.yaml",
            props / "dataset" / f"{dataset}.yaml",
        ):
            if not file.is_file():
                continue
            loaded = self._update_internal_config_dict(str(file)) or {}
            if file.parent.name == "dataset":
                self.parameters["Dataset"] += [
                    key for key in loaded if key not in self.parameters["Dataset"]
                ]

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

    def __getstate__(self) -> dict:
        # A checkpoint pickles the Config; keep the model class out of it (it is found again by
        # name on load), so that loading needs no model class on torch's weights-only allow-list.
        state = self.__dict__.copy()
        state["model_class"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        from recbole_session.utils import get_model

        self.__dict__.update(state)
        if self.__dict__.get("model_class") is None:
            self.model_class = get_model(self.model)
