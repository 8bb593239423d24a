"""The training API in one import, as RecBole's ``recbole.quick_start``:

- :func:`run_recbole_session` trains and tests one model in this process
  (:mod:`recbole_session.training`);
- :func:`run` does the same, or through RecBole's distributed path (:mod:`recbole_session.distributed`);
- :func:`run_seeds` repeats a run per seed and reports mean ± std (:mod:`recbole_session.seeds`);
- :func:`make_config` builds a checked Config (:mod:`recbole_session.build`);
- :func:`main` is the command line of ``run_recbole_session.py`` (:mod:`recbole_session.command`).

This module only gathers them; nothing in the package imports it.
"""

from recbole_session.build import count_parameters, make_config
from recbole_session.cli import UsageError, hidden_argv, parse_overrides
from recbole_session.command import build_parser, main
from recbole_session.datafiles import ensure_atomic_files
from recbole_session.distributed import DISTRIBUTED_DEFAULTS, check_distributed, run
from recbole_session.seeds import parse_seeds, run_seeds
from recbole_session.training import TrainingInterrupted, run_recbole_session

__all__ = [
    "DISTRIBUTED_DEFAULTS",
    "TrainingInterrupted",
    "UsageError",
    "build_parser",
    "check_distributed",
    "count_parameters",
    "ensure_atomic_files",
    "hidden_argv",
    "main",
    "make_config",
    "parse_overrides",
    "parse_seeds",
    "run",
    "run_recbole_session",
    "run_seeds",
]
