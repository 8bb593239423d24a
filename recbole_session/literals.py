"""Values read from text without running code.

RecBole's ``Config`` types every ``--key=value`` and every string of ``config_dict`` with
``eval()``, and reads its yaml files with ``yaml.FullLoader``. This package reads the same text
as literals only: :func:`parse_literal` (``ast.literal_eval``, else the text itself) and
:func:`load_yaml` (yaml's safe loader, with RecBole's rule that ``1e-4`` is a float). Imports
nothing heavy, so that the command lines and the converter can use it.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import yaml

# what a typed value may be; anything else (a set, bytes, a complex number) stays the text, as
# RecBole keeps a string whose eval() gives another type
LITERAL_TYPES = (str, int, float, list, tuple, dict, bool)


class ConfigLoader(yaml.SafeLoader):
    """yaml's SafeLoader (no Python objects) that also reads ``1e-4`` (no dot) as a float, as
    RecBole's Config does."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse yaml text as RecBole's Config parses its files, but with the safe loader."""
    return yaml.load(text, Loader=ConfigLoader)


def parse_literal(text: str) -> Any:
    """The value a RecBole ``--key=value`` string stands for, without evaluating it: a Python
    literal (number, ``True``/``False``/``None``, list, tuple, dict, quoted string), ``true`` /
    ``false`` in any case as booleans, and anything else as the text itself."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text
    if value is not None and not isinstance(value, LITERAL_TYPES):
        return text
    return value
