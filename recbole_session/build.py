"""The one path from a config to a model ready to train or evaluate.

.. code-block:: python

    from recbole_session.build import build, make_config

    config = make_config("SRIEM", "ml-100k", config_dict={"epochs": 1})   # checked, one-line errors
    built = build(config)                  # dataset -> loaders -> model -> trainer
    built.trainer.fit(built.train_data, built.valid_data)
    built.trainer.evaluate(built.test_data)

:func:`make_config` builds the Config from explicit arguments only (``sys.argv`` hidden) and
refuses, before anything is loaded, an unknown model or dataset, an unknown key, a value of the
wrong type or out of range (:mod:`recbole_session.checks`), and a malformed atomic file.

:func:`build` then runs RecBole's sequence: seed, dataset (converted first when a recipe knows
it and its files are missing; ``dataset=`` reuses a built one), RecBole's ``data_preparation``,
seed again, the model on the **train split's** dataset (as RecBole's ``run_recbole``; a model
that learns from its training data, such as ASARS's dwell bins, then sees the same data at
training and at reloading), and the trainer (``trainer=False``: none). It returns a
:class:`Built`. :func:`from_checkpoint` is the same path from a saved checkpoint (the data is
never converted or downloaded there, since its location comes from the file), and
:func:`load_data_and_model` is RecBole's function of that name on top of it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from logging import getLogger
from pathlib import Path
from typing import Any

import torch
from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed, set_color

from recbole_session import checkpoint, lookup
from recbole_session.checks import check_config, check_item_count, check_values
from recbole_session.cli import UsageError, hidden_argv
from recbole_session.config import Config
from recbole_session.datafiles import check_dataset, ensure_atomic_files, has_files, wanted_files
from recbole_session.evaluation.protocols import remember_whole_dataset
from recbole_session.literals import short
from recbole_session.trainer.distributed_trainer import one_process, with_distributed

# fewer optimizer steps per epoch than this: warn that the batch is too large for the data
MIN_STEPS_PER_EPOCH = 10
# RecBole reads a saved split from <checkpoint_dir> when one exists: a plain pickle, which runs
# code when loaded; this path never exists (a NUL byte), so RecBole always splits afresh
_NO_SAVED_SPLIT = "\0never-loaded"


@dataclass
class Built:
    """What :func:`build` makes: the Config, the whole dataset, RecBole's three dataloaders, the
    model (on ``config["device"]``) and its trainer (``None`` when not asked for)."""

    config: Config
    dataset: Any
    train_data: Any
    valid_data: Any
    test_data: Any
    model: torch.nn.Module
    trainer: Any = None


def make_config(
    model: str | type | None = None,
    dataset: str | None = None,
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    *,
    check: bool = True,
) -> Config:
    """Our Config from explicit arguments only, checked before anything is loaded; a bad name,
    key, value or file raises :class:`~recbole_session.cli.UsageError` (one line).
    ``check=False`` leaves out the key, value and data-file checks (a Ray trial: the search
    checked its fixed keys and data before it started, and a trial whose sampled values fail
    is recorded with the error they raise)."""
    check_arguments(model, dataset, config_file_list, config_dict)
    try:
        with hidden_argv():
            config = Config(model, dataset, config_file_list, config_dict)
    except (ValueError, NotImplementedError) as err:  # an unknown model or metric, a bad config file, a value RecBole's Config refuses
        raise UsageError(" ".join(str(err).split())) from None
    if check:
        check_config(config, config_dict)
        check_dataset(config)
    return config


# a dataset is a folder name: most file systems allow 255 bytes
MAX_NAME_BYTES = 255


def check_arguments(model: Any, dataset: Any, config_file_list: Any, config_dict: Any) -> None:
    """The types of :func:`make_config`'s arguments, and a dataset name that can be a folder's,
    as one-line :class:`UsageError` s (they failed deep inside RecBole with a TypeError)."""
    if model is not None and not isinstance(model, (str, type)):
        raise UsageError(f"model: expected a model name (str) or class, got {type(model).__name__} {short(model)}")
    if dataset is not None:
        if not isinstance(dataset, str):
            raise UsageError(f"dataset: expected a dataset name (str), got {type(dataset).__name__} {short(dataset)}")
        if (not dataset or dataset in (".", "..") or "/" in dataset or os.sep in dataset or "\0" in dataset
                or len(dataset.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES):
            raise UsageError(f"--dataset={short(dataset)}: expected a dataset name, the name of a folder under "
                             f"data_path (no '/', at most {MAX_NAME_BYTES} bytes)")
    if config_file_list is not None and (isinstance(config_file_list, (str, bytes)) or not isinstance(config_file_list, (list, tuple))
                                         or not all(isinstance(f, (str, os.PathLike)) for f in config_file_list)):
        raise UsageError(f"config_file_list: expected a list of file paths, got {short(config_file_list)}")
    if config_dict is not None:
        if not isinstance(config_dict, dict):
            raise UsageError(f"config_dict: expected a dict of config keys to values, got {type(config_dict).__name__}")
        bad = next((key for key in config_dict if not isinstance(key, str)), None)
        if bad is not None:
            raise UsageError(f"config_dict: key {short(bad)} is not a name: config keys are strings")
        # RecBole's Config joins data_path before any check can see it
        data_path = config_dict.get("data_path")
        if data_path is not None and not isinstance(data_path, (str, os.PathLike)):
            raise UsageError(f"bad value data_path: {short(data_path)}: expected a folder (str)")


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def counts_line(config, dataset) -> str:
    """Users and items as the converter counts them (RecBole's counts include its padding id)."""
    users, items = dataset.user_num, dataset.item_num
    return (f"{config['dataset']}: {users - 1:,} users, {items - 1:,} items, {dataset.inter_num:,} interactions "
            f"(RecBole counts its padding id too: {users:,} users / {items:,} items)")


def create_dataset(config):
    """The dataset of ``config`` (see :func:`recbole_session.lookup.create_dataset`), converted
    first when a recipe knows it and its files are missing (``ml-100k`` is built offline)."""
    ensure_atomic_files(config)
    return lookup.create_dataset(config)


def _prepare(config, dataset):
    """RecBole's ``data_preparation``. In a run of several processes only the training loader is
    sharded: one process evaluates every target (:mod:`recbole_session.trainer.distributed_trainer`)."""
    saved = config["dataloaders_save_path"]
    config["dataloaders_save_path"] = _NO_SAVED_SPLIT
    try:
        if config["single_spec"]:
            return data_preparation(config, dataset)
        with one_process(config):
            train_data, valid_data, test_data = data_preparation(config, dataset)
        # the same loader again, now with RecBole's DistributedSampler over the training rows
        kg = getattr(train_data, "kg_dataloader", None)  # a knowledge-based model's two loaders
        if kg is not None:
            train_data = type(train_data)(config, train_data._dataset, train_data.general_dataloader._sampler,
                                          kg._sampler, shuffle=True)
        else:
            train_data = type(train_data)(config, train_data._dataset, train_data._sampler, shuffle=train_data.shuffle)
        return train_data, valid_data, test_data
    finally:
        config["dataloaders_save_path"] = saved


def _warn_few_steps(config, train_data, epoch_steps: int = 0) -> None:
    # a trainer with epoch_steps (ProtocolValidation) takes that many steps whatever the pass
    steps = epoch_steps or len(train_data)
    if steps < MIN_STEPS_PER_EPOCH:
        rows = len(train_data.dataset)
        getLogger().warning(
            f"train_batch_size={config['train_batch_size']} gives {steps} optimizer step(s) per epoch on "
            f"{rows:,} training rows (fewer than {MIN_STEPS_PER_EPOCH}): lower it, e.g. "
            f"--train_batch_size={max(1, rows // MIN_STEPS_PER_EPOCH)}")


# hex digits of the suffix that tells apart two checkpoints named in the same second
NAME_SUFFIX_BYTES = 3


def unique_name(path: str) -> str:
    """RecBole's checkpoint name ``<model>-<time to the second>.pth`` with a random suffix
    (``-3fa2c1``, as RecBole's log names have): two runs started in the same second in one folder
    (``--seeds`` side by side, two commands) wrote to the same file."""
    stem, ext = os.path.splitext(path)
    return f"{stem}-{secrets.token_hex(NAME_SUFFIX_BYTES)}{ext}"


def build(config: Config, dataset: Any = None, *, trainer: bool = True, convert: bool = True) -> Built:
    """Dataset, dataloaders, model and trainer of ``config`` (see the module docstring).

    ``dataset``: a dataset already built for this config (shared by Ray trials); ``trainer``:
    build the model's trainer too; ``convert``: convert a missing dataset that a recipe knows.
    """
    logger = getLogger()
    if config.dataset_config_file:
        logger.info(set_color("dataset settings read from", "pink") + f": {config.dataset_config_file}")
    init_seed(config["seed"], config["reproducibility"])
    if dataset is None:
        dataset = create_dataset(config) if convert else lookup.create_dataset(config)
    logger.info(dataset)
    logger.info(counts_line(config, dataset))
    check_item_count(config, dataset.item_num - 1, "after RecBole's filters")
    train_data, valid_data, test_data = _prepare(config, dataset)
    # the protocols' candidates come from this dataset, not from a rebuild (evaluation/protocols.py)
    remember_whole_dataset(dataset, valid_data, test_data)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = lookup.get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    built_trainer = None
    if trainer:
        trainer_class = lookup.trainer_for(config)
        if not config["single_spec"]:  # several processes: one evaluation and decision for all of them
            trainer_class = with_distributed(trainer_class)
        built_trainer = trainer_class(config, model)
        built_trainer.saved_model_file = unique_name(built_trainer.saved_model_file)
        _warn_few_steps(config, train_data, getattr(built_trainer, "epoch_steps", 0))
    return Built(config, dataset, train_data, valid_data, test_data, model, built_trainer)


def checkpoint_config(path: str | Path, data_path: str | None = None,
                      overrides: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> Config:
    """The Config a checkpoint was saved with, rebuilt from its literals (nothing evaluated), on
    this machine's device, with ``data_path`` (the folder holding ``<dataset>/``) and
    ``overrides`` applied. Its dataset must be there: nothing is converted or downloaded, and
    no folder is created, at a path that comes from the file. ``state``: the file, already
    read by :func:`recbole_session.checkpoint.load`."""
    state = checkpoint.load(path, map_location="cpu") if state is None else state
    try:
        config = Config.from_literals(state["config"])
    except (lookup.UnknownModelError, UsageError) as err:  # UsageError: a value that would reach code
        raise checkpoint.CheckpointError(f"{path}: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise checkpoint.CheckpointError(f"{path}: field 'config' is not a RecBole config ({err})") from None
    if data_path is not None:
        config["data_path"] = str(Path(data_path) / config["dataset"])
    # RecBole's saved dataset and split are plain pickles: never read them for a checkpoint
    config["dataset_save_path"] = None
    config["save_dataset"] = config["save_dataloaders"] = False
    for key, value in (overrides or {}).items():
        config[key] = value
    try:  # a checkpoint's values pass the checks a command line's do
        check_values(config)
    except UsageError as err:
        raise checkpoint.CheckpointError(f"{path}: field 'config': {err}") from None
    if not has_files(config):
        raise checkpoint.CheckpointError(
            f"{path}: the dataset '{config['dataset']}' of this checkpoint is not in {config['data_path']} "
            f"(no {' / '.join(wanted_files(config))}): give --data_path DIR, the folder that holds "
            f"{config['dataset']}/ (convert it with: python -m recbole_session.convert {config['dataset']} --out DIR)")
    return config


def from_checkpoint(path: str | Path, data_path: str | None = None,
                    overrides: dict[str, Any] | None = None, *, start_logger: bool = False) -> Built:
    """:func:`build` (no trainer) from a checkpoint, with its weights loaded;
    ``start_logger``: RecBole's ``init_logger`` (a log file under ``./log``) and the config
    logged, as RecBole's ``load_data_and_model`` does."""
    state = checkpoint.load(path, map_location="cpu")
    config = checkpoint_config(path, data_path, overrides, state)
    if start_logger:
        init_logger(config)
        getLogger().info(config)
    built = build(config, trainer=False, convert=False)
    try:
        built.model.load_state_dict(state["state_dict"])
        built.model.load_other_parameter(state.get("other_parameter"))
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise checkpoint.CheckpointError(
            f"{path}: its weights do not fit a {config['model']} built on {config['dataset']} ({first})") from None
    return built


def load_data_and_model(model_file: str) -> tuple[Any, Any, Any, Any, Any, Any]:
    """RecBole's ``recbole.quick_start.load_data_and_model``: ``(config, model, dataset,
    train_data, valid_data, test_data)`` from a checkpoint, with RecBole's logger started, but
    the Config rebuilt from literals instead of unpickled (see :mod:`recbole_session.checkpoint`).
    ``import recbole_session`` puts it in RecBole's place."""
    built = from_checkpoint(model_file, start_logger=True)
    return built.config, built.model, built.dataset, built.train_data, built.valid_data, built.test_data
