"""The search driver: Ray instance, Tuner, resume, and the outputs.

Layout of an output folder::

    search.json     the settings of the search (what --resume continues)
    space.yaml      a copy of the search space
    resume.json     the signed manifest of search.json, space.yaml and ray/ (recbole_session.tune.trust)
    ray/search/     Ray Tune's experiment (one folder per trial, with RecBole's log)
    ray_tmp/        Ray's temporary files, when this search started the Ray instance
    results.csv, best.yaml, summary.md, plot_<key>.png   (see recbole_session.tune.report)
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import socket
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from recbole_session.build import create_dataset, make_config
from recbole_session.checks import check_folder, search_keys
from recbole_session.cli import UsageError, suggestion
from recbole_session.datafiles import ensure_atomic_files
from recbole_session.files import write_atomic
from recbole_session.literals import short
from recbole_session.paths import PACKAGE_DIR
from recbole_session.tune.report import quiet_analysis, write_outputs
from recbole_session.tune.settings import (
    ASHA_GRACE_PERIOD,
    ASHA_REDUCTION_FACTOR,
    EXPERIMENT,
    MAX_TRIALS,
    RANGES,
    SCHEDULERS,
    SETTINGS_FILE,
    SPACE_COPY,
    SearchResult,
    SearchSettings,
)
from recbole_session.tune.space import (
    SearchSpace,
    SearchSpaceError,
    default_space_file,
    load_space,
    parse_space,
)
from recbole_session.tune.trainable import SCORE, TrialSetup, run_trial
from recbole_session.tune.trust import RAY_STATE, drop_manifest, verify_manifest, write_manifest

# Ray's socket files live under its temp folder: AF_UNIX paths are limited to 107 bytes, and
# Ray appends about 64 characters (session_<date>_<time>_<pid>/sockets/plasma_store).
RAY_SOCKET_SUFFIX = 64
AF_UNIX_PATH_MAX = 107
# --address: Ray's client scheme, the largest TCP port, and how long to wait for the cluster
RAY_CLIENT_PREFIX = "ray://"
MAX_PORT = 65535
ADDRESS_PROBE_SECONDS = 5
# keys that describe the data: searching one of them means each trial builds its own dataset
DATA_KEYS = frozenset({"eval_args", "seed", "repeatable", "benchmark_filename"})

logger = logging.getLogger(__name__)


def package_root() -> str:
    """The folder that holds the ``recbole_session`` this process imported (a source checkout
    or site-packages), so that local Ray workers import the same copy."""
    return str(PACKAGE_DIR.parent)


def ray_temp_dir(output: Path) -> tuple[str, bool]:
    """``<output>/ray_tmp`` when its socket paths fit AF_UNIX's limit, else a short folder under
    the system temp dir; the flag says whether the short fallback was taken."""
    preferred = (output / "ray_tmp").resolve()
    if len(str(preferred)) + RAY_SOCKET_SUFFIX <= AF_UNIX_PATH_MAX:
        preferred.mkdir(parents=True, exist_ok=True)
        return str(preferred), False
    return tempfile.mkdtemp(prefix="rbs-ray-"), True


def start_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    temp_dir: str | None = None,
) -> bool:
    """Join the Ray cluster at ``address`` (``auto``, ``host:port`` or ``ray://host:port``), or
    start a local instance (no dashboard) whose workers import this process's copy of
    ``recbole_session``. Does nothing if Ray is already initialised in this process.
    Returns whether this call started or joined Ray (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "include_dashboard": False}
    if address:
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except ConnectionError as err:  # "auto" without a cluster, or one that went away
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(f"--address {address}: cannot join the Ray cluster ({short(first)})") from None
        return True
    pythonpath = os.pathsep.join(p for p in (package_root(), os.environ.get("PYTHONPATH")) if p)
    # ray 2.6.3 imports the deprecated pkg_resources in every worker: keep that one warning
    # out of the trials' output
    warnings = os.pathsep.join(
        w for w in (os.environ.get("PYTHONWARNINGS"), "ignore:pkg_resources is deprecated:UserWarning") if w
    )
    ray.init(
        num_cpus=num_cpus or os.cpu_count(),
        num_gpus=num_gpus,
        _temp_dir=temp_dir,
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath, "PYTHONWARNINGS": warnings}},
        **quiet,
    )
    return True


def _check_local_resources(settings: SearchSettings, num_cpus: int | None) -> None:
    """A trial that asks for more than the local Ray instance has would wait forever."""
    import ray

    if ray.is_initialized():
        resources = ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    else:
        import torch

        cpus = num_cpus or os.cpu_count() or 1
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if settings.cpus_per_trial > cpus:
        raise UsageError(f"--cpus-per-trial={settings.cpus_per_trial} but the local Ray instance has {cpus:g} CPUs")
    if settings.gpus_per_trial > gpus:
        raise UsageError(f"--gpus-per-trial={settings.gpus_per_trial} but the local Ray instance has {gpus:g} GPUs")


def _check_param_type(space: SearchSpace, param, default: Any) -> None:
    """A searched value of another type than the key's default (``hidden_size: {grid: [a, b]}``)
    would fail every trial that draws it: refuse it before the search starts. Only the type:
    a value out of range fails its trial, which is recorded with its error."""
    where = f"{space.file}, line {param.line}, key '{param.name}'"
    if isinstance(default, bool):
        kind, ok = "True or False", lambda v: isinstance(v, bool)
    elif isinstance(default, int):
        kind, ok = "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    elif isinstance(default, float):
        kind, ok = "a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    else:  # a string, list or None default: RecBole takes several types there
        return
    if param.values is None:  # uniform, loguniform: Ray draws floats
        if kind != "a number":
            raise UsageError(f"{where}: {param.name} expects {kind} (default {short(default)}), "
                             f"but {param.kind} draws floats: use grid or choice")
        return
    for value in param.values:
        if not ok(value):
            raise UsageError(f"{where}: {param.name} expects {kind} (default {short(default)}), "
                             f"got {short(value)} in its {param.kind}")


def _data_keys(config) -> set[str]:
    return set(config.parameters["Dataset"]) | DATA_KEYS


def _check_settings(settings: SearchSettings, space: SearchSpace):
    """Validate names, overrides and options before Ray starts; returns the driver's Config."""
    if settings.scheduler not in SCHEDULERS:
        raise UsageError(f"unknown scheduler {short(settings.scheduler)} (choose from {', '.join(SCHEDULERS)})")
    trials = space.grid_size() * settings.num_samples
    if trials > MAX_TRIALS:
        raise UsageError(f"{space.file}: the search would make {trials:,} trials (its grids times --num-samples), "
                         f"more than {MAX_TRIALS:,}: search fewer values")
    config = make_config(settings.model, settings.dataset, settings.config_files or None, settings.overrides)
    known = search_keys(config)
    for name, param in space.params.items():
        if name not in known:
            raise UsageError(f"{space.file}, line {param.line}, key '{name}': not a config key of {settings.model} "
                             f"(its yaml) nor of RecBole{suggestion(name, known)}")
        _check_param_type(space, param, config[name])
    if int(config["eval_step"]) < 1:
        raise UsageError("a search needs a validation score: set eval_step >= 1")
    clash = sorted(set(space.params) & set(settings.overrides))
    if clash:
        raise UsageError(f"{', '.join(clash)} is both searched ({space.file}) and fixed by an override")
    return config


def _shared_dataset(config, space: SearchSpace) -> bytes | None:
    """Build the RecBole dataset once in the driver and pickle it for Ray's object store, unless
    the search varies a key that changes the dataset."""
    varied = sorted(set(space.params) & _data_keys(config))
    if varied:
        logger.warning("searching %s, which change the dataset: every trial builds its own", ", ".join(varied))
        return None
    return pickle.dumps(create_dataset(config))


def _scheduler(settings: SearchSettings, config):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if settings.scheduler == "fifo":
        return FIFOScheduler()
    # one report per evaluation: a trial that trains to the end reports this many times
    evaluations = math.ceil(int(config["epochs"]) / int(config["eval_step"]))
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max(1, evaluations),
        grace_period=max(1, min(settings.grace_period, evaluations)),
        reduction_factor=settings.reduction_factor,
    )


def _trainable(settings: SearchSettings, blob: bytes | None):
    from ray import tune

    setup = TrialSetup(
        settings.model, settings.dataset, tuple(settings.config_files), settings.overrides,
        settings.keep_checkpoints,
    )
    trainable = tune.with_parameters(run_trial, setup=setup, dataset_blob=blob)
    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    return tune.with_resources(trainable, resources)


def _trial_dirname(trial) -> str:
    # short names: the default one lists every parameter and can exceed path limits
    return f"trial_{trial.trial_id}"


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def _prepare_settings(settings: SearchSettings) -> SearchSettings:
    """Make every path absolute: Ray runs each trial inside its own folder."""
    overrides = dict(settings.overrides)
    for key in ("data_path", "dataset_save_path"):
        if overrides.get(key):
            overrides[key] = _absolute(overrides[key])
    settings.overrides = overrides
    settings.config_files = [_absolute(f) for f in settings.config_files]
    settings.space_file = _absolute(settings.space_file)
    return settings


def _make_tuner(settings: SearchSettings, config, space: SearchSpace, experiment: Path, resume: bool,
                verbose: int):
    """A new Tuner, or the one saved in ``experiment`` (whose files :func:`verify_manifest` checked)."""
    from ray import tune
    from ray.air import FailureConfig, RunConfig

    from recbole_session.tune.callbacks import ClosingTBXLoggerCallback

    trainable = _trainable(settings, _shared_dataset(config, space))
    if resume:
        return tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True,
                                  resume_errored=False, restart_errored=False)
    mode = "max" if config["valid_metric_bigger"] else "min"
    return tune.Tuner(
        trainable,
        param_space=space.to_ray(),
        tune_config=tune.TuneConfig(
            metric=SCORE, mode=mode, scheduler=_scheduler(settings, config),
            num_samples=settings.num_samples, max_concurrent_trials=settings.max_concurrent,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=RunConfig(
            name=EXPERIMENT, storage_path=str(experiment.parent), verbose=verbose,
            # every file written before the search signs its folder (see the callback)
            callbacks=[ClosingTBXLoggerCallback()],
            # a failing trial is recorded and the search goes on
            failure_config=FailureConfig(max_failures=0, fail_fast=False),
        ),
    )


def _sign(output: Path) -> None:
    """Write the resume manifest; a search whose folder cannot be signed still reports its
    results, and says that --resume will refuse the folder."""
    try:
        write_manifest(output)
    except (OSError, UsageError) as err:
        text = " ".join(str(err).split())
        print(f"cannot sign {output} for --resume ({text}): --resume will refuse it", file=sys.stderr)


def _check_address(address: str) -> None:
    """``auto``, ``host:port`` or ``ray://host:port``, and something listens there: found out
    before anything is read (ray.init prints dozens of lines and raises after retrying)."""
    if address == "auto":  # Ray reads the address of the cluster it started on this machine
        return
    host, sep, port = address.removeprefix(RAY_CLIENT_PREFIX).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= MAX_PORT:
        raise UsageError(f"--address {short(address)}: expected auto, host:port or {RAY_CLIENT_PREFIX}host:port")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=ADDRESS_PROBE_SECONDS):
            pass
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise UsageError(f"--address {address}: no Ray cluster answers there ({reason})") from None


def _parse_copy(output: Path, space_file: str) -> SearchSpace:
    """The space copy of a search being resumed (signed with the rest of the folder)."""
    try:
        return parse_space((output / SPACE_COPY).read_text(encoding="utf-8"), space_file)
    except (OSError, UnicodeDecodeError, SearchSpaceError) as err:
        raise UsageError(f"{output / SPACE_COPY}: {err}") from None


def _check_arguments(args: dict[str, Any]) -> None:
    """The types and ranges of :func:`tune_model`'s arguments, before anything is read: one
    line naming the argument, not a TypeError from deep inside Ray or RecBole."""
    def expect(name: str, ok: bool, expected: str) -> None:
        if not ok:
            raise UsageError(f"tune_model: {name} must be {expected}, got {short(args[name])}")

    def text_or_none(value: Any) -> bool:
        return value is None or isinstance(value, str)

    def path_or_none(value: Any) -> bool:
        return value is None or isinstance(value, (str, os.PathLike))

    expect("model", text_or_none(args["model"]), "a model name (str) or None")
    expect("dataset", text_or_none(args["dataset"]), "a dataset name (str) or None")
    expect("space", path_or_none(args["space"]), "a search-space file (str or Path) or None")
    expect("output", path_or_none(args["output"]), "a folder (str or Path) or None")
    expect("address", text_or_none(args["address"]), "a Ray address (str) or None")
    expect("scheduler", args["scheduler"] in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}")
    for name in ("resume", "keep_checkpoints"):
        expect(name, isinstance(args[name], bool), "True or False")
    for name, rule in RANGES.items():
        expect(name, rule.accepts(args[name]), rule.expected + (" or None" if rule.optional else ""))
    files = args["config_file_list"]
    # a str would be read as a list of one-letter file names
    expect("config_file_list", files is None or (isinstance(files, (list, tuple))
                                                 and all(isinstance(f, (str, os.PathLike)) for f in files)),
           "a list of config files or None")
    fixed = args["config_dict"]
    expect("config_dict", fixed is None or (isinstance(fixed, dict) and all(isinstance(k, str) for k in fixed)),
           "a dict of config keys (str) or None")


def _write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def load_settings(output: str | Path) -> SearchSettings:
    file = Path(output) / SETTINGS_FILE
    try:
        return SearchSettings(**json.loads(file.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UsageError(f"nothing to resume in {output}: no {SETTINGS_FILE} (start the search without --resume)") from None
    except (ValueError, TypeError) as err:
        raise UsageError(f"{file}: not a search settings file ({short(str(err))})") from None


def tune_model(
    model: str | None = None,
    dataset: str | None = None,
    space: str | Path | None = None,
    *,
    num_samples: int = 1,
    scheduler: str = "asha",
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    max_concurrent: int | None = None,
    grace_period: int = ASHA_GRACE_PERIOD,
    reduction_factor: int = ASHA_REDUCTION_FACTOR,
    address: str | None = None,
    num_cpus: int | None = None,
    resume: bool = False,
    output: str | Path | None = None,
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    keep_checkpoints: bool = False,
    verbose: int = 1,
) -> SearchResult:
    """Run (or with ``resume=True`` continue) a Ray Tune search of ``model`` on ``dataset``.

    ``space`` is a search-space yaml (default ``properties/tune/<model>.yaml``);
    ``config_dict`` holds RecBole keys fixed for every trial (``{"epochs": 10}``). Without
    ``address`` a local Ray instance is started (``num_cpus`` CPUs, default all) with its
    temporary files under ``output``, unless Ray is already initialised in this process.
    Each trial reserves ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs. With
    ``resume=True`` the settings are read back from ``output`` (the other arguments, if given,
    must match) and finished trials are not run again.

    Resuming trusts the per-user key file (:func:`recbole_session.tune.trust.key_file`) and so
    only a folder that this user's search wrote on this machine: every search signs its Ray
    state when it ends (:mod:`recbole_session.tune.trust`), and ``resume=True`` refuses a
    folder whose state is unsigned or changed before Ray unpickles any of it. Bad arguments
    raise :class:`~recbole_session.cli.UsageError` (one line) before anything is read.
    """
    _check_arguments(locals())
    from ray import tune

    if output is None:
        if resume:
            raise UsageError("resume needs the output folder of the search to continue")
        output = f"ray_results/{model}-{dataset}"
    if not str(output).strip():  # an unset shell variable: the search would fill the working directory
        raise UsageError("--out is empty: name the output folder")
    if address:
        _check_address(address)
    output = Path(output).expanduser().resolve()
    experiment = output / RAY_STATE / EXPERIMENT
    check_folder(output, "--out")
    if resume:
        if not (output / SETTINGS_FILE).is_file():
            raise UsageError(f"nothing to resume in {output}: no {SETTINGS_FILE} (start the search without --resume)")
        # before anything of the folder is read: Ray unpickles its files
        verify_manifest(output)
        settings = load_settings(output)
        for name, given in (("model", model), ("dataset", dataset)):
            if given is not None and given != getattr(settings, name):
                raise UsageError(f"{output} holds a search of {name} {short(getattr(settings, name))}, "
                                 f"not {short(given)}")
        if space is not None and _absolute(str(space)) != settings.space_file:
            raise UsageError(f"{output} was searched over {settings.space_file}; --resume cannot change the space")
        if not tune.Tuner.can_restore(str(experiment)):
            raise UsageError(f"nothing to resume in {output}: no Ray Tune experiment in {experiment}")
        space_obj = _parse_copy(output, settings.space_file)
    else:
        if model is None or dataset is None:
            raise UsageError("give a model and a dataset")
        if (output / SETTINGS_FILE).exists():
            raise UsageError(f"{output} already holds a search: continue it with --resume or choose another --out")
        space_file = Path(space) if space is not None else default_space_file(model)
        if space is None and not space_file.is_file():
            raise UsageError(f"no search space for {model}: give one with --space (none at {space_file})")
        try:
            space_obj = load_space(space_file)
        except SearchSpaceError as err:
            raise UsageError(str(err)) from None
        settings = _prepare_settings(SearchSettings(
            model, dataset, str(space_file), list(config_file_list or []), dict(config_dict or {}),
            num_samples, scheduler, cpus_per_trial, gpus_per_trial, max_concurrent, grace_period,
            reduction_factor, keep_checkpoints,
        ))
    config = _check_settings(settings, space_obj)
    if not resume and not settings.overrides.get("data_path"):
        # the default's or a config file's folder, relative to here: a trial runs in its own folder
        settings.overrides = {**settings.overrides, "data_path": _absolute(str(Path(config["data_path"]).parent))}
    import ray

    start_local = not address and not ray.is_initialized()
    if not address:  # a joined cluster may scale up; a local instance never does
        _check_local_resources(settings, num_cpus)
    # convert the dataset once, before any trial starts
    ensure_atomic_files(config)
    if resume:
        # the folder changes from here on: a search killed before it signs again cannot be resumed
        drop_manifest(output)
    else:
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"{output}: cannot create the output folder: {err.strerror} "
                             "(choose another --out)") from None
        write_atomic(output / SPACE_COPY, space_obj.text)
        _write_json(output / SETTINGS_FILE, asdict(settings))

    temp_dir, short_temp = ray_temp_dir(output) if start_local else (None, False)
    try:
        started = start_ray(address, num_cpus, None, temp_dir)
        if short_temp:
            print(f"Ray's temporary files are in {temp_dir}: {output}/ray_tmp is too deep for its socket paths",
                  file=sys.stderr)
        try:
            tuner = _make_tuner(settings, config, space_obj, experiment, resume, verbose)
            with quiet_analysis():
                tuner.fit()
        finally:
            if started:
                ray.shutdown()
    finally:
        # after Ray's last write of the search (Tuner.fit has returned and this process's Ray
        # is shut down), whatever ended the search: what --resume will accept
        _sign(output)
    return write_outputs(output, settings, space_obj, config)
