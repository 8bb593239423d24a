"""Dataset converter: raw dumps into session-aware RecBole atomic files (or, for session-based
datasets, RecBole benchmark files of prefix examples).

``python -m recbole_session.convert DATASET [--raw PATH] [--out atomic_files] [--name OUT]
[--preset asars] [--session-gap SECONDS] [--force] [--download] ...`` or
:func:`convert`. Each recipe is a small module in :mod:`recbole_session.convert.recipes`,
registered by name with :func:`recipe`; its default thresholds are in
``properties/dataset/<name>.yaml`` (``session_gap`` and the ``convert:`` block), presets in
``recbole_session/convert/presets.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from recbole_session.convert.errors import ConvertError, input_error
from recbole_session.convert.registry import (
    RECIPES,
    SESSION_AWARE,
    SESSION_BASED,
    Download,
    Recipe,
    load_recipes,
    recipe,
)
from recbole_session.paths import properties_dir

__all__ = ["ConvertError", "Download", "Recipe", "convert", "dataset_params", "preset_names",
           "recipe", "recipe_names", "RECIPES", "SESSION_AWARE", "SESSION_BASED"]

DEFAULT_OUT = "atomic_files"
RAW_DIR = ".raw"  # <out>/.raw/<recipe>/ holds downloaded dumps
FORMAT_VERSION = 1  # bump when the output of a recipe changes for the same settings
PRESETS_FILE = Path(__file__).resolve().parent / "presets.yaml"


def recipe_names() -> list[str]:
    return sorted(load_recipes())


def preset_names() -> list[str]:
    return sorted(yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8")) or {})


def dataset_params(name: str) -> dict[str, Any]:
    """The conversion parameters of ``properties/dataset/<name>.yaml`` (``session_gap`` and the
    ``convert:`` block), as defaults for the recipe."""
    file = properties_dir() / "dataset" / f"{name}.yaml"
    if not file.is_file():
        return {}
    loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    params = dict(loaded.get("convert") or {})
    if "session_gap" in loaded:
        params.setdefault("session_gap", loaded["session_gap"])
    return params


def _preset(name: str | None) -> dict[str, Any]:
    if not name:
        return {}
    presets = yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8")) or {}
    if name not in presets:
        raise ConvertError(f"unknown preset '{name}' (known: {', '.join(sorted(presets))})")
    return dict(presets[name])


def convert(
    dataset: str,
    raw: str | Path | None = None,
    out: str | Path = DEFAULT_OUT,
    force: bool = False,
    *,
    name: str | None = None,
    preset: str | None = None,
    download: bool | None = None,
    verbose: bool = True,
    **overrides: Any,
) -> Path:
    """Convert with recipe ``dataset`` into ``<out>/<name>/``; returns that folder.

    ``name`` defaults to the recipe's name (``<recipe>-<preset>`` with a preset; the raw file's
    stem for the generic recipes). ``raw`` is the raw file or the folder holding it; without it
    the recipe's bundled copy or ``<out>/.raw/<recipe>/`` is used, downloaded there first when
    missing and a public address is known (``download=False`` forbids that, ``True`` downloads
    into ``raw`` or that folder). ``overrides`` replace the thresholds of
    ``properties/dataset/<recipe>.yaml`` and of the preset. Does nothing when the output exists
    and was made from the same input with the same settings, unless ``force``.
    """
    from recbole_session.convert.pipeline import run_recipe  # heavy imports only when used

    recipes = load_recipes()
    if dataset not in recipes:
        raise ConvertError(f"unknown dataset recipe '{dataset}' (known: {', '.join(sorted(recipes))})")
    spec = recipes[dataset]
    params = {**dataset_params(dataset), **_preset(preset),
              **{k: v for k, v in overrides.items() if v is not None}}
    # 3600.0 from the command line and 3600 from a yaml file are the same setting
    params = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in params.items()}
    return run_recipe(spec, raw=raw, out=Path(out), force=force, name=name, preset=preset,
                      download=download, params=params, verbose=verbose)


def find_raw(spec: Recipe, raw: Path | None, out: Path, download: bool | None, verbose: bool) -> Path:
    """The raw file to read (see :func:`convert`)."""
    if raw is not None and download is not True:
        raw = Path(raw)
        if raw.is_dir():
            found = _in_folder(spec, raw)
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
    found = _in_folder(spec, folder) if folder.is_dir() else None
    if found is not None:
        return found
    command = f"python -m recbole_session.convert {spec.name} --raw PATH"
    if spec.download is None or download is False:
        wanted = " / ".join(spec.files) or "the raw file"
        where = f" (download it from {spec.download.url})" if spec.download else ""
        raise ConvertError(f"recipe '{spec.name}' needs its raw file {wanted}{where}; "
                           f"convert it with: {command}")
    from recbole_session.convert.download import extract, fetch

    dl = spec.download
    if not dl.checksum and verbose:
        print(f"note: no checksum is published for {dl.url}; the download is not verified")
    try:
        archive = fetch(dl.url, folder / Path(dl.url).name, dl.checksum, progress=verbose)
        if archive.suffix == ".7z":
            raise ConvertError(f"{archive}: extract {' / '.join(spec.files)} from this 7z archive "
                               f"with 7-Zip (7z x {archive} -o{folder}), then run the conversion again")
        if archive.name.endswith((".zip", ".tar", ".tar.gz", ".tgz")):
            extract(archive, folder)
    except ConvertError as err:
        raise ConvertError(f"{err}; or download it yourself and run: {command}") from None
    found = _in_folder(spec, folder)
    if found is None:
        raise ConvertError(f"{dl.url}: the download holds no {' / '.join(spec.files)}; "
                           f"convert it with: {command}")
    return found


def _in_folder(spec: Recipe, folder: Path) -> Path | None:
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
