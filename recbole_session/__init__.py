"""recbole-session: session-aware and session-based recommenders for RecBole.

``import recbole_session`` is cheap (no torch, no RecBole): it only arranges, through
:mod:`recbole_session.hooks`, that whenever RecBole is loaded in this process the compatibility
shims of :mod:`recbole_session.compat` are applied and RecBole's own lookups (``get_model``,
``get_trainer``, ``create_dataset``, ``load_data_and_model``) find this package's models,
trainers and dataset classes. ``Config``, ``create_dataset``, ``get_model``, ``get_trainer``
and ``model_names`` are loaded on first use; the one path from a config to a trained model is
:func:`recbole_session.build.build`.
"""

from __future__ import annotations

from typing import Any

from recbole_session import hooks

hooks.install()

__version__ = "0.1.0"

__all__ = ["Config", "create_dataset", "get_model", "get_trainer", "model_names", "__version__"]


def __getattr__(name: str) -> Any:
    # PEP 562: the names that need torch and RecBole are imported when first used
    if name == "Config":
        from recbole_session.config import Config

        return Config
    if name == "create_dataset":
        from recbole_session.build import create_dataset

        return create_dataset
    if name in ("get_model", "get_trainer", "model_names"):
        from recbole_session import lookup

        return getattr(lookup, name)
    raise AttributeError(f"module 'recbole_session' has no attribute '{name}'")
