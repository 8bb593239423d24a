"""One conversion: resolve the raw file, skip when up to date, read, prepare, write, report."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from recbole_session.convert.atomic import (
    SESSION_AWARE_FIELDS,
    SESSION_BASED_FIELDS,
    Staging,
    write_error,
    write_pieces,
    write_table,
    write_text,
)
from recbole_session.convert.download import MAX_UNPACK_RATIO
from recbole_session.convert.errors import ConvertError, input_error, option_error
from recbole_session.convert.manifest import manifest_name, plan, write_manifest
from recbole_session.convert.params import merged_params
from recbole_session.convert.raw import find_raw, input_identity
from recbole_session.convert.readers import Events, streamed
from recbole_session.convert.registry import (
    OPTIONS,
    SESSION_AWARE,
    SESSION_BASED,
    Recipe,
    load_recipes,
)
from recbole_session.convert.session_based import PARTS
from recbole_session.convert.sessions import SessionFilters, prepare
from recbole_session.convert.stats import (
    format_funnel,
    format_session_aware,
    format_session_based,
    funnel_warning,
)
from recbole_session.files import os_reason
from recbole_session.paths import properties_dir

DEFAULT_OUT = "atomic_files"
# --chunk-rows: users are sessionized in groups of about this many rows, the raw file is read in
# blocks; by default for raw files of at least AUTO_CHUNK_BYTES (~8M rows of a short log): measured
# no slower and smaller from 10M rows up (docs/benchmarks.md, convert_userbehavior)
DEFAULT_CHUNK_ROWS = 4_000_000
AUTO_CHUNK_BYTES = 256 << 20
FORMAT_VERSION = 2  # bump when the output of a recipe changes for the same settings
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    funnel: bool = False,
    max_unpack_ratio: float = MAX_UNPACK_RATIO,
    chunk_rows: int | None = None,
    **overrides: Any,
) -> Path:
    """Convert with recipe ``dataset`` into ``<out>/<name>/``; returns that folder.

    ``name`` defaults to the recipe's name (``<recipe>-<preset>`` with a preset; the raw file's
    stem for the generic recipes). ``raw`` is the raw file or the folder holding it; without it
    the recipe's bundled copy or ``<out>/.raw/<recipe>/`` is used, downloaded there first when
    missing and a public address is known (``download=False`` forbids that, ``True`` downloads
    into ``raw`` or that folder; archives may unpack to at most ``max_unpack_ratio`` times their
    size). ``overrides`` replace the thresholds of ``properties/dataset/<recipe>.yaml`` and of
    the preset. ``verbose`` prints the statistics (and, when the filters drop more than half of
    the users or rows, the funnel with the flag that keeps more); ``funnel`` always prints the
    funnel. Does nothing when the output exists and was made from the same input with the same
    settings, unless ``force``. Replaces or removes only the files that it wrote itself and that
    are unchanged since (``<name>.manifest.json`` lists them); a conversion that would replace any
    other file is refused, unless ``force``, which replaces the files it writes but never
    removes another one.

    ``chunk_rows`` (session-aware recipes): read the raw file in blocks, keep text ids as codes,
    and sessionize the users in groups of about that many rows, so that memory grows by a few
    bytes per raw row instead of tens; ``0`` reads and sessionizes everything at once; ``None``
    (default) uses :data:`DEFAULT_CHUNK_ROWS` for a raw file of at least
    :data:`AUTO_CHUNK_BYTES`, else ``0``. The output is the same byte for byte either way, so
    it is not a setting of the output (not recorded, not part of "up to date").
    """
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 0):
        raise option_error("--chunk-rows", f"expected a row count >= 0 (0: all at once), not {chunk_rows!r}")
    recipes = load_recipes()
    if dataset not in recipes:
        raise ConvertError(f"unknown dataset recipe '{dataset}' (known: {', '.join(sorted(recipes))})")
    spec = recipes[dataset]
    params = merged_params(dataset, preset, overrides)
    for key, (flag, unset) in OPTIONS.items():
        if key not in spec.options and params.get(key, unset) != unset:
            takers = sorted(r.name for r in recipes.values() if key in r.options)
            raise option_error(flag, f"recipe '{spec.name}' does not read it (recipes that do: {', '.join(takers)})")
    return run_recipe(spec, raw=raw, out=Path(out), force=force, name=name, preset=preset, download=download,
                      params=params, verbose=verbose, funnel=funnel, max_unpack_ratio=max_unpack_ratio,
                      chunk_rows=chunk_rows)


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
        raise option_error("--name", f"bad dataset name {name!r}: use letters, digits, '-', '_' and '.'")
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


def _custom(spec: Recipe, dataset: str, params: dict) -> bool:
    """Whether the dataset needs its own ``<name>.yaml``: a name other than the recipe's, or
    extra fields that the recipe's properties file does not load."""
    return dataset != spec.name or any(params.get(key) not in (None, "") for key in ("type_col", "weight"))


def _target(spec: Recipe, name, preset, source, out: Path, params: dict):
    """The output folder, its files and the settings recorded in its stats."""
    dataset = output_name(spec, name, preset, source)
    settings = {"recipe": spec.name, "name": dataset, "preset": preset, "params": _jsonable(params),
                "version": FORMAT_VERSION}
    return out / dataset, output_files(spec.kind, dataset, _custom(spec, dataset, params)), settings


def run_recipe(spec: Recipe, raw, out: Path, force: bool, name: str | None, preset: str | None,
               download: bool | None, params: dict[str, Any], verbose: bool, funnel: bool = False,
               max_unpack_ratio: float = MAX_UNPACK_RATIO, chunk_rows: int | None = None) -> Path:
    try:
        try:
            source = find_raw(spec, Path(raw) if raw is not None else None, out, download, verbose, max_unpack_ratio)
        except ConvertError:
            raise
        except OSError as err:  # e.g. a folder on the way that this user may not enter
            raise input_error(err.filename or raw or out, f"cannot read: {os_reason(err)}") from None
    except ConvertError:
        # converted before from a raw file given then: the same settings are still up to date
        if not force and raw is None and not spec.generic:
            folder, files, settings = _target(spec, name, preset, None, out, params)
            if _up_to_date(folder, files, settings, compare_input=False):
                if verbose:
                    recorded = json.loads((folder / f"{folder.name}.stats.json").read_text())
                    print(f"{folder} is up to date (converted from {recorded.get('source')}, with the same "
                          f"settings); give --raw to convert again")
                return folder
        raise
    folder, files, settings = _target(spec, name, preset, source, out, params)
    dataset = folder.name
    custom = _custom(spec, dataset, params)
    settings["input"] = input_identity(source)
    if not force and _up_to_date(folder, files, settings, compare_input=True):
        if verbose:
            print(f"{folder} is up to date (same input and settings); --force converts again")
        return folder
    writes = [*files, manifest_name(dataset)]
    # former outputs under this name (of either kind, with or without <name>.yaml): removed only
    # while they are the converter's own (see manifest.py)
    former = output_files(SESSION_AWARE, dataset, True) + output_files(SESSION_BASED, dataset, True)
    plan(folder, dataset, writes, former, force)  # refuse before the work, not after it

    if spec.kind == SESSION_AWARE:
        staged, stats, table, fields = _session_aware(spec, source, dataset, params,
                                                      _chunk_rows(chunk_rows, source))
    else:
        staged, stats, table, fields = _session_based(spec, source, dataset, params, verbose)
    stats = {"dataset": dataset, "recipe": spec.name, "kind": spec.kind, "source": str(source),
             **stats, "settings": settings}
    with Staging(folder) as stage:
        try:
            for file, write in staged.items():
                write(stage.path(file))
            write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n", stage.path(f"{dataset}.stats.json"))
            if custom:
                _write_config(spec, dataset, params, fields, stage.path(f"{dataset}.yaml"))
            write_manifest(stage.path(writes[-1]), dataset, [stage.path(file) for file in files])
            done = plan(folder, dataset, writes, former, force)  # again: the folder may have changed meanwhile
            stage.commit(stale=done.remove, last=writes[-1])
        except OSError as err:
            raise write_error(Path(err.filename) if err.filename else folder, err) from None
    if verbose:
        print(table)
        warning = funnel_warning(stats["funnel"], params | _filter_values(params)) if spec.kind == SESSION_AWARE else None
        if funnel or warning:
            print(format_funnel(stats["funnel"]), file=sys.stderr if warning and not funnel else sys.stdout)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"wrote {folder}/ ({', '.join(writes)})")
        for file, why in done.keep:
            print(f"note: left {folder / file} as it is ({why}): the converter removes only its own files",
                  file=sys.stderr)
        if custom:
            print(f"train on it with: python run_recbole_session.py --dataset={dataset} "
                  f"--data_path={out} --config_files={folder / (dataset + '.yaml')}")
    return folder


def _filter_values(params: dict) -> dict:
    try:
        return dataclasses.asdict(SessionFilters.from_config(params))
    except ConvertError:
        return {}


def _chunk_rows(chunk_rows: int | None, source: Path) -> int:
    """``chunk_rows`` as given, or (``None``) the default for the size of ``source``."""
    if chunk_rows is not None:
        return chunk_rows
    try:
        big = source.is_file() and source.stat().st_size >= AUTO_CHUNK_BYTES
    except OSError:
        big = False  # the reader names the problem
    return DEFAULT_CHUNK_ROWS if big else 0


def _session_aware(spec: Recipe, source: Path, dataset: str, params: dict, chunk_rows: int = 0):
    filters = SessionFilters.from_config(params)
    with streamed(chunk_rows > 0):
        events: Events = spec.load(source, params)
    prepared = prepare(events, filters, chunk_rows)
    if len(prepared) == 0:
        why = funnel_warning(prepared.funnel.steps, params | dataclasses.asdict(filters))
        raise ConvertError(f"{source}: no rows are left after the filters; {why}")
    origin = prepared.time_min()
    stats = {"time_origin": (origin.item() if isinstance(origin, np.generic) else origin) / events.unit
             if events.unit > 1 else (origin.item() if isinstance(origin, np.generic) else origin),
             "input_rows": len(events), "funnel": prepared.funnel.steps, **prepared.stats()}

    def pieces():
        for user, item, time, session, dwell, fields in prepared.pieces():
            # seconds relative to the first time: RecBole's float32 keeps them (unix time loses ~2 min)
            time = time - origin
            if events.unit > 1:
                time, dwell = time / events.unit, dwell / events.unit
            yield {SESSION_AWARE_FIELDS["user"]: user, SESSION_AWARE_FIELDS["item"]: item,
                   SESSION_AWARE_FIELDS["time"]: time, SESSION_AWARE_FIELDS["session"]: session,
                   SESSION_AWARE_FIELDS["dwell"]: dwell, **fields}

    header = [*SESSION_AWARE_FIELDS.values(), *events.fields]
    files = {f"{dataset}.inter": lambda path: write_pieces(header, pieces(), path)}
    return files, stats, format_session_aware(dataset, stats), list(events.fields)


def _session_based(spec: Recipe, source: Path, dataset: str, params: dict, verbose: bool):
    tables, stats = spec.load(source, params)
    if stats["valid"].get("same_as") == "test" and verbose:
        print("warning: --valid-ratio 0: the valid file is a copy of the test file, so RecBole's model "
              "selection (early stopping, best epoch) uses the test set, as in SR-GNN's original setup; "
              "the test results are then optimistic", file=sys.stderr)
    files = {f"{dataset}.{part}.inter": (lambda path, t=tables[part]: write_table(
        {SESSION_BASED_FIELDS[k]: v for k, v in t.items()}, path)) for part in PARTS}
    return files, stats, format_session_based(dataset, stats), []


def _write_config(spec: Recipe, dataset: str, params: dict, fields: list[str], path: Path) -> None:
    """The dataset keys of ``properties/dataset/<recipe>.yaml`` with this conversion's
    thresholds and any extra fields in ``load_col``; written next to the data as ``<name>.yaml``
    (our Config loads only ``properties/dataset/<name>.yaml`` by itself)."""
    file = properties_dir() / "dataset" / f"{spec.name}.yaml"
    config = yaml.safe_load(file.read_text(encoding="utf-8")) if file.is_file() else {}
    config = dict(config or {})
    config.pop("convert", None)
    if "session_gap" in params:
        config["session_gap"] = params["session_gap"]
    if fields:
        load_col = dict(config.get("load_col") or {})
        inter = list(load_col.get("inter") or [f.split(":")[0] for f in SESSION_AWARE_FIELDS.values()])
        load_col["inter"] = inter + [f.split(":")[0] for f in fields if f.split(":")[0] not in inter]
        config["load_col"] = load_col
    config["convert"] = _jsonable(params)
    comment = f"# dataset '{dataset}', converted with recipe '{spec.name}'\n"
    write_text(comment + yaml.safe_dump(config, sort_keys=False), path)
