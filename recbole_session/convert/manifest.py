"""Which files of a dataset folder the converter wrote: ``<name>.manifest.json``.

Every conversion records the files it wrote (name, size, sha256) in ``<out>/<name>/<name>.manifest.json``,
moved into place after them. The rule built on it, so that a user's file never vanishes:

- a file that the manifest lists and that still has the recorded size and sha256 is the
  converter's own: a new conversion may replace it, or remove it when it no longer writes that name;
- any other file in the way of a name the conversion writes (one the manifest does not list, one
  changed since, every file of a folder without a readable manifest, e.g. converted before
  manifests existed) is the user's: the conversion refuses, naming it, unless ``force``, which
  replaces the names the conversion writes and nothing else;
- a file that is not the converter's own and that the conversion does not write is never removed,
  not even with ``force``;
- a folder or a link where a file should be is never replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from recbole_session.convert.errors import ConvertError
from recbole_session.files import file_digest, os_reason

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_VERSION = 1
ABOUT = ("the files python -m recbole_session.convert wrote here; it replaces or removes only these, "
         "and only while they keep this size and sha256")


def manifest_name(dataset: str) -> str:
    return f"{dataset}{MANIFEST_SUFFIX}"


def _plain_name(name: object) -> bool:
    """A file name of the folder itself: a manifest never reaches outside its folder."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def read_manifest(folder: Path, dataset: str) -> tuple[dict[str, dict] | None, str]:
    """The manifest's entries (name -> {"size", "sha256"}), or None and why there are none."""
    path = folder / manifest_name(dataset)
    if not path.is_file():
        return None, f"no {path.name} in the folder: your own file, or converted before the converter kept one"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, dict) or not all(
                _plain_name(name) and isinstance(entry, dict) and isinstance(entry.get("size"), int)
                and isinstance(entry.get("sha256"), str) for name, entry in files.items()):
            raise TypeError
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None, f"{path.name} is not a manifest the converter can read"
    return files, ""


def write_manifest(path: Path, dataset: str, files: Iterable[Path]) -> None:
    """Record ``files`` (already written, e.g. in the staging folder) in the manifest ``path``."""
    entries = {file.name: {"size": file.stat().st_size, "sha256": file_digest(file)} for file in files}
    data = {"about": ABOUT, "dataset": dataset, "version": MANIFEST_VERSION, "files": entries}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@dataclass
class Plan:
    """What a conversion into an existing folder may do there."""

    remove: list[str] = field(default_factory=list)  # the converter's own files it no longer writes
    keep: list[tuple[str, str]] = field(default_factory=list)  # (name, why) of others left in place


def _why_not_own(path: Path, entries: dict[str, dict] | None, missing: str, manifest: str) -> str | None:
    """None when ``path`` is a file the converter wrote and nobody changed since; else why not."""
    if entries is None:
        return missing
    entry = entries.get(path.name)
    if entry is None:
        return f"{manifest} does not list it"
    if path.is_symlink():
        return "a link, which the converter never writes"
    try:
        if path.stat().st_size != entry["size"] or file_digest(path) != entry["sha256"]:
            return f"changed since the converter wrote it: its sha256 differs from {manifest}"
    except OSError as err:
        raise ConvertError(f"{path}: cannot read: {os_reason(err)}") from None
    return None


def plan(folder: Path, dataset: str, writes: list[str], others: Iterable[str], force: bool) -> Plan:
    """Check the files in the way of a conversion writing ``writes`` into ``folder`` (see the
    module's rule) and say which former outputs (``others``: names a conversion of this dataset
    may write, and every name the manifest lists) to remove or leave. Raises a ConvertError
    naming the first file that is in the way and not the converter's own (unless ``force``)."""
    if not folder.is_dir():
        return Plan()
    entries, missing = read_manifest(folder, dataset)
    manifest = manifest_name(dataset)
    in_the_way = []
    for name in writes:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            raise ConvertError(f"{path}: is a folder, not a file (move it away or use --name)")
        if not (path.exists() or path.is_symlink()):
            continue
        # a readable manifest is the converter's own: it is what ownership is judged by
        why = None if name == manifest and entries is not None else _why_not_own(path, entries, missing, manifest)
        if why is not None:
            in_the_way.append((path, why))
    if in_the_way and not force:
        path, why = in_the_way[0]
        also = f"; also in the way: {', '.join(p.name for p, _ in in_the_way[1:])}" if in_the_way[1:] else ""
        raise ConvertError(f"{path}: already there and not written by the converter ({why}){also}; "
                           f"--force replaces the files the conversion writes (it never removes others)")
    result = Plan()
    for name in sorted((set(others) | set(entries or ())) - set(writes)):
        path = folder / name
        if not (path.is_file() or path.is_symlink()):
            continue
        why = _why_not_own(path, entries, missing, manifest)
        if why is None:
            result.remove.append(name)
        else:
            result.keep.append((name, why))
    return result
