"""One conversion: resolve the raw file, skip when up to date, read, prepare, write, report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from recbole_session.convert import (
    FORMAT_VERSION,
    SESSION_AWARE,
    ConvertError,
    Recipe,
    find_raw,
    input_identity,
)
from recbole_session.convert.atomic import (
    SESSION_AWARE_FIELDS,
    Staging,
    write_inter,
    write_json,
    write_yaml,
)
from recbole_session.convert.session_based import PARTS, write_examples
from recbole_session.convert.sessions import SessionFilters, session_aware
from recbole_session.convert.stats import (
    format_session_aware,
    format_session_based,
    session_aware_stats,
)
from recbole_session.paths import properties_dir

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def output_files(kind: str, name: str, custom: bool) -> list[str]:
    files = [f"{name}.inter"] if kind == SESSION_AWARE else [f"{name}.{part}.inter" for part in PARTS]
    files.append(f"{name}.stats.json")
    if custom:
        files.append(f"{name}.yaml")
    return files


def output_name(spec: Recipe, name: str | None, preset: str | None, source: Path | None) -> str:
    if name is None:
        if spec.generic:
            if source is None:
                raise ConvertError(f"recipe '{spec.name}' needs --raw FILE (and optionally --name)")
            name = source.name
            for pattern in spec.files:  # <prefix>_train_full.txt names the dataset <prefix>
                if pattern.startswith("*") and name.endswith(pattern[1:]):
                    name = name[: -len(pattern) + 1]
            name = name.split(".")[0]
        else:
            name = spec.name
        if preset:
            name = f"{name}-{preset}"
    if not NAME_PATTERN.match(name):
        raise ConvertError(f"bad dataset name {name!r}: use letters, digits, '-', '_' and '.'")
    return name


def _jsonable(params: dict) -> dict:
    return json.loads(json.dumps(params, sort_keys=True, default=str))


def _up_to_date(folder: Path, files: list[str], settings: dict, compare_input: bool) -> bool:
    if not all((folder / f).is_file() for f in files):
        return False
    try:
        recorded = json.loads((folder / files[-2 if files[-1].endswith(".yaml") else -1]).read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not compare_input:
        recorded = {k: v for k, v in recorded.items() if k != "input"}
        settings = {k: v for k, v in settings.items() if k != "input"}
    return recorded == settings


def _target(spec: Recipe, name, preset, source, out: Path, params: dict):
    """The output folder, its files and the settings recorded in its stats."""
    dataset = output_name(spec, name, preset, source)
    settings = {"recipe": spec.name, "name": dataset, "preset": preset, "params": _jsonable(params),
                "version": FORMAT_VERSION}
    return out / dataset, output_files(spec.kind, dataset, dataset != spec.name), settings


def run_recipe(spec: Recipe, raw, out: Path, force: bool, name: str | None, preset: str | None,
               download: bool | None, params: dict[str, Any], verbose: bool) -> Path:
    try:
        source = find_raw(spec, Path(raw) if raw is not None else None, out, download, verbose)
    except ConvertError:
        # converted before from a raw file given then: the same settings are still up to date
        if not force and raw is None and not spec.generic:
            folder, files, settings = _target(spec, name, preset, None, out, params)
            if _up_to_date(folder, files, settings, compare_input=False):
                return folder
        raise
    folder, files, settings = _target(spec, name, preset, source, out, params)
    dataset = folder.name
    custom = dataset != spec.name
    settings["input"] = input_identity(source)
    if not force and _up_to_date(folder, files, settings, compare_input=True):
        if verbose:
            print(f"{folder} is up to date (same input and settings); --force converts again")
        return folder

    if spec.kind == SESSION_AWARE:
        staged, stats, table = _session_aware(spec, source, dataset, params)
    else:
        staged, stats, table = _session_based(spec, source, dataset, params)
    stats = {"dataset": dataset, "recipe": spec.name, "kind": spec.kind, "source": str(source),
             **stats, "settings": settings}
    with Staging(folder) as stage:
        for file, write in staged.items():
            write(stage.path(file))
        write_json(stats, stage.path(f"{dataset}.stats.json"))
        if custom:
            _write_config(spec, dataset, params, stage.path(f"{dataset}.yaml"))
        stage.commit(stale=output_files(spec.kind, dataset, True))
    if verbose:
        print(table)
        print(f"wrote {folder}/ ({', '.join(files)})")
        if custom:
            print(f"train on it with: python run_recbole_session.py --dataset={dataset} "
                  f"--data_path={out} --config_files={folder / (dataset + '.yaml')}")
    return folder


def _session_aware(spec: Recipe, source: Path, dataset: str, params: dict):
    frame = spec.load(source, params)
    try:
        filters = SessionFilters.from_config(params)
    except ValueError as err:
        raise ConvertError(str(err)) from None
    rows = session_aware(frame, filters)
    if len(rows) == 0:
        raise ConvertError(f"{source}: no rows are left after the filters ({filters})")
    origin = rows["time"].min()
    # seconds relative to the first time: RecBole's float32 keeps them (unix time loses ~2 min)
    rows["time"] = rows["time"] - origin
    stats = {"time_origin": origin.item() if isinstance(origin, np.generic) else origin,
             "input_rows": len(frame), **session_aware_stats(rows)}
    files = {f"{dataset}.inter": lambda path: write_inter(rows, path, SESSION_AWARE_FIELDS)}
    return files, stats, format_session_aware(dataset, stats)


def _session_based(spec: Recipe, source: Path, dataset: str, params: dict):
    tables, stats = spec.load(source, params)
    files = {f"{dataset}.{part}.inter": (lambda path, t=tables[part]: write_examples(t, path))
             for part in PARTS}
    return files, stats, format_session_based(dataset, stats)


def _write_config(spec: Recipe, dataset: str, params: dict, path: Path) -> None:
    """The dataset keys of ``properties/dataset/<recipe>.yaml`` with this conversion's
    thresholds, for ``--config_files`` (our Config loads only ``properties/dataset/<name>.yaml``
    by itself)."""
    file = properties_dir() / "dataset" / f"{spec.name}.yaml"
    config = yaml.safe_load(file.read_text(encoding="utf-8")) if file.is_file() else {}
    config = dict(config or {})
    config.pop("convert", None)
    if "session_gap" in params:
        config["session_gap"] = params["session_gap"]
    config["convert"] = _jsonable(params)
    write_yaml(config, path, comment=f"dataset '{dataset}', converted with recipe '{spec.name}'")
