"""The one place where names become classes: models, trainers and dataset classes.

**The rule** (one for all three, by file scan and name, as RecBole names its own classes):

- a *model* ``M`` is the class in ``recbole_session/model/<family>/<m>.py`` whose name,
  lower-cased, is the file name ``<m>`` (``SRIEM`` in ``sriem.py``);
- its *trainer*, if it needs one, is the class named ``<M>Trainer`` and its *dataset class* the
  class named ``<M>Dataset``, defined in any module of ``recbole_session/trainer/`` or
  ``recbole_session/data/`` (subclasses of RecBole's ``AbstractTrainer`` / ``Dataset``);
  ``__all__`` plays no part;
- every other recommender, trainer or dataset class defined there must be a base class of one
  that the rule finds (``ScheduledTrainer`` is the base of ``SRIEMTrainer``,
  ``SessionSequentialDataset`` of the package's dataset classes; :func:`dataset_class` also gives
  it to every sequential model without a dataset class of its own).
  :func:`unmatched_classes` lists the classes that break this rule, that is, that no lookup
  would ever find; a test keeps that list empty.

Every lookup tries ``recbole_session`` first and falls back to RecBole's own, so RecBole's
models (BERT4Rec, SASRec, GRU4Rec, SRGNN, ...) run through this package unchanged.
:func:`register_models`, :func:`register_trainers` and :func:`register_datasets` make RecBole's
own lookups (``get_model``, ``get_trainer``, ``create_dataset``) find our classes too; they
run when RecBole loads the module concerned (see :mod:`recbole_session.hooks`).
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import sys
from logging import getLogger
from types import ModuleType

from recbole.utils import ModelType
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_session.cli import did_you_mean
from recbole_session.literals import short

# Model families we ship, named as RecBole names its model sub-packages.
MODEL_SUBMODULES = ("sequential_recommender",)
# RecBole's model families, searched in this order by its get_model
RECBOLE_FAMILIES = ("general_recommender", "context_aware_recommender", "sequential_recommender",
                    "knowledge_aware_recommender", "exlib_recommender")
TRAINER_PACKAGE = "recbole_session.trainer"
DATASET_PACKAGE = "recbole_session.data"
# the trainer that gives RecBole's plain Trainer a learning-rate schedule (trainer_for)
SCHEDULED_TRAINER = "ScheduledTrainer"
# the dataset class of every sequential model without a <Model>Dataset (RecBole's
# SequentialDataset with the choice of eval_split), defined in DATASET_PACKAGE
GENERIC_SEQUENTIAL_DATASET = "SessionSequentialDataset"


class UnknownModelError(ValueError):
    """A model name that is neither ours nor RecBole's (a ValueError, as RecBole raises)."""


def _package_modules(package_name: str) -> list[ModuleType]:
    """The package and every module under it, imported."""
    package = importlib.import_module(package_name)
    modules = [package]
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
        modules.append(importlib.import_module(info.name))
    return modules


@functools.cache  # the shipped model files do not change while the process runs
def _model_modules() -> dict[str, tuple[str, ModuleType]]:
    """``{lower-case model name: (family, module)}`` for every model file we ship."""
    found = {}
    for family in MODEL_SUBMODULES:
        package = importlib.import_module(f"recbole_session.model.{family}")
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                found[info.name] = (family, importlib.import_module(f"{package.__name__}.{info.name}"))
    return found


def _our_models() -> dict[str, type]:
    """``{class name: class}`` of this package's models (the file-name rule)."""
    models = {}
    for lower, (_, module) in _model_modules().items():
        for name, obj in vars(module).items():
            if name.lower() == lower and isinstance(obj, type) and obj.__module__ == module.__name__:
                models[name] = obj
    return models


def model_names() -> list[str]:
    """The class names of this package's models."""
    return sorted(_our_models())


@functools.cache
def recbole_model_files() -> dict[str, str]:
    """``{lower-case model name: family}`` of RecBole's model files (without importing them)."""
    import recbole.model

    files = {}
    for family in RECBOLE_FAMILIES:
        folder = os.path.join(os.path.dirname(recbole.model.__file__), family)
        for info in pkgutil.iter_modules([folder]):
            if not info.name.startswith("_"):
                files.setdefault(info.name, family)
    return files


def _recbole_class_name(lower: str) -> str | None:
    """The class name RecBole's model file ``<lower>.py`` defines (``sasrec`` -> ``SASRec``)."""
    family = recbole_model_files().get(lower)
    if family is None:
        return None
    try:
        module = importlib.import_module(f"recbole.model.{family}.{lower}")
    except ImportError:  # an optional library of RecBole's (lightgbm, xgboost) is missing
        return None
    return next((n for n, obj in vars(module).items() if n.lower() == lower and isinstance(obj, type)), None)


def _unknown_model(model_name: str) -> UnknownModelError:
    ours = {name.lower(): name for name in model_names()}
    close = did_you_mean(model_name.lower(), [*ours, *recbole_model_files()])
    guess = (ours.get(close) or _recbole_class_name(close)) if close else None
    hint = f": did you mean {guess}?" if guess else ""
    return UnknownModelError(
        f"`model_name` [{short(model_name)[1:-1]}] is neither a recbole_session model "
        f"({', '.join(ours.values()) or 'none'}) nor a RecBole model{hint}"
    )


def get_model(model_name: str) -> type:
    """Model class by its exact name: ``recbole_session.model.<family>.<name lower>`` first,
    then RecBole's ``get_model``; :class:`UnknownModelError` (with "did you mean") otherwise."""
    ours = _our_models()
    if model_name in ours:
        return ours[model_name]
    try:
        return recbole_get_model(model_name)
    except ModuleNotFoundError as err:
        # RecBole's lookup of an unknown name walks into `exlib_recommender`, whose models import
        # lightgbm/xgboost: a missing optional library matters only for the model that needs it
        if err.name == model_name.lower():
            raise UnknownModelError(f"model {model_name} needs the library {err.name}, which is not installed") from None
    except (ValueError, AttributeError):  # no such file; a file of that name in another case
        pass
    raise _unknown_model(model_name)


def _classes_in(package_name: str, base: type) -> dict[str, type]:
    """``{name: class}`` of the subclasses of ``base`` defined in the modules of a package."""
    found = {}
    for module in _package_modules(package_name):
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, base) and obj.__module__ == module.__name__:
                found[name] = obj
    return found


def _trainers() -> dict[str, type]:
    from recbole.trainer.trainer import AbstractTrainer

    return _classes_in(TRAINER_PACKAGE, AbstractTrainer)


def _datasets() -> dict[str, type]:
    from recbole.data.dataset import Dataset

    return _classes_in(DATASET_PACKAGE, Dataset)


def get_trainer(model_type: ModelType, model_name: str) -> type:
    """``<Model>Trainer`` of this package if there is one, else RecBole's choice."""
    return _trainers().get(f"{model_name}Trainer") or recbole_get_trainer(model_type, model_name)


def trainer_for(config) -> type:
    """The trainer class a run of ``config`` trains with: the model's (:func:`get_trainer`), or
    ``ScheduledTrainer`` when ``lr_schedule`` asks for a learning-rate schedule and the model's
    trainer is RecBole's plain ``Trainer`` (which has none), so that RecBole's models (GRU4Rec,
    SRGNN, ...) can train on SRIEM's schedule and a comparison can give every row one recipe.
    A schedule that the model's trainer could not follow is refused, never ignored."""
    from recbole.trainer import Trainer

    from recbole_session.cli import UsageError

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])
    if (config["lr_schedule"] or "none") != "none" and not issubclass(trainer, _trainers()[SCHEDULED_TRAINER]):
        if trainer is not Trainer:
            raise UsageError(f"lr_schedule {short(config['lr_schedule'])}: {config['model']} trains with "
                             f"{trainer.__name__}, which has no learning-rate schedule (use lr_schedule: none)")
        trainer = _trainers()[SCHEDULED_TRAINER]
    return trainer


@functools.cache
def mixed_in(mixin: type, trainer_class: type) -> type:
    """``trainer_class`` with ``mixin`` mixed in before it (one class per pair), named
    ``<Mixin><Trainer>``; the class itself when it has the mixin already."""
    if issubclass(trainer_class, mixin):
        return trainer_class
    return type(f"{mixin.__name__}{trainer_class.__name__}", (mixin, trainer_class), {})


def dataset_class(model_name: str, model_type: ModelType) -> type:
    """``<Model>Dataset`` of this package if there is one, else RecBole's choice (the rule of
    ``recbole.data.create_dataset``: its ``<Model>Dataset``, else the model type's class), where
    RecBole's ``SequentialDataset`` is :data:`GENERIC_SEQUENTIAL_DATASET` of this package (the
    same rows, plus the choice of ``eval_split``)."""
    import recbole.data.dataset as recbole_datasets

    cls = _datasets().get(f"{model_name}Dataset") or getattr(recbole_datasets, f"{model_name}Dataset", None)
    if cls is not None:
        return cls
    if model_type == ModelType.SEQUENTIAL:
        return _datasets()[GENERIC_SEQUENTIAL_DATASET]
    type2class = {ModelType.KNOWLEDGE: "KnowledgeBasedDataset"}
    return getattr(recbole_datasets, type2class.get(model_type, "Dataset"))


def create_dataset(config):
    """The dataset of ``config``, built from its atomic files by the model's dataset class.

    RecBole's ``create_dataset`` first unpickles a saved dataset when one exists
    (``dataset_save_path``, or ``<checkpoint_dir>/<dataset>-<class>.pth``): a plain pickle,
    which runs code when loaded. This package never loads it; ``save_dataset: True`` still
    saves one for RecBole's own use."""
    cls = dataset_class(config["model"], config["MODEL_TYPE"])
    cache = config["dataset_save_path"] or os.path.join(
        config["checkpoint_dir"], f"{config['dataset']}-{cls.__name__}.pth")
    if os.path.exists(cache):
        getLogger().warning(f"{cache} not loaded: a saved dataset is a plain pickle (loading one can "
                            "run code); the dataset is built from its atomic files")
    dataset = cls(config)
    if config["save_dataset"]:
        dataset.save()
    return dataset


def _defined_classes() -> list[type]:
    """Every recommender, trainer and dataset class defined in the package's model, trainer and
    data modules."""
    from recbole.model.abstract_recommender import AbstractRecommender

    models = [obj for _, module in _model_modules().values() for obj in vars(module).values()
              if isinstance(obj, type) and issubclass(obj, AbstractRecommender) and obj.__module__ == module.__name__]
    return [*models, *_trainers().values(), *_datasets().values()]


def _found(cls: type) -> bool:
    """Whether a lookup finds ``cls`` by the rule above."""
    from recbole.data.dataset import Dataset
    from recbole.trainer.trainer import AbstractTrainer

    name = cls.__name__
    for base, suffix in ((AbstractTrainer, "Trainer"), (Dataset, "Dataset")):
        if issubclass(cls, base):
            if not name.endswith(suffix) or name == suffix:
                return False
            try:
                get_model(name[: -len(suffix)])
            except UnknownModelError:
                return False
            return True
    return name.lower() == cls.__module__.rsplit(".", 1)[-1]  # a model: the file-name rule


def unmatched_classes(classes: list[type] | None = None) -> list[str]:
    """The classes that break the rule above: defined in the package (or given), found by no
    lookup, and not a base of one that is found. Empty for a sound package."""
    classes = _defined_classes() if classes is None else classes
    found = [cls for cls in classes if _found(cls)]
    return sorted(f"{cls.__module__}.{cls.__name__}" for cls in classes
                  if cls not in found and not any(issubclass(f, cls) for f in found))


def register_models(family: str) -> None:
    """Make RecBole's ``get_model`` find our models of ``family``: each model module is
    aliased as ``recbole.model.<family>.<name>`` (RecBole resolves a module path with
    ``importlib``, which consults ``sys.modules`` first) and the class set on the family."""
    recbole_family = sys.modules.get(f"recbole.model.{family}") or importlib.import_module(f"recbole.model.{family}")
    for lower, (sub, module) in _model_modules().items():
        if sub != family:
            continue
        sys.modules.setdefault(f"recbole.model.{sub}.{lower}", module)
        for name, obj in vars(module).items():
            if name.lower() == lower and isinstance(obj, type):
                setattr(recbole_family, name, obj)


def _expose(module: ModuleType, classes) -> None:
    """Let ``getattr(module, name)`` fall back to ``classes()[name]``: a module ``__getattr__``
    (PEP 562), so that the classes are looked up when RecBole asks, not when RecBole's module
    loads (our module may then still be loading: ``recbole_session.trainer`` imports
    ``recbole.trainer``, whose hook runs this)."""
    previous = module.__dict__.get("__getattr__")
    if getattr(previous, "recbole_session", False):
        return

    def __getattr__(name: str):
        if not name.startswith("__"):
            found = classes().get(name)
            if found is not None:
                return found
        if previous is not None:
            return previous(name)
        raise AttributeError(f"module '{module.__name__}' has no attribute '{name}'")

    __getattr__.recbole_session = True  # type: ignore[attr-defined]
    module.__getattr__ = __getattr__  # type: ignore[method-assign]


def register_trainers() -> None:
    """Make RecBole's ``get_trainer`` (``getattr(recbole.trainer, "<Model>Trainer")``) find our
    trainer classes."""
    _expose(sys.modules.get("recbole.trainer") or importlib.import_module("recbole.trainer"), _trainers)


def register_datasets() -> None:
    """Make RecBole's ``create_dataset`` (``getattr(recbole.data.dataset, "<Model>Dataset")``)
    find our dataset classes."""
    _expose(sys.modules.get("recbole.data.dataset") or importlib.import_module("recbole.data.dataset"), _datasets)
