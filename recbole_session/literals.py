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
import reprlib
from typing import Any

import yaml

# what a typed value may be; anything else (a set, bytes, a complex number) stays the text, as
# RecBole keeps a string whose eval() gives another type
LITERAL_TYPES = (str, int, float, list, tuple, dict, bool)


# the most a yaml document read from a user may expand to, in characters of its scalars plus
# one per node, aliases followed: a 1 kB file of nested aliases (a "billion laughs") otherwise
# expands to gigabytes, and RecBole's logger prints every value of a config
YAML_BUDGET = 1_000_000
# the longest rendering of a value in an error message
SHORT_REPR = 80


class YamlRefusedError(yaml.YAMLError):
    """Valid yaml that is refused; ``problem`` and ``problem_mark`` as in yaml's own errors (a
    one-line message)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class YamlBudgetError(YamlRefusedError):
    """A yaml document that expands beyond :data:`YAML_BUDGET`, whose aliases form a cycle or
    that nests too deeply."""


class YamlShapeError(YamlRefusedError):
    """A yaml document that is not a mapping of string keys where one is expected."""


def _expanded_size(root: yaml.Node, budget: int) -> int:
    """The size of ``root`` with every alias expanded, counted on yaml's node graph (an alias is
    the same node object) without expanding anything: each node is sized once."""
    sizes: dict[int, int] = {}
    # iterative post-order walk: nesting deeper than Python's recursion limit is no error here
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if not done:
            if key in open_nodes:
                raise YamlBudgetError("an alias refers to the node that holds it (a cycle)", node.start_mark)
            open_nodes.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in open_nodes:
                    raise YamlBudgetError("an alias refers to the node that holds it (a cycle)", child.start_mark)
                if id(child) not in sizes:
                    stack.append((child, False))
            continue
        open_nodes.discard(key)
        own = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
        sizes[key] = own + sum(sizes[id(child)] for child in children)
        if sizes[key] > budget:
            raise YamlBudgetError(f"expands to more than {budget:,} characters through its aliases "
                                  "(&anchor / *alias)", node.start_mark)
    return sizes[id(root)]


class ConfigLoader(yaml.SafeLoader):
    """yaml's SafeLoader (no Python objects) that also reads ``1e-4`` (no dot) as a float, as
    RecBole's Config does, and refuses a document that expands beyond :data:`YAML_BUDGET`
    (:class:`YamlBudgetError`) before building any value of it. RecBole's Config reads its
    dataset yaml files with this loader too (``Config._build_yaml_loader``)."""

    def get_single_node(self):
        try:
            node = super().get_single_node()
        except RecursionError:  # yaml's composer recurses once per level of nesting
            raise YamlBudgetError("nested too deeply", self.get_mark()) from None
        if node is not None:
            _expanded_size(node, YAML_BUDGET)
        return node


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


def load_yaml_mapping(text: str) -> dict[str, Any]:
    """A yaml document that must be a mapping of names to values (a config file, a dataset
    folder's yaml), read as :func:`load_yaml` reads it; :class:`YamlShapeError` (with the line)
    for another shape, a key that is not a string (``1: 2``) or a key given twice. Empty text
    is ``{}``."""
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise YamlShapeError("expected a mapping of keys to values (key: value lines)", node.start_mark)
        seen: set[str] = set()
        for key, _ in node.value:
            if not (isinstance(key, yaml.ScalarNode) and key.tag == "tag:yaml.org,2002:str"):
                raise YamlShapeError(f"key {short(key.value if isinstance(key, yaml.ScalarNode) else '...')}: "
                                      "a config key is a name (a string)", key.start_mark)
            if key.value in seen:  # yaml keeps the last one silently
                raise YamlShapeError(f"key {short(key.value)}: given twice", key.start_mark)
            seen.add(key.value)
        return loader.construct_document(node)
    finally:
        loader.dispose()


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = SHORT_REPR
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6
_SHORT.maxlevel = 3


def short(value: Any) -> str:
    """``repr(value)`` cut to a few dozen characters, for error messages: a message never
    renders a value of unbounded size (a huge list, a long string)."""
    return _SHORT.repr(value)


def _flow_collection(text: str) -> Any:
    """``[Recall, MRR, NDCG]`` (a list written without inner quotes, as a shell passes
    ``--metrics=[Recall,MRR,NDCG]``) read as yaml's flow list (or ``{a: 1}`` as a mapping);
    anything else stays the text."""
    stripped = text.strip()
    if (stripped[:1], stripped[-1:]) not in (("[", "]"), ("{", "}")):
        return text
    try:
        value = load_yaml(stripped)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (list, dict)) else text


def parse_literal(text: str) -> Any:
    """The value a RecBole ``--key=value`` string stands for, without evaluating it: a Python
    literal (number, ``True``/``False``/``None``, list, tuple, dict, quoted string), ``true`` /
    ``false`` in any case as booleans, a list or mapping without inner quotes as yaml reads it
    (``[Recall, MRR]``), and anything else as the text itself."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return _flow_collection(text)
    if value is not None and not isinstance(value, LITERAL_TYPES):
        return text
    return value
