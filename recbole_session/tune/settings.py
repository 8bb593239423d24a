"""What defines a search and what it returns, shared by the driver
(:mod:`recbole_session.tune.search`) and the outputs (:mod:`recbole_session.tune.report`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEDULERS = ("asha", "fifo")
# ASHA: evaluations a trial always gets, and the fraction (1/factor) kept at each rung (Ray's defaults)
ASHA_GRACE_PERIOD = 1
ASHA_REDUCTION_FACTOR = 4
# Ray Tune's experiment: <output>/ray/<EXPERIMENT>/
EXPERIMENT = "search"
SETTINGS_FILE = "search.json"
SPACE_COPY = "space.yaml"


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
