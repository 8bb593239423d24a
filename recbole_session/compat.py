"""Compatibility shims for RecBole 1.2.1 on the torch / numpy / ray that this package installs.

Every shim here names the breakage it fixes (see SPEC.md section 6). They are applied once, by
``import recbole_session``; nothing else in the package patches RecBole. The remaining
breakages of SPEC.md section 6 are fixed by the version pins in ``setup.cfg`` (numpy<2,
pandas<3, setuptools<81, pyarrow<26) or by owning the code path (the Ray trainable in
``recbole_session.tune``).
"""

from __future__ import annotations

import enum
import inspect
import types

import torch

_APPLIED = False


def switch_off_anomaly_detection() -> None:
    """RecBole's SINE model (``recbole/model/sequential_recommender/sine.py``) calls
    ``torch.autograd.set_detect_anomaly(True)`` at import time, i.e. whenever
    ``recbole.model.sequential_recommender`` is imported, which made training 1.6x (BERT4Rec)
    to 2x (GRU4Rec) slower. Import it once here, then switch the detection back off; the
    module is cached, so later imports do not switch it on again."""
    import recbole.model.sequential_recommender  # noqa: F401

    torch.autograd.set_detect_anomaly(False)


def recbole_checkpoint_globals() -> list:
    """The classes a RecBole checkpoint pickles besides tensors: the ``Config`` (ours or
    RecBole's), the yaml loader class it keeps, RecBole's enums, and the numpy scalar that
    holds ``best_valid_score``."""
    import numpy as np
    import yaml
    from recbole.config import Config as RecBoleConfig
    from recbole.utils import enum_type

    from recbole_session.config import Config

    enums = [
        obj
        for _, obj in inspect.getmembers(enum_type, inspect.isclass)
        if issubclass(obj, enum.Enum) and obj.__module__ == enum_type.__name__
    ]
    numpy_scalar = [np.core.multiarray.scalar, np.dtype, *{type(np.dtype(t)) for t in (np.float32, np.float64)}]
    return [Config, RecBoleConfig, yaml.FullLoader, *enums, *numpy_scalar]


def allow_recbole_checkpoints() -> None:
    """torch >= 2.6 defaults ``torch.load(weights_only=True)``; RecBole 1.2.1 checkpoints pickle
    the ``Config``, so ``Trainer.evaluate(load_best_model=True)``, ``resume_checkpoint`` and
    ``load_data_and_model`` fail. Allow exactly the classes RecBole stores, instead of turning
    ``weights_only`` off for every file."""
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is None:  # torch < 2.4 loads full pickles by default: nothing to do
        return
    add_safe_globals(recbole_checkpoint_globals())


def restore_numpy_aliases() -> None:
    """RecBole's metrics (``recbole/evaluator/metrics.py``) use ``np.float``, removed in numpy
    1.24. RecBole re-creates the aliases in ``Config.__init__`` (``compatibility_settings``), but
    a Config unpickled from a checkpoint (``load_data_and_model``) never runs it, so evaluating a
    reloaded model failed. Create the same aliases once, at import."""
    from recbole.config import Config as RecBoleConfig

    RecBoleConfig.compatibility_settings(None)


class _TorchSavingProtocol2(types.ModuleType):
    """``torch`` as seen by ``recbole.trainer.trainer``, except that ``save`` ignores
    ``pickle_protocol`` (torch's default protocol 2 is used)."""

    def __getattr__(self, name: str):
        return getattr(torch, name)

    @staticmethod
    def save(obj, f, *args, pickle_protocol=None, **kwargs):
        torch.save(obj, f, *args, **kwargs)


def save_checkpoints_loadable() -> None:
    """RecBole's ``Trainer._save_checkpoint`` saves with ``pickle_protocol=4``, whose FRAME
    opcode torch's weights-only unpickler rejects ("Unsupported operand 149"), so no allow-list
    could load those files. Make the trainer module save with torch's default protocol."""
    import recbole.trainer.trainer as trainer_module

    if not isinstance(trainer_module.torch, _TorchSavingProtocol2):
        trainer_module.torch = _TorchSavingProtocol2("torch")


def apply() -> None:
    """Apply every shim once."""
    global _APPLIED
    if _APPLIED:
        return
    restore_numpy_aliases()
    switch_off_anomaly_detection()
    save_checkpoints_loadable()
    allow_recbole_checkpoints()
    _APPLIED = True
