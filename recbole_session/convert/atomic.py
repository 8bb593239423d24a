"""Writing RecBole atomic files with no partial output.

A conversion writes every file of a dataset into a hidden staging folder beside the target
(``<out>/.<name>.<pid>.<random>.staging/``) and moves them into ``<out>/<name>/`` only when all
are written: a failed or interrupted conversion (an error, Ctrl+C, SIGTERM) removes its staging
folder; one killed outright (SIGKILL, power loss) leaves it, and the next conversion of the same
dataset removes staging folders whose process is gone. Tables are written by pyarrow's CSV
writer, in slices formatted on several threads (fast, no quoting: the readers refuse a value
holding a tab or a line break, so no value needs quoting).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import sys
import tempfile
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from recbole_session.convert.errors import ConvertError
from recbole_session.convert.readers import Coded
from recbole_session.files import FULL_DISK_ERRNOS, os_reason

# RecBole atomic header types per column of a session-aware `.inter` file
SESSION_AWARE_FIELDS = {
    "user": "user_id:token",
    "item": "item_id:token",
    "time": "timestamp:float",
    "session": "session_id:token",
    "dwell": "dwell:float",
}
# the session-based benchmark files: one row per prefix example
SESSION_BASED_FIELDS = {
    "session": "session_id:token",
    "prefix": "item_id_list:token_seq",
    "item": "item_id:token",
}
SLICE_ROWS = 1 << 18  # rows formatted per thread task
STAGING_SUFFIX = ".staging"
WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")


def write_error(path: Path, err: OSError) -> ConvertError:
    """One line for an OSError while writing ``path`` (disk full, no permission, ...)."""
    hint = ""
    if err.errno in FULL_DISK_ERRNOS:
        hint = " (free some space or write elsewhere with --out)"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = " (choose a writable folder with --out)"
    return ConvertError(f"{path}: cannot write: {os_reason(err)}{hint}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


class Staging:
    """A staging folder for the files of ``target``; :meth:`commit` moves them into place."""

    def __init__(self, target: Path):
        self.target = Path(target)
        self.dir: Path | None = None
        self.made: list[Path] = []  # the output root's folders this conversion created

    def __enter__(self) -> Staging:
        """Create the staging folder (first removing stale ones of this dataset)."""
        parent = self.target.parent
        try:
            if parent.exists() and not parent.is_dir():
                raise ConvertError(f"{parent}: is a file, not a folder (choose another --out)")
            if self.target.exists() and not self.target.is_dir():
                raise ConvertError(f"{self.target}: is a file, not a folder (move it away or use --name)")
            self.made = [p for p in (parent, *parent.parents) if not p.exists()]
            parent.mkdir(parents=True, exist_ok=True)
            remove_stale(parent, self.target.name)
            self.dir = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.{os.getpid()}.", suffix=STAGING_SUFFIX,
                                             dir=parent))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.dir, 0o777 & ~umask)  # mkdtemp makes it private; the dataset folder is not
        except (NotADirectoryError, FileExistsError) as err:
            self.__exit__(*sys.exc_info())
            raise ConvertError(f"{err.filename or parent}: a file is in the way of the output folder "
                               f"(choose another --out)") from None
        except OSError as err:
            self.__exit__(*sys.exc_info())
            raise write_error(parent, err) from None
        except BaseException:  # Ctrl+C or SIGTERM right after the folder was made
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif exc and exc[0] is not None:
            # a signal between mkdtemp making the folder and self.dir naming it: this process's
            # staging folders of this dataset (the name carries the pid)
            for left in self.target.parent.glob(f".{glob.escape(self.target.name)}.{os.getpid()}.*{STAGING_SUFFIX}"):
                shutil.rmtree(left, ignore_errors=True)
        if exc and exc[0] is not None:  # failed: also the empty folders it made for the output
            for folder in self.made:
                with contextlib.suppress(OSError):
                    folder.rmdir()

    def path(self, name: str) -> Path:
        assert self.dir is not None, "use Staging as a context manager"
        return self.dir / name

    def commit(self, stale: Iterable[str] = (), last: str | None = None) -> Path:
        """Move the staged files into ``target`` (created if missing), the file named ``last``
        after the others and after removing the files named in ``stale`` that this conversion
        did not write (former outputs that the caller found to be the converter's own)."""
        assert self.dir is not None, "use Staging as a context manager"
        if not self.target.exists():
            os.replace(self.dir, self.target)
            self.dir.mkdir()  # so that __exit__ has something to remove
            return self.target
        files = sorted(self.dir.iterdir())
        written = {file.name for file in files}
        for file in files:
            if file.name != last:
                os.replace(file, self.target / file.name)
        for name in stale:
            if name not in written:
                (self.target / name).unlink(missing_ok=True)
        # the manifest goes last: a run killed before leaves new files that the old manifest does
        # not vouch for, so the next run refuses to replace them rather than taking them for its own
        if last in written:
            os.replace(self.dir / last, self.target / last)
        return self.target


def remove_stale(parent: Path, name: str) -> list[Path]:
    """Remove the staging folders of dataset ``name`` in ``parent`` left by a process that no
    longer runs (killed while writing); returns them."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[^.]+{re.escape(STAGING_SUFFIX)}$")
    removed = []
    for path in parent.glob(f".{name}.*{STAGING_SUFFIX}"):
        match = pattern.match(path.name)
        if match and path.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _arrow(values: Any) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if isinstance(values, Coded):
        return values.decode()
    return pa.array(np.asarray(values))


def write_table(columns: dict[str, Any], path: Path) -> None:
    """``columns`` (atomic header field -> numpy or arrow array) as a tab-separated atomic file,
    formatted in slices on up to ``os.cpu_count()`` threads and written in order."""
    write_pieces(list(columns), [columns], path)


def write_pieces(header: list[str], pieces: Iterable[dict[str, Any]], path: Path) -> None:
    """One atomic file of the rows of ``pieces`` in order (each: header field -> numpy or arrow
    array or :class:`Coded`, made one at a time: only a few slices are in memory at once), as
    :func:`write_table` writes it: a row's text does not depend on how the rows are cut."""
    workers = max(1, min(os.cpu_count() or 1, 8))

    def formatted(table: pa.Table, start: int) -> pa.Buffer:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table.slice(start, SLICE_ROWS), sink, WRITE_OPTIONS)
        return sink.getvalue()

    with open(path, "wb") as fh, ThreadPoolExecutor(workers) as pool:
        fh.write(("\t".join(header) + "\n").encode())
        pending: deque = deque()
        for columns in pieces:
            table = pa.table({name: _arrow(values) for name, values in columns.items()})
            if table.num_rows <= SLICE_ROWS or workers == 1:
                while pending:  # in order: what was formatted before this piece first
                    fh.write(pending.popleft().result())
                pacsv.write_csv(table, fh, WRITE_OPTIONS)
                continue
            for start in range(0, table.num_rows, SLICE_ROWS):
                pending.append(pool.submit(formatted, table, start))
                if len(pending) >= 2 * workers:  # bounded: a few slices in memory at a time
                    fh.write(pending.popleft().result())
        while pending:
            fh.write(pending.popleft().result())


def write_text(text: str, path: Path) -> None:
    path.write_text(text, encoding="utf-8")
