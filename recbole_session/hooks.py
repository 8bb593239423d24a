"""How ``import recbole_session`` wires the package into RecBole without importing RecBole.

``import recbole_session`` must stay cheap (the converter imports it and needs neither torch
nor RecBole), yet whenever RecBole is used in the process the compatibility shims must be in
force and RecBole's own lookups (``get_model``, ``get_trainer``, ``create_dataset``,
``load_data_and_model``) must find this package's classes. :func:`install` does both:

- for each RecBole module of :data:`AFTER` that is already loaded, it runs its hook now;
- for the others it puts a small finder on ``sys.meta_path`` that finds nothing itself: when
  Python imports one of those modules, the finder asks the other finders for its spec and
  wraps the loader so that the hook runs right after the module has executed (before any
  importer sees it).

The hooks live here and import what they run only when they run; this module imports nothing
beyond the standard library. Only ``recbole_session/__init__.py`` imports it.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Callable
from types import ModuleType


def _recbole(module: ModuleType) -> None:
    from recbole_session import compat

    compat.silence_known_warnings()


def _configurator(module: ModuleType) -> None:
    from recbole_session import compat

    compat.restore_numpy_aliases(module)


def _sequential_models(module: ModuleType) -> None:
    from recbole_session import compat, lookup

    compat.switch_off_anomaly_detection()
    lookup.register_models("sequential_recommender")


def _trainer_module(module: ModuleType) -> None:
    from recbole_session import checkpoint

    checkpoint.save_checkpoints_as_data(module)


def _trainers(module: ModuleType) -> None:
    from recbole_session import lookup

    lookup.register_trainers()


def _datasets(module: ModuleType) -> None:
    from recbole_session import lookup

    lookup.register_datasets()


def _quick_start(module: ModuleType) -> None:
    # RecBole's load_data_and_model unpickles the checkpoint's Config (a weights-only load then
    # needs RecBole's Config on torch's allow-list, through which a crafted file ran code); ours
    # rebuilds it from literals (recbole_session.checkpoint). Replaced before the package
    # recbole.quick_start binds the name, or on the package too when it is already loaded.
    from recbole_session.build import load_data_and_model

    module.load_data_and_model = load_data_and_model
    package = sys.modules.get("recbole.quick_start")
    if package is not None and hasattr(package, "load_data_and_model"):
        package.load_data_and_model = load_data_and_model


# RecBole module -> the hook that runs right after it has executed, in import order
AFTER: dict[str, Callable[[ModuleType], None]] = {
    "recbole": _recbole,
    "recbole.config.configurator": _configurator,
    "recbole.data.dataset": _datasets,
    "recbole.model.sequential_recommender": _sequential_models,
    "recbole.trainer.trainer": _trainer_module,
    "recbole.trainer": _trainers,
    "recbole.quick_start.quick_start": _quick_start,
}


class _HookedLoader(importlib.abc.Loader):
    """A module's own loader, then its hook."""

    def __init__(self, loader, hook: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._hook = hook

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._hook(module)

    def __getattr__(self, name: str):  # get_source, get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class RecBoleHooks(importlib.abc.MetaPathFinder):
    """Wraps the loaders of the modules of :data:`AFTER`, and answers for our model modules
    under their RecBole names."""

    def find_spec(self, fullname: str, path, target=None):
        hook = AFTER.get(fullname)
        if hook is None:
            return self._alias_spec(fullname)
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _HookedLoader(spec.loader, hook)
                return spec
        return None


    @staticmethod
    def _alias_spec(fullname: str):
        """RecBole's ``get_model`` asks ``importlib.util.find_spec("recbole.model.<family>.<name>")``,
        which imports the family package (whose hook aliases our model modules in
        ``sys.modules``) and then asks the finders, not ``sys.modules``: say that the alias
        exists. The import that follows takes the module from ``sys.modules``."""
        module = sys.modules.get(fullname)
        if module is not None and fullname.startswith("recbole.model.") and module.__name__ != fullname:
            return module.__spec__
        return None


def install() -> None:
    """Run the hooks of the RecBole modules already loaded, and arrange for the others to run
    when their modules load. Idempotent."""
    if any(isinstance(finder, RecBoleHooks) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, RecBoleHooks())
    for name, hook in AFTER.items():
        module = sys.modules.get(name)
        if module is not None:
            hook(module)
