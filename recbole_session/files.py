"""Writing files so that a reader never sees half of one: write to a temporary name in the same
folder, then rename (atomic on POSIX). The one implementation for the whole package."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from recbole_session.cli import UsageError

# the mode open(path, "w") asks for; the umask then takes its bits away
NEW_FILE_MODE = 0o666
# the permission bits a replaced file passes on (not setuid, setgid or sticky)
PERMISSION_BITS = 0o777
# what atomic_path's temporary name adds to the output's name: ".", ".XXXXXXXX.tmp"
TEMP_NAME_EXTRA = len(".") + len(".XXXXXXXX.tmp")
# where Linux (4.7+) shows a process's umask without changing it
PROC_STATUS = "/proc/self/status"
# the umask set for the instant the fallback reads it: a file another thread makes meanwhile is
# private rather than open to all
PRIVATE_UMASK = 0o077


def current_umask() -> int:
    """The process's umask. Read from /proc where it is shown: setting it to read it back (the
    only portable way) changes it for a moment for every thread of the process."""
    with contextlib.suppress(OSError, ValueError):
        with open(PROC_STATUS, encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(PRIVATE_UMASK)
    os.umask(mask)
    return mask


def output_mode(path: str | Path) -> int:
    """The mode ``path`` gets when written: an existing file's own permission bits (replacing a
    file keeps its mode), else what ``open(path, "w")`` would give (0666 minus the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & PERMISSION_BITS
    except OSError:
        return NEW_FILE_MODE & ~current_umask()


def check_output(path: str | Path, option: str, hint: str = "choose a writable folder") -> None:
    """Refuse, before any work, an output path that cannot be written: a folder, a file in the
    way of its folder, a folder this process may not write in, a name too long. Creates nothing
    (missing folders are made when the file is written)."""
    path = Path(path)
    where = f"{option} {path}"
    try:
        _check_output(path, where, hint)
    except OSError as err:  # a path past the system's limit, a loop of symbolic links
        raise UsageError(f"{where}: cannot write: {os_reason(err)}") from None


def _check_output(path: Path, where: str, hint: str) -> None:
    folder = path.parent
    while not os.path.lexists(folder):  # the nearest folder that exists: the new ones go in it
        folder = folder.parent
    if not os.path.isdir(folder):
        raise UsageError(f"{where}: {folder} is not a folder")
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):  # a file system that does not say: the write itself will
        name_max = None
    if name_max is not None:
        *new_folders, name = path.relative_to(folder).parts
        lengths = [len(os.fsencode(part)) for part in new_folders] + [len(os.fsencode(name)) + TEMP_NAME_EXTRA]
        if max(lengths) > name_max:
            raise UsageError(f"{where}: a name too long ({name_max} bytes at most in {folder}, with the "
                             "temporary file's extra characters)")
    if path.is_dir():
        raise UsageError(f"{where}: is a folder; give a file name")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{where}: cannot write in {folder}: permission denied ({hint})")


# errnos of a write to a full disk, past a quota or past a file-size limit
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def os_reason(err: OSError) -> str:
    """An OSError in a few words, lower case (``permission denied``, ``no space left on device``)."""
    if isinstance(err, PermissionError):
        return "permission denied"
    reason = err.strerror or str(err)
    return reason[:1].lower() + reason[1:]


def write_error(path: str | Path, err: OSError, option: str) -> UsageError:
    """One line for an OSError while writing ``path`` (a full disk, a folder gone meanwhile)."""
    return UsageError(f"{option} {path}: cannot write: {os_reason(err)}")


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


# bytes read at a time while a file is hashed
HASH_CHUNK = 1 << 20


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``hashlib``'s algorithm name), read a chunk at a time."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
