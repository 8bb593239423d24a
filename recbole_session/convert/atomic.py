"""Writing RecBole atomic files with no partial output.

A conversion writes every file of a dataset into a hidden staging folder beside the target
(``<out>/.<name>.<random>/``) and moves them into ``<out>/<name>/`` only when all are written:
a failed or interrupted conversion leaves nothing behind (the staging folder is removed).
Tables are written by pyarrow's CSV writer (fast, no quoting: a value holding a tab or a
newline is an error rather than a broken file).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml

# RecBole atomic header types per column of a session-aware `.inter` file
SESSION_AWARE_FIELDS = {
    "user": "user_id:token",
    "item": "item_id:token",
    "time": "timestamp:float",
    "session": "session_id:token",
    "dwell": "dwell:float",
}
# the session-based benchmark file contract (COMMON.md)
SESSION_BASED_FIELDS = {
    "session": "session_id:token",
    "prefix": "item_id_list:token_seq",
    "item": "item_id:token",
}


class Staging:
    """A staging folder for the files of ``target``; :meth:`commit` moves them into place."""

    def __init__(self, target: Path):
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.dir, 0o777 & ~umask)  # mkdtemp makes it private; the dataset folder is not

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name: str) -> Path:
        return self.dir / name

    def commit(self, stale: list[str] = ()) -> Path:
        """Move the staged files into ``target`` (created if missing) and remove the files named
        in ``stale`` that this conversion did not write (e.g. a former output name)."""
        if not self.target.exists():
            os.replace(self.dir, self.target)
            self.dir.mkdir()  # so that __exit__ has something to remove
            return self.target
        written = set()
        for file in sorted(self.dir.iterdir()):
            os.replace(file, self.target / file.name)
            written.add(file.name)
        for name in stale:
            if name not in written:
                (self.target / name).unlink(missing_ok=True)
        return self.target


def write_table(df: pd.DataFrame, path: Path, fields: dict[str, str]) -> None:
    """``df`` (columns named as the keys of ``fields``) as a tab-separated atomic file whose
    header holds the values of ``fields``."""
    table = pa.Table.from_pandas(df[list(fields)], preserve_index=False)
    with open(path, "wb") as fh:
        fh.write(("\t".join(fields.values()) + "\n").encode())
        pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, delimiter="\t",
                                                      quoting_style="none"))


def write_inter(df: pd.DataFrame, path: Path, fields: dict[str, str] = SESSION_AWARE_FIELDS) -> None:
    write_table(df, path, fields)


def write_json(obj: dict, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_yaml(obj: dict, path: Path, comment: str = "") -> None:
    text = "".join(f"# {line}\n" for line in comment.splitlines())
    path.write_text(text + yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
