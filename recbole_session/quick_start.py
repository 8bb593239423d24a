"""Training entry points: :func:`run_recbole_session` (one process), :func:`run` (one process
or RecBole's distributed path) and :func:`main`, the command line of
``run_recbole_session.py``.

The flow is RecBole's ``run_recbole`` with our lookups: Config -> dataset -> dataloaders ->
model -> RecBole trainer -> fit -> evaluate on test, then the best model under every
``eval_protocols`` entry on valid and test; results are saved next to the run's log.
:func:`run_seeds` repeats a run per seed and reports mean ± std.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from logging import getLogger
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from recbole.data import data_preparation
from recbole.utils import get_environment, get_local_time, init_logger, init_seed, set_color

import recbole_session  # noqa: F401  (shims and registration)
from recbole_session.config import Config
from recbole_session.utils import create_dataset, get_model, get_trainer

# the options of RecBole's own distributed path (recbole.quick_start.run)
DISTRIBUTED_DEFAULTS = {"nproc": 1, "world_size": -1, "ip": "localhost", "port": "5678", "group_offset": 0}


class UsageError(Exception):
    """A bad model name, dataset name or override: reported as one line, exit code 2."""


@contextlib.contextmanager
def hidden_argv() -> Iterator[None]:
    """RecBole's ``Config`` reads ``--key=value`` from ``sys.argv`` by itself. The API and the
    CLI pass overrides explicitly, so hide the process arguments (a test runner's, or the
    CLI's own flags) while the Config is built."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def make_config(
    model: str | type | None = None,
    dataset: str | None = None,
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
) -> Config:
    """Build our Config from explicit arguments only, with one-line errors for bad names."""
    try:
        with hidden_argv():
            return Config(model, dataset, config_file_list, config_dict)
    except ValueError as err:
        if "model_name" in str(err):
            raise UsageError(str(err)) from None
        raise


def ensure_atomic_files(config: Config) -> Path:
    """The dataset's folder; converts it first when a recipe knows it and it is missing."""
    from recbole_session.convert import ConvertError, convert, recipe_names

    data_dir = Path(config["data_path"])
    name = config["dataset"]
    benchmark = config["benchmark_filename"]
    wanted = [f"{name}.{part}.inter" for part in benchmark] if benchmark else [f"{name}.inter"]
    if all((data_dir / file).is_file() for file in wanted):
        return data_dir
    if name not in recipe_names():
        raise UsageError(
            f"unknown dataset '{name}': no {' / '.join(wanted)} in {data_dir} and no converter "
            f"recipe of that name (recipes: {', '.join(recipe_names())})"
        )
    try:
        convert(name, out=data_dir.parent)
    except ConvertError as err:
        raise UsageError(str(err)) from None
    return data_dir


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _start_logger(config: Config) -> Path | None:
    """RecBole's ``init_logger``; returns the log file this run got (RecBole does not say:
    it is the new ``log/<model>/<model>-<dataset>-*.log``)."""
    folder = Path("log") / config["model"]
    pattern = f"{config['model']}-{config['dataset']}-*.log"
    before = set(folder.glob(pattern)) if folder.is_dir() else set()
    init_logger(config)
    new = sorted(set(folder.glob(pattern)) - before, key=lambda p: p.stat().st_mtime)
    if new:
        return new[-1]
    existing = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
    return existing[-1] if existing else None


def _evaluate_protocols(config: Config, model, dataset_obj, valid_data, test_data) -> dict[str, Any]:
    """The best model under ``eval_protocols`` on valid and test (full-sort loaders only)."""
    from recbole.data.dataloader import FullSortEvalDataLoader

    from recbole_session.evaluation import evaluate_protocols_detailed

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
    ``test_result``, ``n_params`` (trainable parameters), ``model_file``, and, for the
    protocols of ``eval_protocols``, ``valid_protocols`` / ``test_protocols`` (flat keys like
    ``random100/ndcg@10``) and ``results_file`` (JSON next to the run's log, with a Markdown
    twin and the per-user values that ``python -m recbole_session.compare`` pairs).
    """
    config = make_config(model, dataset, config_file_list, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    log_file = _start_logger(config)
    logger = getLogger()
    logger.info(config)

    dataset_obj = create_dataset(config)
    logger.info(dataset_obj)
    train_data, valid_data, test_data = data_preparation(config, dataset_obj)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_obj = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model_obj)
    n_params = count_parameters(model_obj)
    logger.info(set_color("trainable parameters", "blue") + f": {n_params}")

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model_obj)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(
        test_data, load_best_model=saved, show_progress=config["show_progress"]
    )

    details = _evaluate_protocols(config, trainer.model, dataset_obj, valid_data, test_data)

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
    }
    for split, detail in details.items():
        result[f"{split}_protocols"] = detail.metrics
    if config["local_rank"] == 0 and log_file is not None:
        from recbole_session.evaluation.results import save_run_results

        stem = log_file.with_suffix("")
        result["results_file"] = str(save_run_results(result, config, details, stem))
        logger.info(f"results saved to {result['results_file']} and .md")
    if not config["single_spec"]:
        dist.destroy_process_group()
    if config["local_rank"] == 0 and queue is not None:
        queue.put(result)
    return result


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
    """:func:`run_recbole_session` once per seed (the model's initialisation and training
    order change; the protocols' candidates do not). Returns ``seeds``, ``runs`` (each run's
    result), ``mean`` / ``std`` (sample std over seeds) of every metric
    (``test/random100/ndcg@10``, ``valid/ndcg@10``, ``n_params``, ...) and ``results_file``
    (JSON and Markdown next to the logs, with per-user values averaged over seeds)."""
    from recbole_session.evaluation.results import (
        aggregate_runs,
        format_mean_std,
        save_seed_results,
    )

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


def _distributed_worker(rank: int, model, dataset, config_file_list, config_dict, queue) -> None:
    # a module-level function, so that spawned processes import recbole_session (and so
    # register our models) before they unpickle it
    run_recbole_session(model, dataset, config_file_list, {**config_dict, "local_rank": rank}, queue=queue)


def check_distributed(nproc: int) -> None:
    """RecBole's distributed path needs CUDA, NCCL and ``nproc`` GPUs; say which is missing."""
    if not torch.cuda.is_available():
        raise UsageError(f"--nproc={nproc} uses RecBole's distributed (NCCL) training, which needs CUDA GPUs; none is available")
    if not dist.is_available() or not dist.is_nccl_available():
        raise UsageError("RecBole's distributed training uses the NCCL backend, which this torch build lacks")
    if torch.cuda.device_count() < nproc:
        raise UsageError(f"--nproc={nproc} but only {torch.cuda.device_count()} CUDA device(s) are visible")


def run(
    model: str | type | None = None,
    dataset: str | None = None,
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    saved: bool = True,
    nproc: int = 1,
    world_size: int = -1,
    ip: str = "localhost",
    port: str = "5678",
    group_offset: int = 0,
) -> dict[str, Any] | None:
    """RecBole's ``run``: one process, or ``nproc`` processes through RecBole's own distributed
    path (its ``nproc``, ``world_size``, ``ip``, ``port`` and ``offset`` config keys)."""
    config_dict = dict(config_dict or {})
    if nproc == 1 and world_size <= 0:
        return run_recbole_session(model, dataset, config_file_list, config_dict, saved)
    check_distributed(nproc)
    import torch.multiprocessing as mp

    world_size = nproc if world_size == -1 else world_size
    config_dict.update(
        {"world_size": world_size, "ip": ip, "port": port, "nproc": nproc, "offset": group_offset,
         "gpu_id": config_dict.get("gpu_id", ",".join(str(i) for i in range(nproc)))}
    )
    # build the data once before the workers start, so that they do not convert it concurrently
    ensure_atomic_files(make_config(model, dataset, config_file_list, config_dict))
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_distributed_worker, args=(model, dataset, config_file_list, config_dict, queue), nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """RecBole-style ``--key=value`` overrides, typed as RecBole types command-line values."""
    raw = {}
    for arg in args:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not sep or not key.isidentifier():
            raise UsageError(f"bad override '{arg}': write overrides as --key=value")
        raw[key] = value
    return Config._convert_config_dict(None, raw)


_KIND = {bool: "True or False", int: "an integer", float: "a number"}


def check_override_types(config: Config, overrides: dict[str, Any]) -> None:
    """An override whose default is a number or a bool must be one too (``--epochs=ten``
    would otherwise fail deep inside training)."""
    for key, value in overrides.items():
        default = config.internal_config_dict.get(key)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            continue
        if not ok:
            raise UsageError(
                f"bad override --{key}={value!r}: {key} expects {_KIND[type(default)]} (default {default!r})"
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_recbole_session.py",
        description="Train and test a recbole-session or RecBole model; any other --key=value "
        "overrides a RecBole config key (e.g. --epochs=1 --train_batch_size=512).",
    )
    parser.add_argument("--model", "-m", default="SessionBERT4Rec", help="model name (ours or RecBole's)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (folder under data_path)")
    parser.add_argument("--config_files", default=None, help="space-separated yaml config files")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds (e.g. 1,2,3): one run per seed, then mean ± std")
    for key, default in DISTRIBUTED_DEFAULTS.items():
        parser.add_argument(f"--{key}", type=type(default), default=default,
                            help="RecBole distributed option" if key != "nproc" else "processes (GPUs) to train on")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        overrides = parse_overrides(rest)
        config_files = args.config_files.split() if args.config_files else None
        check_override_types(make_config(args.model, args.dataset, config_files, overrides), overrides)
        if args.seeds is not None:
            if args.nproc != 1 or args.world_size > 0:
                raise UsageError("--seeds runs in one process; leave out --nproc / --world_size")
            result = run_seeds(args.model, args.dataset, parse_seeds(args.seeds), config_files, overrides)
            from recbole_session.evaluation.results import format_mean_std

            print(format_mean_std(result))
            print(f"results: {result['results_file']}")
            return 0
        run(args.model, args.dataset, config_files, overrides,
            **{key: getattr(args, key) for key in DISTRIBUTED_DEFAULTS})
    except UsageError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0
