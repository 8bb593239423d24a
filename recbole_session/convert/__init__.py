"""Dataset converter: raw dumps into session-aware RecBole atomic files.

``python -m recbole_session.convert DATASET [--raw PATH] [--out atomic_files] [--force]``.
Each recipe is a small module in :mod:`recbole_session.convert.recipes`, registered by name
with :func:`recipe`; its default thresholds are in ``properties/dataset/<name>.yaml``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from recbole_session.config import properties_dir

DEFAULT_OUT = "atomic_files"

RECIPES: dict[str, Callable[..., dict]] = {}


class ConvertError(Exception):
    """Bad input for a conversion; the message names the file, line and field."""


def recipe(name: str):
    """Register ``fn(raw: Path | None, out_dir: Path, params: dict) -> stats`` under ``name``."""

    def deco(fn):
        RECIPES[name] = fn
        return fn

    return deco


def _load_recipes() -> None:
    package = importlib.import_module("recbole_session.convert.recipes")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


def recipe_names() -> list[str]:
    _load_recipes()
    return sorted(RECIPES)


def dataset_params(name: str) -> dict[str, Any]:
    """The conversion parameters of ``properties/dataset/<name>.yaml`` (``session_gap`` and the
    ``convert:`` block), as defaults for the recipe."""
    file = properties_dir() / "dataset" / f"{name}.yaml"
    if not file.is_file():
        return {}
    loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    params = dict(loaded.get("convert") or {})
    if "session_gap" in loaded:
        params.setdefault("session_gap", loaded["session_gap"])
    return params


def convert(
    name: str,
    raw: str | Path | None = None,
    out: str | Path = DEFAULT_OUT,
    force: bool = False,
    **overrides: Any,
) -> Path:
    """Convert dataset ``name`` into ``<out>/<name>/``; returns that folder.

    Does nothing when the output exists, unless ``force``.
    """
    _load_recipes()
    if name not in RECIPES:
        raise ConvertError(f"unknown dataset recipe '{name}' (known: {', '.join(sorted(RECIPES))})")
    out_dir = Path(out) / name
    if (out_dir / f"{name}.inter").exists() and not force:
        return out_dir
    params = {**dataset_params(name), **{k: v for k, v in overrides.items() if v is not None}}
    RECIPES[name](Path(raw) if raw is not None else None, out_dir, params)
    return out_dir
