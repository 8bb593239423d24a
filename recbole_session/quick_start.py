"""Training entry points: :func:`run_recbole_session` (one process), :func:`run` (one process
or RecBole's distributed path) and :func:`main`, the command line of
``run_recbole_session.py``.

The flow is RecBole's ``run_recbole`` with our lookups: Config -> dataset -> dataloaders ->
model -> RecBole trainer -> fit -> evaluate on test.
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
from recbole.utils import get_environment, init_logger, init_seed, set_color

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
    ``test_result``, ``n_params`` (trainable parameters) and ``model_file``.
    """
    config = make_config(model, dataset, config_file_list, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
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
    if not config["single_spec"]:
        dist.destroy_process_group()
    if config["local_rank"] == 0 and queue is not None:
        queue.put(result)
    return result


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
                f"bad override --{key}={value!r}: {key} expects a {type(default).__name__} (default {default!r})"
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
        run(args.model, args.dataset, config_files, overrides,
            **{key: getattr(args, key) for key in DISTRIBUTED_DEFAULTS})
    except UsageError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0
