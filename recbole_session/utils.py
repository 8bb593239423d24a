"""The one place where names become classes: models, trainers and dataset classes.

Every lookup tries ``recbole_session`` first and falls back to RecBole's own, so RecBole's
models (BERT4Rec, SASRec, GRU4Rec, SRGNN, ...) run through this package's entry point
unchanged. :func:`register_with_recbole` makes RecBole's own lookups (``get_model``,
``get_trainer``, ``create_dataset``, ``load_data_and_model``) find our classes too.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import sys
from types import ModuleType

import recbole.data.dataset as recbole_datasets
import recbole.trainer as recbole_trainers
from recbole.utils import ModelType
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

# Model families we ship, named as RecBole names its model sub-packages.
MODEL_SUBMODULES = ("sequential_recommender",)


@functools.cache  # the shipped model files do not change while the process runs
def _model_modules() -> dict[str, tuple[str, ModuleType]]:
    """``{lower-case model name: (sub-package, module)}`` for every model file we ship."""
    found = {}
    for sub in MODEL_SUBMODULES:
        package = importlib.import_module(f"recbole_session.model.{sub}")
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                found[info.name] = (sub, importlib.import_module(f"{package.__name__}.{info.name}"))
    return found


def model_names() -> list[str]:
    """The class names of this package's models."""
    names = []
    for lower, (_, module) in _model_modules().items():
        names += [n for n in vars(module) if n.lower() == lower and isinstance(getattr(module, n), type)]
    return sorted(names)


def get_model(model_name: str) -> type:
    """Model class by name: ``recbole_session.model.<family>.<name lower>`` first, then RecBole."""
    entry = _model_modules().get(model_name.lower())
    if entry is not None and hasattr(entry[1], model_name):
        return getattr(entry[1], model_name)
    try:
        return recbole_get_model(model_name)
    except ModuleNotFoundError as err:
        # RecBole's lookup of an unknown name walks into `exlib_recommender`, whose package
        # imports lightgbm/xgboost: a missing optional library is not the user's problem then
        if err.name == model_name.lower():
            raise
    except ValueError:
        pass
    raise ValueError(
        f"`model_name` [{model_name}] is neither a recbole_session model "
        f"({', '.join(model_names()) or 'none'}) nor a RecBole model"
    )


def get_trainer(model_type: ModelType, model_name: str) -> type:
    """``recbole_session.trainer.<Model>Trainer`` if we ship one, else RecBole's choice."""
    ours = importlib.import_module("recbole_session.trainer")
    trainer = getattr(ours, f"{model_name}Trainer", None)
    return trainer if trainer is not None else recbole_get_trainer(model_type, model_name)


def get_dataset_class(model_name: str, model_type: ModelType) -> type:
    """``recbole_session.data.dataset.<Model>Dataset`` if we ship one, else RecBole's choice
    (the same rule as ``recbole.data.create_dataset``)."""
    ours = importlib.import_module("recbole_session.data.dataset")
    cls = getattr(ours, f"{model_name}Dataset", None) or getattr(
        recbole_datasets, f"{model_name}Dataset", None
    )
    if cls is not None:
        return cls
    type2class = {
        ModelType.SEQUENTIAL: "SequentialDataset",
        ModelType.KNOWLEDGE: "KnowledgeBasedDataset",
    }
    return getattr(recbole_datasets, type2class.get(model_type, "Dataset"))


def create_dataset(config):
    """RecBole's ``create_dataset`` (with its saved-dataset cache) over our registered classes;
    a dataset that a converter recipe can build offline (ml-100k) is built first if missing."""
    from recbole.data import create_dataset as recbole_create_dataset

    from recbole_session.quick_start import ensure_atomic_files

    register_with_recbole()
    ensure_atomic_files(config)
    return recbole_create_dataset(config)


_REGISTERED = False


def register_with_recbole() -> None:
    """Expose our classes where RecBole 1.2.1 looks for them by name, so that RecBole's own
    ``get_model`` / ``get_trainer`` / ``create_dataset`` / ``load_data_and_model`` work with
    them after ``import recbole_session``:

    - model modules are aliased as ``recbole.model.<family>.<name>`` (RecBole's ``get_model``
      resolves a module path with ``importlib``, which consults ``sys.modules`` first);
    - ``<Model>Trainer`` classes are set on ``recbole.trainer``;
    - ``<Model>Dataset`` classes are set on ``recbole.data.dataset``.
    """
    global _REGISTERED
    if _REGISTERED:
        return
    for lower, (sub, module) in _model_modules().items():
        sys.modules.setdefault(f"recbole.model.{sub}.{lower}", module)
        family = importlib.import_module(f"recbole.model.{sub}")
        for name in vars(module):
            if name.lower() == lower:
                setattr(family, name, getattr(module, name))
    ours = importlib.import_module("recbole_session.trainer")
    for name in getattr(ours, "__all__", []):
        setattr(recbole_trainers, name, getattr(ours, name))
    ours = importlib.import_module("recbole_session.data.dataset")
    for name in getattr(ours, "__all__", []):
        setattr(recbole_datasets, name, getattr(ours, name))
    _REGISTERED = True
