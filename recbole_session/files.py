"""Writing files so that a reader never sees half of one: write to a temporary name in the same
folder, then rename (atomic on POSIX). The one implementation for the whole package."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

# the mode open(path, "w") asks for; the umask then takes its bits away
NEW_FILE_MODE = 0o666
# the permission bits a replaced file passes on (not setuid, setgid or sticky)
PERMISSION_BITS = 0o777
# where Linux (4.7+) shows a process's umask without changing it
PROC_STATUS = "/proc/self/status"


def current_umask() -> int:
    """The process's umask. Read from /proc where it is shown: setting it to read it back (the
    only portable way) changes it for a moment for every thread of the process."""
    with contextlib.suppress(OSError, ValueError):
        with open(PROC_STATUS, encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def output_mode(path: str | Path) -> int:
    """The mode ``path`` gets when written: an existing file's own permission bits (replacing a
    file keeps its mode), else what ``open(path, "w")`` would give (0666 minus the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & PERMISSION_BITS
    except OSError:
        return NEW_FILE_MODE & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``, on any
    exception (Ctrl+C included) it is removed and ``path`` is left as it was. The file gets the
    mode a plain ``open(path, "w")`` would give (see :func:`output_mode`): mkstemp makes it 0600,
    which would hide checkpoints and results from the group and others whatever the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, output_mode(path))  # after writing: a writer may have replaced the file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")


def update_section(path: str | Path, name: str, body: str, title: str = "") -> None:
    """Replace the block between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` in the
    Markdown file ``path`` (appended when missing; the file is created with ``title``), so that
    several benchmark scripts can each own one section of ``docs/benchmarks.md``."""
    path = Path(path)
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.is_file() else (f"{title.strip()}\n\n" if title else "")
    start, stop = text.find(begin), text.find(end)
    if start != -1 and stop > start:
        text = text[:start] + block + text[stop + len(end):]
    else:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + block + "\n"
    write_atomic(path, text)
