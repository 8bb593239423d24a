"""Writing RecBole atomic files safely: to a temporary name in the target folder, then an
atomic rename, so that an interrupted or failed conversion never leaves a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

# RecBole atomic header types per column of a session-aware `.inter` file
SESSION_AWARE_FIELDS = {
    "user": "user_id:token",
    "item": "item_id:token",
    "time": "timestamp:float",
    "session": "session_id:token",
    "dwell": "dwell:float",
}


def _replace_atomically(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_inter(df: pd.DataFrame, path: Path, fields: dict[str, str] = SESSION_AWARE_FIELDS) -> None:
    """Write ``df`` (columns named as the keys of ``fields``) as a tab-separated atomic file."""
    out = df[list(fields)].rename(columns=fields)

    def write(fh):
        out.to_csv(fh, sep="\t", index=False, lineterminator="\n")

    _replace_atomically(path, write)


def write_json(obj: dict, path: Path) -> None:
    def write(fh):
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")

    _replace_atomically(path, write)
