"""One training run in this process: :func:`run_recbole_session`, RecBole's ``run_recbole``
through :func:`recbole_session.build.build`: fit, test the best model, evaluate it under every
``eval_protocols`` entry on valid and test, and save the results next to the run's log."""

from __future__ import annotations

import os
from logging import getLogger
from pathlib import Path
from typing import Any

import torch.distributed as dist
from recbole.utils import get_environment, init_logger, init_seed, set_color

from recbole_session.build import build, count_parameters, make_config
from recbole_session.checks import check_outputs, check_room
from recbole_session.config import Config
from recbole_session.evaluation import evaluate_protocols_detailed
from recbole_session.evaluation.results import environment, save_run_results, split_counts
from recbole_session.trainer.distributed_trainer import gather_processes, is_main_process


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl+C during training; ``model_file`` is the best checkpoint saved so far (``None``
    when none was saved yet)."""

    def __init__(self, model_file: str | None) -> None:
        super().__init__(model_file)
        self.model_file = model_file


def _start_logger(config: Config) -> Path | None:
    """RecBole's ``init_logger``; returns the log file this run got (RecBole does not say: it
    is the new ``log/<model>/<model>-<dataset>-*.log``; not its root ``FileHandler``'s, which stays
    the first run's in a process that trains twice, since RecBole's ``basicConfig`` adds handlers once)."""
    folder = Path("log") / config["model"]
    pattern = f"{config['model']}-{config['dataset']}-*.log"
    before = set(folder.glob(pattern)) if folder.is_dir() else set()
    # RecBole checks, then creates the folder: two processes of one run race there
    folder.mkdir(parents=True, exist_ok=True)
    init_logger(config)
    new = sorted(set(folder.glob(pattern)) - before, key=lambda p: p.stat().st_mtime)
    if new:
        return new[-1]
    existing = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
    return existing[-1] if existing else None


def _evaluate_protocols(config: Config, model, dataset_obj, valid_data, test_data) -> dict[str, Any]:
    """The best model under ``eval_protocols`` on valid and test (full-sort loaders only)."""
    from recbole.data.dataloader import FullSortEvalDataLoader

    if not config["eval_protocols"]:
        return {}
    if not isinstance(test_data, FullSortEvalDataLoader):
        getLogger().warning("eval_protocols skipped: they need eval_args mode 'full' loaders")
        return {}
    details = {}
    for split, data in (("valid", valid_data), ("test", test_data)):
        try:
            details[split] = evaluate_protocols_detailed(model, data, config, dataset=dataset_obj)
        except ValueError as err:  # e.g. a toy dataset with too few items for popular100
            getLogger().warning(f"eval_protocols skipped: {err}")
            return {}
        getLogger().info(set_color(f"{split} protocols", "yellow") + f": {details[split].metrics}")
        if details[split].open_metrics:
            getLogger().info(set_color(f"{split} protocols, targets that open a session", "yellow")
                             + f": {details[split].open_metrics}")
    return details


def run_recbole_session(
    model: str | type | None = None,
    dataset: str | None = None,
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    saved: bool = True,
    queue: Any = None,
) -> dict[str, Any]:
    """Train and test one model in this process, as RecBole's ``run_recbole``.

    Returns ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``,
    ``test_result``, ``n_params`` (trainable parameters), ``model_file``, ``environment``
    (:func:`~recbole_session.evaluation.results.environment`: versions, CPU kernels, threads,
    GPU), and, for the protocols of ``eval_protocols``, ``valid_protocols`` /
    ``test_protocols`` (flat keys like
    ``random100/ndcg@10``) and ``results_file`` (JSON next to the run's log, with a Markdown
    twin and the per-user values that ``python -m recbole_session.compare`` pairs).
    Ctrl+C during training raises :class:`TrainingInterrupted`, which names the best
    checkpoint saved so far.
    """
    config = make_config(model, dataset, config_file_list, config_dict)
    check_outputs(config)
    init_seed(config["seed"], config["reproducibility"])
    log_file = _start_logger(config)
    logger = getLogger()
    logger.info(config)

    built = build(config)
    if saved:
        check_room(config, built.model)
    trainer = built.trainer
    n_params = count_parameters(built.model)
    logger.info(set_color("trainable parameters", "blue") + f": {n_params}")

    try:
        best_valid_score, best_valid_result = trainer.fit(
            built.train_data, built.valid_data, saved=saved, show_progress=config["show_progress"]
        )
    except KeyboardInterrupt:
        model_file = trainer.saved_model_file if saved and os.path.isfile(trainer.saved_model_file) else None
        raise TrainingInterrupted(model_file) from None
    # what each process trained, and that their weights agree (before rank 0 loads the best)
    processes = None if config["single_spec"] else gather_processes(trainer)
    test_result = trainer.evaluate(
        built.test_data, load_best_model=saved, show_progress=config["show_progress"]
    )

    main = is_main_process()  # of several processes, the one that evaluates and writes
    details = _evaluate_protocols(config, trainer.model, built.dataset, built.valid_data, built.test_data) if main else {}

    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")

    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "n_params": n_params,
        "model_file": trainer.saved_model_file if saved else None,
        # where it trained (kernels, threads, versions): what a seed's numbers depend on
        "environment": environment(config["device"]),
    }
    if processes is not None:
        result["processes"] = processes
    for split, detail in details.items():
        result[f"{split}_protocols"] = detail.metrics
    if details:
        result.update(split_counts(details))
    else:  # no protocols: the eval datasets' rows, one target each for a sequential model
        result["targets"] = {"valid": len(built.valid_data._dataset), "test": len(built.test_data._dataset)}
    opening = result.get("open_targets") or {}
    logger.info(set_color("targets", "blue") + f" ({config['eval_split']} split): " + ", ".join(
        f"{split} {count}" + (f" ({opening[split]} open a session)" if split in opening else "")
        for split, count in result["targets"].items()))
    if main and log_file is not None:
        stem = log_file.with_suffix("")
        result["results_file"] = str(save_run_results(result, config, details, stem))
        logger.info(f"results saved to {result['results_file']} and .md")
    if not config["single_spec"]:
        dist.destroy_process_group()
    if main and queue is not None:
        queue.put(result)
    return result
