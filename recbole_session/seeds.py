"""Repeated runs: :func:`run_seeds` trains once per seed and reports mean ± std."""

from __future__ import annotations

from logging import getLogger
from pathlib import Path
from typing import Any

from recbole.utils import get_local_time, set_color

from recbole_session.build import make_config
from recbole_session.cli import UsageError
from recbole_session.evaluation.results import aggregate_runs, format_mean_std, save_seed_results
from recbole_session.training import run_recbole_session


def parse_seeds(seeds: str | list[int]) -> list[int]:
    """``"1,2,3"`` or ``[1, 2, 3]`` -> ``[1, 2, 3]``."""
    if isinstance(seeds, str):
        try:
            seeds = [int(part) for part in seeds.split(",") if part.strip()]
        except ValueError:
            raise UsageError(f"bad --seeds '{seeds}': write integers separated by commas, e.g. 1,2,3") from None
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds needs distinct integers, got {seeds}")
    return seeds


def run_seeds(
    model: str | type | None = None,
    dataset: str | None = None,
    seeds: str | list[int] = (1, 2, 3),
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    saved: bool = True,
) -> dict[str, Any]:
    """:func:`~recbole_session.training.run_recbole_session` once per seed (the model's
    initialisation and training order change; the protocols' candidates do not). Returns
    ``seeds``, ``runs`` (each run's result), ``mean`` / ``std`` (sample std over seeds) of every
    metric (``test/random100/ndcg@10``, ``valid/ndcg@10``, ``n_params``, ...) and
    ``results_file`` (JSON and Markdown next to the logs, with per-user values averaged over
    seeds)."""
    seeds = parse_seeds(seeds)
    config = make_config(model, dataset, config_file_list, config_dict)
    # checkpoints are named <model>-<time to the second>: one folder per seed keeps them apart
    runs = [run_recbole_session(model, dataset, config_file_list, {
        **(config_dict or {}), "seed": seed, "checkpoint_dir": str(Path(config["checkpoint_dir"]) / f"seed{seed}")
    }, saved) for seed in seeds]
    summary = aggregate_runs(runs)
    stem = Path("log") / config["model"] / (
        f"{config['model']}-{config['dataset']}-seeds{'_'.join(map(str, seeds))}-{get_local_time()}"
    )
    results_file = save_seed_results(runs, seeds, config["model"], config["dataset"], stem)
    getLogger().info(set_color(f"mean ± std over seeds {seeds}", "yellow") + "\n" + format_mean_std(summary))
    return {"seeds": seeds, "runs": runs, **summary, "results_file": str(results_file)}
