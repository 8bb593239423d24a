"""What ``--resume`` trusts: a signed manifest of the search's state.

Resuming makes Ray unpickle files of the output folder (``ray/search/tuner.pkl``, the
searcher's and the trials' state, checkpoints): a replaced file runs code. So whenever a search
of this package ends (finished, interrupted, errored) it writes ``resume.json``: the relative
path, size and SHA-256 of every file under ``ray/`` plus ``search.json`` and ``space.yaml``,
signed with HMAC-SHA256 under a per-user key kept outside the output folder
(:func:`key_file`). ``--resume`` verifies the signature and every file before Ray reads
anything, and refuses a folder with an added, removed or changed file, or without a manifest.

What this trusts: the key file, and so a folder that this user's search wrote on this machine
(a folder copied from another machine or user has no valid signature). It does not protect
against someone who can write the key file, nor against a change made while the resumed
search runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Any

from recbole_session.cli import UsageError
from recbole_session.files import file_digest, write_atomic
from recbole_session.tune.settings import SETTINGS_FILE, SPACE_COPY

# the environment variable that names the key file (tests, or a key kept elsewhere)
KEY_ENV = "RECBOLE_SESSION_KEY_FILE"
KEY_NAME = Path("recbole-session") / "resume.key"
KEY_BYTES = 32  # HMAC-SHA256's block-safe key size
KEY_MODE = 0o600  # read and write by its owner only
KEY_DIR_MODE = 0o700
MANIFEST = "resume.json"
MANIFEST_VERSION = 1
RAY_STATE = "ray"  # the folder under the output folder that Ray writes and --resume reads
# files outside RAY_STATE that --resume reads back
SIGNED_FILES = (SETTINGS_FILE, SPACE_COPY)


def key_file() -> Path:
    """``$RECBOLE_SESSION_KEY_FILE``, else ``$XDG_CONFIG_HOME/recbole-session/resume.key``, else
    ``~/.config/recbole-session/resume.key``."""
    named = os.environ.get(KEY_ENV)
    if named:
        return Path(named).expanduser()
    config_home = os.environ.get("XDG_CONFIG_HOME")
    # the XDG spec ignores a relative XDG_CONFIG_HOME
    base = Path(config_home) if config_home and os.path.isabs(config_home) else Path.home() / ".config"
    return base / KEY_NAME


def _read_key(path: Path) -> bytes:
    try:
        info = path.lstat()
        text = path.read_text(encoding="ascii") if stat.S_ISREG(info.st_mode) else ""
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not text"
        raise UsageError(f"{path}: cannot read the resume key: {reason}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{path}: the resume key is not a regular file")
    if info.st_mode & 0o077:
        # as ssh does with a private key: a key others can read signs nothing
        raise UsageError(f"{path}: the resume key may be read or written by others "
                         f"(mode {stat.S_IMODE(info.st_mode):o}): chmod 600 it")
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise UsageError(f"{path}: the resume key is not {KEY_BYTES} bytes of hex (delete it to make a new one; "
                         "folders signed with it can then not be resumed)")
    return key


def load_key(create: bool) -> bytes:
    """The per-user key; with ``create`` a missing key is made (mode 0600, atomically: two
    searches that start at once end with the same key)."""
    path = key_file()
    if not create or path.exists() or path.is_symlink():
        if not path.exists() and not path.is_symlink():
            raise UsageError(f"no resume key at {path}: this folder was not signed by this user on this "
                             f"machine (set {KEY_ENV} if the key lives elsewhere)")
        return _read_key(path)
    path.parent.mkdir(mode=KEY_DIR_MODE, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(KEY_BYTES) + "\n")
        os.chmod(tmp, KEY_MODE)
        # a link, not a rename: it never replaces a key that another search made meanwhile
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return _read_key(path)


def _entry(output: Path, path: Path) -> dict[str, Any]:
    rel = path.relative_to(output).as_posix()
    if path.is_symlink():  # never followed: its target is what is signed
        target = os.readlink(path)
        return {"path": rel, "link": target}
    return {"path": rel, "size": path.stat().st_size, "sha256": file_digest(path)}


def state_files(output: Path) -> list[Path]:
    """Every file (and link) under ``ray/``, plus the settings and the space copy, sorted."""
    files = [output / name for name in SIGNED_FILES if (output / name).exists() or (output / name).is_symlink()]
    root = output / RAY_STATE
    for folder, dirs, names in os.walk(root):
        base = Path(folder)
        files += [base / name for name in names]
        # a link to a folder is listed as a link, not walked into
        files += [base / name for name in dirs if (base / name).is_symlink()]
    return sorted(files, key=lambda p: p.relative_to(output).as_posix())


def _signature(key: bytes, entries: list[dict[str, Any]]) -> str:
    body = json.dumps({"version": MANIFEST_VERSION, "files": entries}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def write_manifest(output: Path) -> Path:
    """Sign the search's state as it is now (call it after Ray's last write)."""
    entries = [_entry(output, path) for path in state_files(output)]
    manifest = {"version": MANIFEST_VERSION, "files": entries, "hmac": _signature(load_key(create=True), entries)}
    path = output / MANIFEST
    write_atomic(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def drop_manifest(output: Path) -> None:
    """Forget the signature before the folder changes: a search that is killed before it signs
    again leaves a folder that cannot be resumed, not a stale signature."""
    (output / MANIFEST).unlink(missing_ok=True)


def verify_manifest(output: Path) -> None:
    """Raise :class:`UsageError` unless ``output``'s state is exactly what this user's key signed."""
    path = output / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        entries, signature = manifest["files"], manifest["hmac"]
        if manifest["version"] != MANIFEST_VERSION or not isinstance(entries, list) or not isinstance(signature, str):
            raise ValueError
    except FileNotFoundError:
        raise UsageError(f"{output}: no {MANIFEST}, so its Ray state cannot be trusted: it was written by an older "
                         "version, copied from another machine or user, or its search was killed; "
                         "start a new search") from None
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise UsageError(f"{path}: not a resume manifest; start a new search") from None
    if not hmac.compare_digest(_signature(load_key(create=False), entries), signature):
        raise UsageError(f"{path}: the signature does not match this user's key ({key_file()}): "
                         "the folder was not written by this user on this machine, or was edited")
    signed = {entry["path"]: entry for entry in entries}
    present = {path.relative_to(output).as_posix(): path for path in state_files(output)}
    for rel in sorted(signed.keys() | present.keys()):
        if rel not in present:
            raise UsageError(f"{output / rel}: removed since the search wrote it: refused to resume")
        if rel not in signed:
            raise UsageError(f"{output / rel}: added since the search ended: refused to resume")
        if _entry(output, present[rel]) != signed[rel]:
            raise UsageError(f"{output / rel}: changed since the search wrote it: refused to resume")
