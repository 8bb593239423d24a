"""Search spaces in yaml: one file per model, one entry per hyper-parameter.

.. code-block:: yaml

    hidden_size: {grid: [8, 16, 32]}          # every value, in every sample (Ray's grid_search)
    n_heads: {choice: [1, 2, 4, 8]}           # one value drawn per sample
    dropout_prob: {uniform: [0.1, 0.5]}       # drawn uniformly from [low, high]
    learning_rate: {loguniform: [1e-4, 1e-2]} # drawn uniformly in log space, 0 < low < high

A grid multiplies the trials (every grid combination, ``num_samples`` times); choice,
uniform and loguniform are drawn once per trial. Bad files raise :class:`SearchSpaceError`
naming the file, line and key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recbole_session.literals import ConfigLoader, load_yaml, short
from recbole_session.paths import properties_dir

KINDS = ("grid", "choice", "uniform", "loguniform")
# a search space is a few lines; a bigger file is a mistake (or /dev/zero), not a space to read
# (yaml's pure-Python parser takes about 10 s per MiB)
MAX_SPACE_BYTES = 64 << 10

# Keys that name the run rather than a hyper-parameter: the search sets them itself.
RESERVED_KEYS = frozenset(
    {"model", "dataset", "data_path", "checkpoint_dir", "gpu_id", "use_gpu", "local_rank",
     "show_progress", "state", "nproc", "world_size", "ip", "port", "offset"}
)


class SearchSpaceError(ValueError):
    """A search-space file that cannot be used; the message names file, line and key."""


@dataclass(frozen=True)
class Param:
    """One searched hyper-parameter: its kind (one of :data:`KINDS`) and arguments."""

    name: str
    kind: str
    args: tuple
    line: int

    @property
    def values(self) -> tuple | None:
        """The finite set of values of a grid or choice, else ``None``."""
        return self.args if self.kind in ("grid", "choice") else None

    @property
    def log_scale(self) -> bool:
        return self.kind == "loguniform"

    def to_ray(self) -> Any:
        from ray import tune

        if self.kind == "grid":
            return tune.grid_search(list(self.args))
        if self.kind == "choice":
            return tune.choice(list(self.args))
        if self.kind == "uniform":
            return tune.uniform(*self.args)
        return tune.loguniform(*self.args)


@dataclass(frozen=True)
class SearchSpace:
    """A parsed search-space file."""

    file: str
    params: dict[str, Param] = field(default_factory=dict)
    text: str = ""  # the yaml it was parsed from (the search keeps a copy)

    def to_ray(self) -> dict[str, Any]:
        """The ``param_space`` of a :class:`ray.tune.Tuner`."""
        return {name: param.to_ray() for name, param in self.params.items()}

    def grid_size(self) -> int:
        """Trials per sample: the product of the grid sizes (1 without a grid)."""
        return math.prod(len(p.args) for p in self.params.values() if p.kind == "grid")

    def __iter__(self):
        return iter(self.params)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_args(where: str, kind: str, args: Any) -> tuple:
    if not isinstance(args, list) or not args:
        raise SearchSpaceError(f"{where}: {kind} needs a non-empty list, got {short(args)}")
    if kind in ("grid", "choice"):
        # a set for the hashable values: a list of 100,000 values must not take n² comparisons
        hashable: set = set()
        unhashable: list = []
        for value in args:
            try:
                seen = value in hashable
                hashable.add(value)
            except TypeError:  # a list or mapping as one value
                seen = value in unhashable
                unhashable.append(value)
            if seen:
                raise SearchSpaceError(f"{where}: {kind} lists {short(value)} twice")
        return tuple(args)
    if len(args) != 2 or not all(_is_number(v) for v in args):
        raise SearchSpaceError(f"{where}: {kind} needs [low, high] (two numbers), got {short(args)}")
    low, high = args
    if not low < high:
        raise SearchSpaceError(f"{where}: {kind} needs low < high, got {short(args)}")
    if kind == "loguniform" and low <= 0:
        raise SearchSpaceError(f"{where}: loguniform needs 0 < low, got {short(args)}")
    return (float(low), float(high))


def parse_space(text: str, file: str = "<string>") -> SearchSpace:
    """Parse the yaml text of a search space; ``file`` names it in error messages."""
    try:
        root = yaml.compose(text, Loader=ConfigLoader)
        data = load_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or getattr(err, "context", None) or err
        raise SearchSpaceError(f"{file}{line}: not valid yaml: {problem}") from None
    if root is None or data is None:
        raise SearchSpaceError(f"{file}: the search space is empty: write one 'key: {{kind: args}}' per hyper-parameter")
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise SearchSpaceError(f"{file}, line {root.start_mark.line + 1}: a search space is a mapping of hyper-parameter names")
    params = {}
    for key_node, _ in root.value:
        name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        line = key_node.start_mark.line + 1
        shown = short(name)  # a key may be a megabyte long: messages show it cut
        where = f"{file}, line {line}, key {shown}"
        if name in params:
            raise SearchSpaceError(f"{where}: {shown} is given twice (line {params[name].line} too)")
        # a yaml 1.1 boolean or null key (on, yes, null) reads as True or None, not as the name
        if not isinstance(name, str) or not name.isidentifier() or name not in data:
            raise SearchSpaceError(f"{where}: a hyper-parameter name must be a RecBole config key")
        if name in RESERVED_KEYS:
            raise SearchSpaceError(f"{where}: {shown} is set by the search itself and cannot be searched")
        spec = data[name]
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
            raise SearchSpaceError(
                f"{where}: write exactly one of {', '.join(KINDS)}, e.g. '{shown[1:-1]}: {{choice: [1, 2]}}'; got {short(spec)}"
            )
        kind, args = next(iter(spec.items()))
        params[name] = Param(name, kind, _check_args(where, kind, args), line)
    return SearchSpace(file, params, text)


def load_space(path: str | Path) -> SearchSpace:
    """Read and parse a search-space yaml file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SPACE_BYTES + 1)  # bounded: a huge file, or /dev/zero
    except OSError as err:
        raise SearchSpaceError(f"{path}: cannot read the search space: {err.strerror}") from None
    if len(data) > MAX_SPACE_BYTES:
        raise SearchSpaceError(f"{path}: larger than {MAX_SPACE_BYTES:,} bytes: not a search space")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise SearchSpaceError(f"{path}, line {line}: not utf-8 text") from None
    return parse_space(text, str(path))


def default_space_file(model: str) -> Path:
    """``properties/tune/<Model>.yaml`` of this package."""
    return properties_dir() / "tune" / f"{model}.yaml"
