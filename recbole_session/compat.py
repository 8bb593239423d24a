"""Compatibility shims for RecBole 1.2.1 on the torch / numpy / ray that this package installs.

Every shim here names the breakage it fixes. None runs at ``import recbole_session``: each runs
right after RecBole loads the module it concerns (:mod:`recbole_session.hooks` arranges that),
or at once when that module is already loaded. Besides these, only
:func:`recbole_session.checkpoint.save_checkpoints_as_data` patches RecBole (its trainer saves and
reads the package's checkpoint format). Nothing here imports RecBole or a module that does: the
hooks run while RecBole is being imported, so this module must load before RecBole can.
The other breakages of RecBole 1.2.1 on today's stack are fixed by the version pins in
``setup.cfg`` (numpy<2, pandas<3, setuptools<81, pyarrow<26) or by owning the code path (the
Ray trainable in ``recbole_session.tune``, the dataset lookup in ``recbole_session.lookup``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import types
import warnings

import torch


def silence_known_warnings() -> None:
    """Warnings that every run printed and that are known to be harmless with the pinned stack;
    each filter names its warning by category, message and the module that triggers it."""
    # pandas 2.x: RecBole's `_fill_nan` calls `fillna(..., inplace=True)` on a column (chained
    # assignment). It still works with pandas<3 (the pin), which is what the warning is about.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.data\.dataset\.dataset",
                            message=r"A value is trying to be set on a copy of a DataFrame or Series through chained assignment")
    # pandas 2.x: the same `_fill_nan` downcasts object columns in `fillna`; RecBole's columns are
    # numeric or token columns, so nothing is downcast.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.data\.dataset\.dataset",
                            message=r"Downcasting object dtype arrays on \.fillna")
    # torch >= 2.4: RecBole's Trainer builds `torch.cuda.amp.GradScaler(...)`, deprecated for
    # `torch.amp.GradScaler("cuda", ...)`; it still works (and is disabled on CPU).
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.trainer\.trainer",
                            message=r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated")
    # ray 2.6.3 imports pkg_resources, deprecated in setuptools >= 67.5; the pin setuptools<81
    # keeps it importable.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"ray\._private\.pydantic_compat|ray\..*",
                            message=r"pkg_resources is deprecated as an API")


def restore_numpy_aliases(config_module: types.ModuleType) -> None:
    """RecBole's metrics (``recbole/evaluator/metrics.py``) use ``np.float``, removed in numpy
    1.24. RecBole re-creates the aliases in ``Config.__init__`` (``compatibility_settings``), but
    a Config rebuilt from a checkpoint never runs it, so evaluating a reloaded model failed.
    Create the same aliases once, when RecBole's configurator loads."""
    config_module.Config.compatibility_settings(None)


def switch_off_anomaly_detection() -> None:
    """RecBole's SINE model (``recbole/model/sequential_recommender/sine.py``) calls
    ``torch.autograd.set_detect_anomaly(True)`` at import time, i.e. whenever
    ``recbole.model.sequential_recommender`` is imported, which made training 1.6x (BERT4Rec)
    to 2x (GRU4Rec) slower. Runs right after that package has loaded; the module is cached, so
    later imports do not switch it on again."""
    torch.autograd.set_detect_anomaly(False)


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library, another platform)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def trim_heap() -> bool:
    """Give the C heap's free pages back to the operating system; False where there is no glibc.

    glibc's malloc raises its mmap threshold to the size of a block it frees (up to 32 MB) and
    then serves blocks of that size from its heap, which it keeps: a training step whose tensor
    sizes change from batch to batch (SessionBERT4Rec's number of cloze-masked positions) made the
    heap grow epoch after epoch (the main command on ml-100k from 0.8 to 1.6 GB; a run on the
    ML-1M part at L 200 past 8 GB). ``malloc_trim(0)`` after every epoch returns the free pages
    for about 3 % more wall time, the kernel's time to map them again (20 epochs of the main
    command: 27.7 s against 26.5 s, peak 0.83 GB against 1.16 GB); fixing the threshold instead
    cost 1.5 times the CPU time."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
