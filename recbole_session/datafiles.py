"""Where a dataset's atomic files are, and building them with the converter when a recipe knows
the dataset (``ml-100k`` is built offline on first use).

A dataset ``X`` is the folder ``<data_path>/X/`` holding ``X.inter`` (or RecBole's benchmark
files ``X.train.inter`` ...). A dataset that the converter wrote under another name, or with a
preset, also holds ``X.yaml``, which :class:`recbole_session.config.Config` loads by itself.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from recbole_session.checks import check_item_count
from recbole_session.cli import UsageError, did_you_mean
from recbole_session.convert import ConvertError, convert, recipe_names
from recbole_session.literals import short

# RecBole's feature types (recbole.utils.FeatureType)
FEATURE_TYPES = ("token", "float", "token_seq", "float_seq")
# where a dataset is looked for when it is not in data_path (to name it in the error): the
# default data_path of the converter and of the package, relative to the working directory
DEFAULT_ROOT = "atomic_files"


def wanted_files(config) -> list[str]:
    """The atomic files RecBole will read for ``config``'s dataset."""
    name, benchmark = config["dataset"], config["benchmark_filename"]
    return [f"{name}.{part}.inter" for part in benchmark] if benchmark else [f"{name}.inter"]


def has_files(config) -> bool:
    data_dir = Path(config["data_path"])
    return all((data_dir / file).is_file() for file in wanted_files(config))


def datasets_in(root: str | Path) -> list[str]:
    """The datasets of a data_path: its folders ``X`` holding ``X.inter`` or ``X.*.inter``."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                  and any(d.glob(f"{d.name}*.inter")))


def _elsewhere(name: str, root: Path) -> list[Path]:
    """Folders ``X/`` with X's files outside ``root``: under the default data_path, the working
    directory and its sub-folders."""
    seen = []
    for base in (Path(DEFAULT_ROOT), Path("."), *Path(".").glob("*/")):
        folder = base / name
        if folder.resolve() == (root / name).resolve() or folder.resolve() in [s.resolve() for s in seen]:
            continue
        if (folder / f"{name}.yaml").is_file() or any(folder.glob(f"{name}*.inter")):
            seen.append(folder)
    return seen


def unknown_dataset(config) -> UsageError:
    """The one-line error for a dataset that has no atomic files and no converter recipe."""
    name = config["dataset"]
    data_dir = Path(config["data_path"])
    root = data_dir.parent
    present = datasets_in(root)
    recipes = recipe_names()
    guess = did_you_mean(name, [*present, *recipes])
    message = f"unknown dataset '{name}'" + (f": did you mean {guess}?" if guess else "")
    message += f" (no {' / '.join(wanted_files(config))} in {data_dir}"
    found = _elsewhere(name, root)
    if found:
        own = found[0] / f"{name}.yaml"
        message += f"; found {own if own.is_file() else str(found[0]) + '/'}: give --data_path={found[0].parent}"
    message += f"; datasets in {root}: {', '.join(present) or 'none'}; converter recipes: {', '.join(recipes)})"
    return UsageError(message)


def check_dataset(config) -> None:
    """Before anything is loaded: refuse a dataset that has no files and no recipe, and check
    the files it has (:func:`check_atomic_file`) and their item count against the run's top-k
    and protocols (:func:`recbole_session.checks.check_item_count`)."""
    if has_files(config):
        files = [Path(config["data_path"]) / file for file in wanted_files(config)]
        for file in files:
            check_atomic_file(file, config)
        check_item_count(config, count_items(files, config), "distinct item ids in its files")
    elif config["dataset"] not in recipe_names():
        raise unknown_dataset(config)


def count_items(files: list[Path], config) -> int:
    """Distinct item ids over interaction files (one column read; RecBole's filters may leave
    fewer, which :func:`recbole_session.build.build` checks again)."""
    sep = config["field_separator"] or "\t"
    encoding = config["encoding"] or "utf-8"
    ids: set[str] = set()
    for file in files:
        column = f"{config['ITEM_ID_FIELD']}:token"
        table = pacsv.read_csv(file, read_options=pacsv.ReadOptions(encoding=encoding),
                               parse_options=pacsv.ParseOptions(delimiter=sep),
                               convert_options=pacsv.ConvertOptions(include_columns=[column],
                                                                    column_types={column: pa.string()}))
        ids.update(table.column(column).unique().to_pylist())
    return len(ids)


def _required_fields(config) -> dict[str, str]:
    """The columns the run cannot do without, each with what needs it: user and item ids, the
    time when the interactions are ordered by it, and the session id for ``eval_split:
    last_session``."""
    required = {config["USER_ID_FIELD"]: "RecBole", config["ITEM_ID_FIELD"]: "RecBole"}
    eval_args = config["eval_args"] or {}
    if config["TIME_FIELD"] and not config["benchmark_filename"] and eval_args.get("order") == "TO":
        required[config["TIME_FIELD"]] = "RecBole"
    if config["eval_split"] == "last_session":  # a literal: recbole_session.data.split imports RecBole
        required[config["SESSION_ID_FIELD"] or "SESSION_ID_FIELD"] = "eval_split: last_session"
    return {field: who for field, who in required.items() if field}


def _loaded(config, name: str) -> bool:
    load_col = config["load_col"]
    if not isinstance(load_col, dict) or "inter" not in load_col:
        return True
    return name in (load_col["inter"] or [])


def check_atomic_file(path: Path, config) -> None:
    """The header of an interaction file (``name:type`` fields, the required columns) and its
    float columns, as RecBole will read them; a :class:`UsageError` names the file, line and
    column of the first problem."""
    sep = config["field_separator"] or "\t"
    encoding = config["encoding"] or "utf-8"
    try:
        with open(path, encoding=encoding, newline="") as handle:
            header = handle.readline().rstrip("\r\n")
            first_row = handle.readline()
    except UnicodeDecodeError:
        raise UsageError(f"{path}, line 1: not {encoding} text (set the key encoding)") from None
    example = sep.join(("user_id:token", "item_id:token", "timestamp:float"))
    if not header:
        raise UsageError(f"{path}: empty file: expected a header of name:type fields, e.g. {example!r}")
    fields: dict[str, str] = {}
    for number, column in enumerate(header.split(sep), start=1):
        name, colon, ftype = column.partition(":")
        if not colon or not name or ftype not in FEATURE_TYPES:
            raise UsageError(f"{path}, line 1, column {number} '{column}': expected name:type with type "
                             f"{', '.join(FEATURE_TYPES)} (fields separated by {sep!r})")
        fields[name] = ftype
    for name, who in _required_fields(config).items():
        if name not in fields:
            raise UsageError(f"{path}, line 1: column '{name}' missing (the header has {', '.join(fields)}); "
                             + (f"expected e.g. {example!r}" if who == "RecBole" else f"{who} needs it"))
        if not _loaded(config, name):
            raise UsageError(f"bad value load_col: {short(config['load_col'])}: its 'inter' list leaves out "
                             f"'{name}', which {who} needs")
    if not first_row.strip():
        raise UsageError(f"{path}: no rows after the header line")
    floats = [f"{name}:float" for name, ftype in fields.items() if ftype == "float" and _loaded(config, name)]
    if floats:
        _check_floats(path, sep, encoding, floats)


def _check_floats(path: Path, sep: str, encoding: str, columns: list[str]) -> None:
    try:
        pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding=encoding),
                       parse_options=pacsv.ParseOptions(delimiter=sep),
                       convert_options=pacsv.ConvertOptions(
                           include_columns=columns, column_types={c: pa.float64() for c in columns}))
        return
    except (pa.ArrowInvalid, ValueError):
        pass
    # find the line and column (arrow names neither): only on a file that failed
    with open(path, encoding=encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=sep)
        header = next(reader)
        index = {c: header.index(c) for c in columns}
        for line, row in enumerate(reader, start=2):
            for column, i in index.items():
                value = row[i] if i < len(row) else ""
                try:
                    float(value) if value.strip() else None
                except ValueError:
                    raise UsageError(f"{path}, line {line}, column {column}: {short(value)} is not a number") from None
            if len(row) != len(header):
                raise UsageError(f"{path}, line {line}: {len(row)} fields where the header has {len(header)}")


def ensure_atomic_files(config) -> Path:
    """The dataset's folder; converts it first when a recipe knows it and it is missing."""
    data_dir = Path(config["data_path"])
    if has_files(config):
        return data_dir
    if config["dataset"] not in recipe_names():
        raise unknown_dataset(config)
    try:
        convert(config["dataset"], out=data_dir.parent)
    except ConvertError as err:
        raise UsageError(str(err)) from None
    return data_dir
