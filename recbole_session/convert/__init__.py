"""Dataset converter: raw dumps into session-aware RecBole atomic files (or, for session-based
datasets, RecBole benchmark files of prefix examples).

``python -m recbole_session.convert DATASET [--raw PATH] [--out atomic_files] [--name OUT]
[--preset asars] [--session-gap SECONDS] [--force] [--download] ...`` or :func:`convert`. The
modules, in the order they import each other: ``errors``, ``registry`` (recipes and how they
are found), ``readers``, ``sessions`` / ``session_based`` / ``stats``, ``atomic`` (writing),
``manifest`` (which files of a dataset folder the converter wrote), ``download``, ``recipes/*`` (one per dataset family), ``params`` (defaults and presets),
``raw`` (finding the raw file), ``pipeline`` (one conversion), ``__main__`` (the command line).
This file only re-exports; nothing here imports torch or RecBole. See ``docs/converter.md``.
"""

from __future__ import annotations

from recbole_session.convert.errors import ConvertError
from recbole_session.convert.params import dataset_params, preset_names
from recbole_session.convert.pipeline import DEFAULT_OUT, convert
from recbole_session.convert.registry import (
    RECIPES,
    SESSION_AWARE,
    SESSION_BASED,
    Download,
    Recipe,
    recipe,
    recipe_names,
)

__all__ = ["ConvertError", "DEFAULT_OUT", "Download", "Recipe", "convert", "dataset_params", "preset_names",
           "recipe", "recipe_names", "RECIPES", "SESSION_AWARE", "SESSION_BASED"]
