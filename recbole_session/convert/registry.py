"""The recipe registry, and the one discovery rule of the converter.

The rule: every module under ``recbole_session/convert/recipes/`` is one dataset family and
registers its recipe(s) by calling :func:`recipe` when it is imported (as a decorator of its
loader, or called directly when one loader serves several recipes). :func:`load_recipes` imports
every module of that folder once and returns the registry; nothing else finds recipes. Adding a
dataset is adding one module there (``tests/test_convert_recipes.py`` fails on a module that
registers nothing).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SESSION_AWARE = "session-aware"
SESSION_BASED = "session-based"
RECIPES_PACKAGE = "recbole_session.convert.recipes"


@dataclass(frozen=True)
class Download:
    """Where a raw dump is published: ``url`` and the ``checksum`` published with it
    (``"sha256:<hex>"`` or ``"md5:<hex>"``). Without one, the first complete download records its
    own sha256 next to the file and every later reuse or resume is checked against that."""

    url: str
    checksum: str | None = None


@dataclass(frozen=True)
class Recipe:
    """A dataset recipe.

    ``load(source, params)`` reads the raw file and returns, for a session-aware recipe, a
    :class:`recbole_session.convert.readers.Events`, and for a session-based one the benchmark
    tables and their statistics. ``files`` are the raw file names looked for in a folder given as
    ``--raw`` (the first found wins); ``bundled`` returns the path of a copy that ships with an
    installed package (ml-100k), ``download`` says where the public dump is; ``module`` is the
    recipe module that registered it; ``options`` the optional parameters of :data:`OPTIONS` it
    reads (any other one given is refused).
    """

    name: str
    kind: str
    load: Callable[..., Any]
    files: tuple[str, ...] = ()
    download: Download | None = None
    bundled: Callable[[], Any] | None = None
    generic: bool = False  # output named after the input file unless --name is given
    description: str = ""
    module: str = ""
    options: tuple[str, ...] = ()  # optional parameters it reads (see OPTIONS)


# optional parameters -> (flag, value meaning "not given"); a recipe lists those it reads
OPTIONS = {
    "keep": ("--keep", None),
    "type_col": ("--type-col", None),
    "weight": ("--weight", None),
    "time_unit": ("--time-unit", "s"),
    "header": ("--no-header", True),
    "names": ("--names", None),
}
EVENT_OPTIONS = ("keep", "type_col", "weight", "time_unit")  # every recipe reading a table of events
TABLE_OPTIONS = (*EVENT_OPTIONS, "header", "names")  # recipes whose columns the user names

RECIPES: dict[str, Recipe] = {}


def recipe(
    name: str,
    kind: str = SESSION_AWARE,
    files: tuple[str, ...] = (),
    download: Download | None = None,
    bundled: Callable[[], Any] | None = None,
    generic: bool = False,
    description: str = "",
    options: tuple[str, ...] = (),
):
    """Register ``load(source: Path, params: dict)`` as the reader of recipe ``name``."""

    def deco(fn):
        RECIPES[name] = Recipe(name, kind, fn, tuple(files), download, bundled, generic,
                               description or (fn.__doc__ or "").strip().splitlines()[0], fn.__module__,
                               tuple(options))
        return fn

    return deco


def recipe_modules() -> list[str]:
    """The modules of the recipes folder, by full name."""
    package = importlib.import_module(RECIPES_PACKAGE)
    return [f"{RECIPES_PACKAGE}.{info.name}" for info in pkgutil.iter_modules(package.__path__)]


def load_recipes() -> dict[str, Recipe]:
    """Import every recipe module (once; Python caches them) and return the registry."""
    for module in recipe_modules():
        importlib.import_module(module)
    return RECIPES


def recipe_names() -> list[str]:
    return sorted(load_recipes())
