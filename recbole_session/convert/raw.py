"""Finding the raw file of a conversion: ``--raw`` (a file or the folder holding it), the copy
bundled with an installed package, or ``<out>/.raw/<recipe>/``, downloaded there first when it
is missing and a public address is known."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recbole_session.convert.download import (
    MAX_UNPACK_RATIO,
    extract,
    fetch,
    record_path,
    verify_recorded,
)
from recbole_session.convert.errors import ConvertError, input_error
from recbole_session.convert.registry import Recipe

RAW_DIR = ".raw"  # <out>/.raw/<recipe>/ holds downloaded dumps
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")


def convert_command(spec: Recipe) -> str:
    return f"python -m recbole_session.convert {spec.name} --raw PATH"


def find_raw(spec: Recipe, raw: Path | None, out: Path, download: bool | None, verbose: bool,
             max_unpack_ratio: float = MAX_UNPACK_RATIO) -> Path:
    """The raw file to read (see :func:`recbole_session.convert.pipeline.convert`)."""
    if raw is not None and download is not True:
        raw = Path(raw)
        if raw.is_dir():
            found = in_folder(spec, raw)
            if found is None:
                raise input_error(raw, f"no {' / '.join(spec.files)} in this folder "
                                       f"(the raw file of recipe '{spec.name}')")
            return found
        if not raw.exists():
            raise input_error(raw, "file not found")
        return raw
    if raw is None and spec.bundled is not None:
        return Path(spec.bundled())
    folder = Path(raw) if raw is not None else out / RAW_DIR / spec.name
    found = in_folder(spec, folder) if folder.is_dir() else None
    if found is not None:
        if record_path(found).is_file():
            verify_recorded(found)  # the downloaded file itself (not extracted from an archive)
        return found
    if spec.download is None or download is False:
        wanted = " / ".join(spec.files) or "the raw file"
        where = f" (download it from {spec.download.url})" if spec.download else ""
        raise ConvertError(f"recipe '{spec.name}' needs its raw file {wanted}, which is not in {folder}{where}; "
                           f"convert it with: {convert_command(spec)}")
    dl = spec.download
    if not dl.checksum and verbose:
        print(f"note: no checksum is published for {dl.url}; the first complete download records its "
              f"sha256 and later runs are verified against it")
    try:
        archive = fetch(dl.url, folder / Path(dl.url).name, dl.checksum, progress=verbose)
        if archive.suffix == ".7z":
            raise ConvertError(f"{archive}: extract {' / '.join(spec.files)} from this 7z archive "
                               f"with 7-Zip (7z x {archive} -o{folder}), then run the conversion again")
        if archive.name.endswith(ARCHIVES):
            extract(archive, folder, max_unpack_ratio)
    except ConvertError as err:
        raise ConvertError(f"{err}; or download it yourself and run: {convert_command(spec)}") from None
    found = in_folder(spec, folder)
    if found is None:
        raise ConvertError(f"{dl.url}: the download holds no {' / '.join(spec.files)}; "
                           f"convert it with: {convert_command(spec)}")
    return found


def in_folder(spec: Recipe, folder: Path) -> Path | None:
    for file in spec.files:
        if "*" in file:  # a pattern (the session-rec files are <prefix>_train_full.txt)
            matches = sorted(p for p in folder.glob(file) if p.is_file())
            if matches:
                return matches[0]
            continue
        for candidate in (folder / file, folder / f"{file}.gz"):
            if candidate.is_file():
                return candidate
        # an archive extracts into a sub-folder (ml-1m.zip holds ml-1m/ratings.dat)
        nested = sorted(p for p in folder.glob(f"*/{file}") if p.is_file())
        if nested:
            return nested[0]
    return None


def input_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
