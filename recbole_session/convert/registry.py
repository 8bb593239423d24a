"""The recipe registry: each recipe module registers one or more :class:`Recipe` by name."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SESSION_AWARE = "session-aware"
SESSION_BASED = "session-based"


@dataclass(frozen=True)
class Download:
    """Where a raw dump is published: ``url``, an optional ``checksum`` (``"sha256:<hex>"`` or
    ``"md5:<hex>"``; ``None`` when none is published, then the file is not verified) and the
    member of the archive that holds the raw file (``None`` for a plain or gzip file)."""

    url: str
    checksum: str | None = None
    member: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Recipe:
    """A dataset recipe.

    ``load(source, params)`` reads the raw file and returns, for a session-aware recipe, a
    frame with columns ``user, item, time`` (time in seconds) and, for a session-based one, a
    :class:`recbole_session.convert.session_based.Clicks`. ``files`` are the raw file names
    looked for in a folder given as ``--raw`` (the first found wins); ``bundled`` returns the
    path of a copy that ships with an installed package (ml-100k), ``download`` says where the
    public dump is.
    """

    name: str
    kind: str
    load: Callable[..., Any]
    files: tuple[str, ...] = ()
    download: Download | None = None
    bundled: Callable[[], Any] | None = None
    generic: bool = False  # output named after the input file unless --name is given
    description: str = ""
    extra: dict = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {}


def recipe(
    name: str,
    kind: str = SESSION_AWARE,
    files: tuple[str, ...] = (),
    download: Download | None = None,
    bundled: Callable[[], Any] | None = None,
    generic: bool = False,
    description: str = "",
):
    """Register ``load(source: Path, params: dict)`` as the reader of recipe ``name``."""

    def deco(fn):
        RECIPES[name] = Recipe(name, kind, fn, tuple(files), download, bundled, generic,
                               description or (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return deco


def load_recipes() -> dict[str, Recipe]:
    package = importlib.import_module("recbole_session.convert.recipes")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return RECIPES
