"""What defines a search and what it returns, shared by the driver
(:mod:`recbole_session.tune.search`) and the outputs (:mod:`recbole_session.tune.report`)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEDULERS = ("asha", "fifo")
# ASHA: evaluations a trial always gets, and the fraction (1/factor) kept at each rung (Ray's defaults)
ASHA_GRACE_PERIOD = 1
ASHA_REDUCTION_FACTOR = 4
# ASHA keeps 1/factor of the trials at each rung: a factor of 1 keeps them all (Ray divides by
# log(factor) and fails)
MIN_REDUCTION_FACTOR = 2
# the smallest fraction of a resource Ray accounts for (ray_option_utils: precision 0.0001)
RAY_RESOURCE_UNIT = 1e-4
# the most trials a search may make (grid sizes x samples): the paper's grid is 2,304; a space
# of ten 100-value grids would make 10^20 trials and never end
MAX_TRIALS = 100_000
# Ray Tune's verbosity levels
VERBOSITY = (0, 1, 2, 3)
# Ray Tune's experiment: <output>/ray/<EXPERIMENT>/
EXPERIMENT = "search"
SETTINGS_FILE = "search.json"
SPACE_COPY = "space.yaml"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Range:
    """The values a numeric option of the search accepts: checked when the command line is
    parsed (:meth:`argparse_type`) and at the top of ``tune_model`` (:meth:`accepts`)."""

    kind: type  # int or float: how the command line reads the text
    check: Callable[[Any], bool]
    expected: str
    optional: bool = False  # None (the default) is accepted too

    def accepts(self, value: Any) -> bool:
        return (self.optional and value is None) or self.check(value)

    def argparse_type(self) -> Callable[[str], Any]:
        def parse(text: str) -> Any:
            value = self.kind(text)  # a ValueError: argparse says "invalid int value: 'x'"
            if not self.check(value):
                raise argparse.ArgumentTypeError(f"expected {self.expected}, got {text}")
            return value

        parse.__name__ = self.kind.__name__
        return parse


# the numeric arguments of tune_model and their command-line options (--num-samples, ...)
RANGES: dict[str, Range] = {
    "num_samples": Range(int, lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "grace_period": Range(int, lambda v: _is_int(v) and v >= 1, "an integer >= 1 (evaluations)"),
    "reduction_factor": Range(int, lambda v: _is_int(v) and v >= MIN_REDUCTION_FACTOR,
                              f"an integer >= {MIN_REDUCTION_FACTOR} (ASHA keeps 1/factor of the trials at each rung)"),
    "cpus_per_trial": Range(float, lambda v: _is_real(v) and v >= RAY_RESOURCE_UNIT,
                            f"a number >= {RAY_RESOURCE_UNIT:g} (CPUs, fractions allowed)"),
    "gpus_per_trial": Range(float, lambda v: _is_real(v) and (v == 0 or v >= RAY_RESOURCE_UNIT),
                            f"0 or a number >= {RAY_RESOURCE_UNIT:g} (GPUs, fractions share one)"),
    "max_concurrent": Range(int, lambda v: _is_int(v) and v >= 1, "an integer >= 1 (trials at once)", optional=True),
    "num_cpus": Range(int, lambda v: _is_int(v) and v >= 1, "an integer >= 1 (CPUs of the local Ray instance)",
                      optional=True),
    "verbose": Range(int, lambda v: _is_int(v) and v in VERBOSITY, f"one of {', '.join(map(str, VERBOSITY))}"),
}


@dataclass
class SearchSettings:
    """Everything that defines a search; saved as ``search.json`` for ``--resume``."""

    model: str
    dataset: str
    space_file: str
    config_files: list[str]
    overrides: dict[str, Any]
    num_samples: int = 1
    scheduler: str = "asha"
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_concurrent: int | None = None
    grace_period: int = ASHA_GRACE_PERIOD
    reduction_factor: int = ASHA_REDUCTION_FACTOR
    keep_checkpoints: bool = False


@dataclass
class SearchResult:
    """What :func:`~recbole_session.tune.search.tune_model` returns: one row per trial (best
    first), the best trial's configuration, the output folder and whether the search was
    interrupted."""

    output: Path
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    interrupted: bool
    files: list[Path]

    @property
    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts
