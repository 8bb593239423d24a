"""Fetching public raw dumps: progress bar, resume, checksum, safe extraction.

A transfer goes to ``<file>.part`` and resumes with an HTTP ``Range`` request after a broken
connection (a server that ignores the range restarts it from zero, and so does a ``.part``
larger than the remote file). A published checksum (``sha256:<hex>`` or ``md5:<hex>``) is
verified before the file is renamed into place. Where none is published, the first complete
download records its own sha256 next to the file (``<file>.sha256``, the format of
``sha256sum``), and every later reuse or resume is verified against that record, so a file that
changes afterwards (on disk or on the server) is noticed. Archives (zip, tar, tar.gz) are checked
member by member before anything is written: absolute names, ``..`` parts, links and special
files are refused, and so is an archive that would unpack to more than ``max_ratio`` times its
own size (a zip bomb); members are extracted into a temporary folder and moved into place only
when all are complete. A ``.gz`` file is gunzipped to its stem under the same size limit.
"""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from recbole_session.convert.errors import ConvertError, input_error
from recbole_session.files import atomic_path, file_digest, write_atomic

CHUNK = 1 << 20
RETRIES = 5  # attempts per file (each resumes where the last one stopped)
TIMEOUT_S = 60
MAX_UNPACK_RATIO = 100  # an archive may unpack to at most this many times its size (--max-unpack-ratio)
RECORD_SUFFIX = ".sha256"


def _hash_matches(path: Path, checksum: str) -> tuple[bool, str]:
    algorithm, _, expected = checksum.partition(":")
    if algorithm not in ("sha256", "md5") or not expected:
        raise ConvertError(f"bad checksum {checksum!r}: write sha256:<hex> or md5:<hex>")
    actual = file_digest(path, algorithm)
    return actual == expected.lower(), actual


def record_path(path: Path) -> Path:
    return path.with_name(path.name + RECORD_SUFFIX)


def recorded_checksum(path: Path) -> str | None:
    """The sha256 recorded by the first complete download of ``path`` (``sha256:<hex>``)."""
    record = record_path(path)
    if not record.is_file():
        return None
    words = record.read_text(encoding="utf-8").split()
    if not words or len(words[0]) != 64:
        raise input_error(record, "not a sha256 record (expected '<64 hex digits>  <file name>')", line=1)
    return f"sha256:{words[0].lower()}"


def record_checksum(path: Path) -> str:
    """Record the sha256 of ``path`` next to it; returns it as ``sha256:<hex>``."""
    digest = file_digest(path, "sha256")
    write_atomic(record_path(path), f"{digest}  {path.name}\n")
    return f"sha256:{digest}"


def verify_recorded(path: Path) -> None:
    """A reused download still matches the sha256 recorded at its first download (if any)."""
    expected = recorded_checksum(path)
    if expected is None:
        return
    ok, actual = _hash_matches(path, expected)
    if not ok:
        raise input_error(path, f"changed since it was downloaded (sha256 {actual}, recorded "
                                f"{expected.partition(':')[2]} in {record_path(path).name}); delete both "
                                f"files to download it again")


def fetch(url: str, target: Path, checksum: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``target`` (resuming ``target.part``) and verify it against
    ``checksum``, or else against the sha256 recorded by its first download (recorded now when
    this is the first)."""
    target = Path(target)
    expected = checksum or recorded_checksum(target)
    if target.is_file():
        if expected:
            ok, actual = _hash_matches(target, expected)
            if not ok:
                raise input_error(target, f"does not match {'the published checksum' if checksum else 'the sha256 recorded at its first download'} "
                                          f"({expected}, got {actual}); delete it to download it again")
        return target
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
    if expected:
        ok, actual = _hash_matches(part, expected)
        if not ok:
            part.unlink()
            what = "checksum mismatch" if checksum else "does not match the sha256 recorded at its first download"
            raise ConvertError(f"{url}: {what} (expected {expected}, got "
                               f"{expected.partition(':')[0]}:{actual}); the download was deleted")
    os.replace(part, target)
    if not expected:
        record_checksum(target)
    return target


def _remote_size(response_or_error) -> int | None:
    """The full size from a ``Content-Range: bytes a-b/N`` or ``bytes */N`` header."""
    value = response_or_error.headers.get("Content-Range") if response_or_error.headers else None
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _transfer(url: str, part: Path, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # asked at or past the end
            if _remote_size(err) == have:
                return  # the partial file is already complete
            part.unlink()  # larger than the remote file (or of unknown size): start again
            return _transfer(url, part, progress)
        raise
    with response:
        part.parent.mkdir(parents=True, exist_ok=True)  # only once the server answers
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


def _check_ratio(archive: Path, unpacked: int, max_ratio: float) -> None:
    packed = max(archive.stat().st_size, 1)
    if unpacked > max_ratio * packed:
        raise input_error(archive, f"would unpack to {unpacked:,} bytes, {unpacked / packed:.0f} times its size "
                                   f"(more than --max-unpack-ratio {max_ratio:g}: a zip bomb?); raise that "
                                   f"limit if the archive is genuine")


def _check_members(archive: Path, max_ratio: float) -> str:
    """Every member is safe and the whole unpacks within the ratio; returns the archive kind."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
        for info in infos:
            if _safe_name(info.filename) is None:
                raise input_error(archive, "archive member escapes the target folder", field=info.filename)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise input_error(archive, "archive member is a symbolic link", field=info.filename)
        _check_ratio(archive, sum(info.file_size for info in infos), max_ratio)
        return "zip"
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
    for member in members:
        if _safe_name(member.name) is None:
            raise input_error(archive, "archive member escapes the target folder", field=member.name)
        if not (member.isfile() or member.isdir()):
            raise input_error(archive, "archive member is a link or special file", field=member.name)
    _check_ratio(archive, sum(member.size for member in members), max_ratio)
    return "tar"


def extract(archive: Path, target: Path, max_ratio: float = MAX_UNPACK_RATIO) -> Path:
    """Extract ``archive`` into ``target`` after checking every member; returns ``target``."""
    archive, target = Path(archive), Path(target)
    name = archive.name.lower()
    target.mkdir(parents=True, exist_ok=True)
    if name.endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")) or zipfile.is_zipfile(archive):
        try:
            kind = _check_members(archive, max_ratio)
            staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", suffix=".extract", dir=target))
            try:
                if kind == "zip":
                    with zipfile.ZipFile(archive) as zf:
                        zf.extractall(staging)
                else:
                    with tarfile.open(archive) as tf:
                        tf.extractall(staging, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
                for entry in sorted(staging.iterdir()):
                    destination = target / entry.name
                    if destination.is_dir() and not destination.is_symlink():
                        shutil.rmtree(destination)
                    os.replace(entry, destination)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:
            raise input_error(archive, f"corrupt {'zip' if name.endswith('.zip') else 'tar'} archive ({err})") from None
        return target
    if name.endswith(".gz"):
        out = target / archive.name[:-3]
        limit = max_ratio * max(archive.stat().st_size, 1)
        try:
            with atomic_path(out) as tmp, gzip.open(archive, "rb") as src, open(tmp, "wb") as dst:
                written = 0
                for block in iter(lambda: src.read(CHUNK), b""):
                    written += len(block)
                    if written > limit:
                        _check_ratio(archive, written, max_ratio)
                    dst.write(block)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise input_error(archive, f"truncated or corrupt gzip ({err})") from None
        return target
    raise input_error(archive, "not an archive this converter can extract (zip, tar, tar.gz, gz)")
