"""Fetching public raw dumps: progress bar, resume, checksum, safe extraction.

A transfer goes to ``<file>.part`` and resumes with an HTTP ``Range`` request after a broken
connection (a server that ignores the range restarts it from zero). A configured checksum
(``sha256:<hex>`` or ``md5:<hex>``) is verified before the file is renamed into place; where no
checksum is published the file is used unverified and the caller says so. Archives (zip, tar,
tar.gz) are checked member by member before anything is written: absolute names, ``..`` parts,
links and special files are refused; a ``.gz`` file is gunzipped to its stem.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from recbole_session.convert.errors import ConvertError, input_error

CHUNK = 1 << 20
RETRIES = 5  # attempts per file (each resumes where the last one stopped)
TIMEOUT_S = 60


def _hash_matches(path: Path, checksum: str) -> tuple[bool, str]:
    algorithm, _, expected = checksum.partition(":")
    if algorithm not in ("sha256", "md5") or not expected:
        raise ConvertError(f"bad checksum {checksum!r}: write sha256:<hex> or md5:<hex>")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest() == expected.lower(), digest.hexdigest()


def fetch(url: str, target: Path, checksum: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``target`` (resuming ``target.part``) and verify ``checksum``."""
    target = Path(target)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    last_error: Exception | None = None
    for attempt in range(RETRIES):
        try:
            _transfer(url, part, progress)
            last_error = None
            break
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as err:
            if isinstance(err, urllib.error.HTTPError) and err.code not in (408, 429, 500, 502, 503, 504):
                raise ConvertError(f"{url}: HTTP {err.code} {err.reason}") from None
            last_error = err
            time.sleep(min(2 ** attempt, 10) * 0.1)
    if last_error is not None:
        raise ConvertError(f"{url}: download failed after {RETRIES} attempts ({last_error}); "
                           f"the partial file {part} is kept to resume") from None
    if checksum:
        ok, actual = _hash_matches(part, checksum)
        if not ok:
            part.unlink()
            raise ConvertError(f"{url}: checksum mismatch (expected {checksum}, got "
                               f"{checksum.partition(':')[0]}:{actual}); the download was deleted")
    os.replace(part, target)
    return target


def _transfer(url: str, part: Path, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # asked past the end: the partial file is already complete
            return
        raise
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the range: start again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as fh, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=Path(url).name, disable=not progress, file=sys.stderr, leave=False,
        ) as bar:
            received = 0
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                fh.write(block)
                received += len(block)
                bar.update(len(block))
        if length is not None and received < int(length):
            raise http.client.IncompleteRead(b"", int(length) - received)


def _safe_name(name: str) -> PurePosixPath | None:
    """The relative path of an archive member, or None when it could escape the target."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        return None
    return path


def extract(archive: Path, target: Path) -> Path:
    """Extract ``archive`` into ``target`` after checking every member; returns ``target``."""
    archive, target = Path(archive), Path(target)
    name = archive.name.lower()
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if _safe_name(info.filename) is None:
                    raise input_error(archive, "archive member escapes the target folder", field=info.filename)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise input_error(archive, "archive member is a symbolic link", field=info.filename)
            try:
                zf.extractall(target)
            except (zipfile.BadZipFile, zlib.error, EOFError) as err:
                raise input_error(archive, f"corrupt zip ({err})") from None
        return target
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        try:
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for member in members:
                    if _safe_name(member.name) is None:
                        raise input_error(archive, "archive member escapes the target folder", field=member.name)
                    if not (member.isfile() or member.isdir()):
                        raise input_error(archive, "archive member is a link or special file", field=member.name)
                tf.extractall(target, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            if isinstance(err, ConvertError):
                raise
            raise input_error(archive, f"corrupt tar archive ({err})") from None
        return target
    if name.endswith(".gz"):
        out = target / archive.name[:-3]
        tmp = out.with_name(out.name + ".tmp")
        try:
            with gzip.open(archive, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            tmp.unlink(missing_ok=True)
            raise input_error(archive, f"truncated or corrupt gzip ({err})") from None
        os.replace(tmp, out)
        return target
    raise input_error(archive, "not an archive this converter can extract (zip, tar, tar.gz, gz)")
