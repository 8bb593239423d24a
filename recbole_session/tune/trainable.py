"""The Ray Tune trainable: one trial = one RecBole training run with the trial's
hyper-parameters.

RecBole's own ``recbole.quick_start.objective_function`` does not work on Ray 2.6 (it returns
a dict after ``tune.report``, which Ray 2.6 rejects), so the trial builds Config, dataloaders,
model and RecBole Trainer itself, through :func:`recbole_session.build.build` (so RecBole's
models and ours are tuned alike, and built exactly as the command line builds them), and
reports the valid score after every evaluation from ``Trainer.fit(callback_fn=...)``, which
lets ASHA stop bad trials early. The last report of a trial that trains to the end also holds
the best valid result, the test result of the best model and the parameter count.

A Ray worker that unpickles the trainable imports this module, and so ``recbole_session``
(whose import hooks apply the compatibility shims and the registration) before RecBole.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from recbole_session.build import build, count_parameters, make_config

# the metric every report carries, whatever RecBole's valid_metric is
SCORE = "valid_score"
# the key that marks the last report of a trial that trained to the end
FINISHED = "finished"
# RecBole's detailed log of a trial, in the trial's folder
TRIAL_LOG = "recbole.log"


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of one search shares (sent to the workers through Ray's object store)."""

    model: str
    dataset: str
    config_files: tuple[str, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)
    keep_checkpoints: bool = False


def trial_cpus() -> int:
    """The CPUs Ray reserved for this trial. Ray sets OMP_NUM_THREADS for the trial, but a torch
    imported earlier in the worker keeps its own thread count (trials ran 3x slower)."""
    from ray.air import session

    try:
        cpus = session.get_trial_resources().required_resources.get("CPU", 0)
    except Exception:  # outside a Tune session: fall back to what Ray put in the environment
        cpus = 0
    return max(1, int(cpus or os.environ.get("OMP_NUM_THREADS", 1)))


def trial_gpu_ids() -> str:
    """The GPUs Ray assigned to this trial, as RecBole's ``gpu_id`` (empty: run on CPU).
    RecBole's Config writes ``gpu_id`` into CUDA_VISIBLE_DEVICES, so it must name exactly the
    devices Ray gave this trial, or parallel trials would share GPU 0."""
    import ray

    return ",".join(str(i) for i in ray.get_gpu_ids())


def _log_to_trial_folder(trial_dir: Path, level: str) -> None:
    """RecBole logs to the root logger; send a trial's log to its own folder only (the driver
    shows Tune's progress table). Ray reuses worker processes across trials, so replace the
    previous trial's handler instead of stacking handlers."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_recbole_session_trial", False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.FileHandler(trial_dir / TRIAL_LOG)
    handler._recbole_session_trial = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))


def _as_float_dict(result: dict | None) -> dict[str, float]:
    return {key: float(value) for key, value in (result or {}).items()}


def run_trial(params: dict[str, Any], setup: TrialSetup, dataset_blob: bytes | None = None) -> None:
    """Train one configuration and report to Tune after every evaluation.

    ``dataset_blob`` is the pickled RecBole dataset built once by the driver (shared by every
    trial through the object store); ``None`` when the search varies a key that changes the
    dataset, in which case each trial builds its own from the atomic files.
    """
    from ray.air import session

    trial_dir = Path(session.get_trial_dir())
    torch.set_num_threads(trial_cpus())
    overrides = {
        **setup.fixed,
        **params,
        # one checkpoint folder per trial: RecBole names checkpoints by model and second only
        "checkpoint_dir": str(trial_dir / "saved"),
        "gpu_id": trial_gpu_ids(),
        "show_progress": False,
    }
    config = make_config(setup.model, setup.dataset, list(setup.config_files) or None, overrides, check=False)
    _log_to_trial_folder(trial_dir, config["state"])
    logging.getLogger().info(config)

    built = build(config, pickle.loads(dataset_blob) if dataset_blob is not None else None)
    model, trainer = built.model, built.trainer
    train_data, valid_data, test_data = built.train_data, built.valid_data, built.test_data
    eval_step = int(config["eval_step"])
    started = time.time()
    reported_final = False

    def final_result() -> dict[str, Any]:
        test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
        if not setup.keep_checkpoints:
            # the winner is retrained from best.yaml: do not keep one model file per trial
            shutil.rmtree(trial_dir / "saved", ignore_errors=True)
        return {
            FINISHED: True,
            "best_valid_score": float(trainer.best_valid_score),
            "valid": _as_float_dict(trainer.best_valid_result),
            "test": _as_float_dict(test_result),
            "n_params": count_parameters(model),
            "train_seconds": time.time() - started,
        }

    def on_evaluation(epoch_idx: int, valid_score: float) -> None:
        nonlocal reported_final
        # RecBole's fit stops after this evaluation when no evaluation is left or its early
        # stopping fires (cur_step > stopping_step); then this report is the trial's last, and
        # it must carry the test result: a scheduler may end the trial right after it.
        last = epoch_idx + 1 + eval_step > trainer.epochs or trainer.cur_step > trainer.stopping_step
        result: dict[str, Any] = {
            "epoch": epoch_idx + 1,
            SCORE: float(valid_score),
            "best_valid_score": float(trainer.best_valid_score),
            "threads": torch.get_num_threads(),
            FINISHED: False,
        }
        if last:
            result.update(final_result())
            reported_final = True
        session.report(result)

    trainer.fit(train_data, valid_data, saved=True, show_progress=False, callback_fn=on_evaluation)
    if not reported_final:  # a trainer that evaluated less often than its epochs suggest
        session.report({"epoch": trainer.epochs, SCORE: float(trainer.best_valid_score),
                        "threads": torch.get_num_threads(), **final_result()})
