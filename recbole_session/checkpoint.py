"""Checkpoints as data: nothing in a checkpoint file can run code when it is loaded.

RecBole's ``Trainer`` pickles its ``Config`` object into every checkpoint. Loading such a file
needs the ``Config`` class on torch's weights-only allow-list, and a pickle may call an
allow-listed class with any arguments: RecBole's ``Config`` ``eval()``s the strings of its
``config_dict``, so a crafted file ran code. Here instead:

- :func:`literal_state` turns the ``Config`` of a checkpoint into a dict of literals (the final
  config, its enums as ``{"__enum__": "ModelType", "name": "SEQUENTIAL"}``, the device as a
  string) and numpy scalars into floats; :func:`save_checkpoints_as_data` makes RecBole's
  trainer save through it (and read through :func:`load`) as soon as RecBole's trainer module
  loads (:mod:`recbole_session.hooks`);
- :func:`load` reads a file with torch's weights-only unpickler and **no** extra allow-list:
  tensors, numbers, strings, lists, tuples and dicts only. Anything else (a pickled ``Config``
  of an old checkpoint, a crafted ``os.system`` reduce) is refused with one line naming the
  file, before any of it runs;
- :meth:`recbole_session.config.Config.from_literals` rebuilds the Config from that dict
  without evaluating anything.
"""

from __future__ import annotations

import enum
import logging
import os
import pickle
import pickletools
import re
import shutil
import types
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from recbole.utils import enum_type

from recbole_session.cli import UsageError
from recbole_session.files import FULL_DISK_ERRNOS, atomic_path

ENUM_TAG = "__enum__"
# the key of a checkpoint's config dict that holds what is not a config value
STATE_KEY = "__recbole_session__"
FORMAT = 1
REQUIRED = ("config", "state_dict")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line that names the file."""


def _enum_classes() -> dict[str, type[enum.Enum]]:
    return {name: obj for name, obj in vars(enum_type).items()
            if isinstance(obj, type) and issubclass(obj, enum.Enum) and obj.__module__ == enum_type.__name__}


def to_literal(value: Any, where: str = "config") -> Any:
    """``value`` as literals only (dict, list, tuple, str, int, float, bool, None)."""
    if isinstance(value, enum.Enum):  # first: an IntEnum is an int too
        return {ENUM_TAG: type(value).__name__, "name": value.name}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_literal(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [to_literal(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    # a value no config key of RecBole's or ours holds: keep its text rather than lose the run
    logging.getLogger(__name__).warning(f"checkpoint: {where} of type {type(value).__name__} saved as its text")
    return str(value)


def from_literal(value: Any) -> Any:
    """The inverse of :func:`to_literal` for enums (by name, from RecBole's enum module only)."""
    if isinstance(value, dict):
        if set(value) == {ENUM_TAG, "name"}:
            cls = _enum_classes().get(value[ENUM_TAG])
            if cls is None or value["name"] not in cls.__members__:
                raise ValueError(f"unknown enum {value[ENUM_TAG]}.{value['name']}")
            return cls[value["name"]]
        return {k: from_literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_literal(v) for v in value]
    if isinstance(value, tuple):
        return tuple(from_literal(v) for v in value)
    return value


def is_config(value: Any) -> bool:
    """A RecBole ``Config`` (ours or RecBole's), recognised without importing RecBole's
    configurator (this module is imported while RecBole loads)."""
    return isinstance(getattr(value, "final_config_dict", None), dict) and hasattr(value, "parameters")


def config_literals(config: Any) -> dict[str, Any]:
    """A Config as a dict: every final config value (``d["model"]``, ``d["learning_rate"]``
    read as before), plus the parameter categories under :data:`STATE_KEY`."""
    literals = to_literal(dict(config.final_config_dict))
    literals[STATE_KEY] = {
        "format": FORMAT,
        "model": config.model,
        "dataset": config.dataset,
        "parameters": to_literal(dict(getattr(config, "parameters", {}) or {})),
    }
    return literals


def literal_state(state: Any) -> Any:
    """A checkpoint dict about to be saved, with its Config as literals and numpy scalars (the
    best valid score) as Python numbers; anything else is passed through unchanged."""
    if not isinstance(state, dict):
        return state
    out = dict(state)
    for key, value in state.items():
        if is_config(value):
            out[key] = config_literals(value)
        elif isinstance(value, np.generic):
            out[key] = value.item()
    return out


def _refused_global(message: str) -> str | None:
    match = re.search(r"GLOBAL ([\w.]+)", message)
    return match.group(1) if match else None


# pickle opcodes that import or call something: a file holding one is refused as code, not as garbage
_OBJECT_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"})


def _holds_objects(path: Path) -> bool:
    """Whether a plain pickle (a legacy, non-zip file) imports or calls anything, read with
    ``pickletools.genops``, which decodes opcodes and never executes them."""
    try:
        with open(path, "rb") as handle:
            return any(op.name in _OBJECT_OPCODES for op, _, _ in pickletools.genops(handle))
    except Exception:  # not a pickle at all (text, garbage): nothing to refuse as code
        return False


def load(path: str | Path, map_location: Any = None) -> dict[str, Any]:
    """A checkpoint's dict, read with torch's weights-only unpickler and no extra allow-list;
    :class:`CheckpointError` (one line naming the file) for anything that is not a checkpoint
    of literals and tensors."""
    if not isinstance(path, (str, os.PathLike)):
        raise CheckpointError(f"expected the path of a checkpoint file, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file" if not path.exists()
                              else f"{path}: not a file (a checkpoint is a .pth file saved by a run)")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of old files before refusing them
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        name = _refused_global(str(err))
        if name is None and not _holds_objects(path):
            # an opcode the weights-only reader does not know, and no object in it: not a torch file
            raise CheckpointError(f"{path}: not a readable checkpoint (not a torch file): expected a "
                                  ".pth file saved by a run") from None
        what = f"a Python object ({name})" if name else "Python objects"
        raise CheckpointError(
            f"{path}: refused: the file holds {what} that only a full unpickler could load, and "
            "loading it could run code (checkpoints of recbole-session hold tensors and plain values "
            "only; an older checkpoint must be saved again by a current run)"
        ) from None
    except (EOFError, RuntimeError, KeyError, ValueError, OSError, zipfile.BadZipFile, pickle.PickleError) as err:
        detail = "empty file" if path.stat().st_size == 0 else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({detail}): expected a .pth file "
                              "saved by a run (truncated, corrupt or not a torch file)") from None
    if not isinstance(state, dict) or not all(key in state for key in REQUIRED):
        missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
        raise CheckpointError(f"{path}: field '{missing[0]}' missing: not a RecBole checkpoint")
    config = state["config"]
    if not isinstance(config, dict) or not isinstance(config.get("model"), str) \
            or not isinstance(config.get("dataset"), str):
        raise CheckpointError(f"{path}: field 'config' holds no model and dataset names: not a RecBole checkpoint")
    return state


class _TorchForRecBoleTrainer(types.ModuleType):
    """``torch`` as seen by ``recbole.trainer.trainer``, except for ``save``."""

    def __getattr__(self, name: str):
        return getattr(torch, name)

    @staticmethod
    def save(obj, f, *args, pickle_protocol=None, **kwargs):
        """Three fixes to RecBole's ``Trainer._save_checkpoint``:

        - it pickles its ``Config``: a checkpoint loaded by torch's weights-only unpickler then
          needs the Config class on the allow-list, and a pickle may call an allow-listed class
          with any arguments (RecBole's Config eval()s its strings: a crafted file ran code).
          The Config is saved as literals instead (:func:`recbole_session.checkpoint.literal_state`),
          so loading needs no allow-list at all;
        - it saves with ``pickle_protocol=4``, whose FRAME opcode the weights-only unpickler
          rejects ("Unsupported operand 149"): torch's default protocol is used;
        - it writes the file in place, so Ctrl+C during a save left half a checkpoint: the file is
          written to a temporary name and renamed."""
        state = literal_state(obj)
        if isinstance(f, (str, bytes)) or hasattr(f, "__fspath__"):
            with atomic_path(f) as tmp:
                try:
                    torch.save(state, tmp, *args, **kwargs)
                except (OSError, RuntimeError) as err:
                    if _disk_full(err, tmp.parent):  # checked before the partial file is removed
                        raise UsageError(f"{tmp.parent}: no space left on the device while saving the checkpoint "
                                         f"{Path(os.fsdecode(f)).name} (free some space or set --checkpoint_dir "
                                         "to another folder)") from None
                    raise
        else:
            torch.save(state, f, *args, **kwargs)

    @staticmethod
    def load(f, map_location=None, **kwargs):
        """``Trainer.resume_checkpoint`` and ``Trainer.evaluate(load_best_model=True)`` read
        checkpoints with torch's default ``torch.load``; read them with
        :func:`recbole_session.checkpoint.load` instead, whose refusal of a file that is not plain
        data (an older checkpoint, a crafted one) is one line naming the file."""
        return load(f, map_location=map_location)


# torch's zip writer reports a failed write as a RuntimeError without errno: a disk with less
# than this free is taken to be why
_FULL_DISK_FREE_BYTES = 1 << 20


def _disk_full(err: BaseException, folder: Path) -> bool:
    if isinstance(err, OSError) and err.errno in FULL_DISK_ERRNOS:
        return True
    try:
        return shutil.disk_usage(folder).free < _FULL_DISK_FREE_BYTES
    except OSError:
        return False


def save_checkpoints_as_data(trainer_module: types.ModuleType) -> None:
    """Make ``recbole.trainer.trainer`` save checkpoints through :class:`_TorchForRecBoleTrainer`."""
    if not isinstance(trainer_module.torch, _TorchForRecBoleTrainer):
        trainer_module.torch = _TorchForRecBoleTrainer("torch")
