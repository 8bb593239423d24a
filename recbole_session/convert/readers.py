"""Fast, strict readers of raw dumps.

The fast path is one pyarrow CSV read with typed columns (multi-threaded, no per-row Python).
Whenever pyarrow rejects the file or a vectorised check fails (a null, NaN or negative time),
a slow line-by-line :func:`diagnose` pass finds the first offending line and reports it as one
line naming file, line and field; that pass runs only on bad input.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recbole_session.convert.errors import ConvertError, input_error

GZIP_MAGIC = b"\x1f\x8b"
# arrow types per column kind; "time" and "num" are read as float64 and checked afterwards
ARROW_TYPES = {
    "int": pa.int64(),
    "str": pa.string(),
    "num": pa.float64(),
    "time": pa.float64(),
    "iso": pa.timestamp("ms", tz="UTC"),
    "date": pa.date32(),
}
SEPARATOR_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "::": "'::'", "|": "'|'", " ": "space"}
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Column:
    """A column to read: ``names`` are the accepted header names (the first one for a file
    without header), ``kind`` one of ``int`` (integer id), ``str`` (any non-empty token),
    ``num`` (finite number), ``time`` (finite, non-negative seconds), ``iso`` (ISO 8601
    timestamp with zone, e.g. ``2014-04-07T10:51:09.277Z``) or ``date`` (``YYYY-MM-DD``);
    ``out`` the column name in the returned frame."""

    names: tuple[str, ...]
    kind: str
    out: str

    @property
    def name(self) -> str:
        return self.names[0]


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def check_file(path: Path) -> None:
    if not path.exists():
        raise input_error(path, "file not found")
    if not path.is_file():
        raise input_error(path, "not a file")


def open_text(path: Path) -> io.TextIOBase:
    """The file as text, gunzipped on the fly when it starts with the gzip magic bytes."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line without its end)``; a truncated or corrupt gzip is a ConvertError
    naming the last complete line."""
    number = 0
    try:
        with open_text(path) as fh:
            for number, line in enumerate(fh, start=1):  # noqa: B007  (number used below)
                yield number, line.rstrip("\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
        raise input_error(path, f"truncated or corrupt gzip data after this line ({err})", line=number) from None


def _split(line: str, sep: str) -> list[str]:
    if len(sep) == 1:
        return next(csv.reader([line], delimiter=sep))
    return line.split(sep)


def _separator_hint(line: str, sep: str) -> str:
    for other, label in SEPARATOR_NAMES.items():
        if other != sep and other in line and other != " ":
            return f" (expected {SEPARATOR_NAMES.get(sep, repr(sep))}-separated values; this line looks {label}-separated)"
    return f" (expected {SEPARATOR_NAMES.get(sep, repr(sep))}-separated values)"


def check_value(kind: str, value: str) -> str | None:
    """Why ``value`` is not a valid ``kind`` value, or ``None`` when it is."""
    if kind == "str":
        return None if value.strip() else "empty value"
    if kind == "int":
        try:
            int(value)
        except ValueError:
            return f"not an integer id: {value!r}"
        return None
    if kind in ("num", "time"):
        try:
            number = float(value)
        except ValueError:
            return f"not a number: {value!r}"
        if math.isnan(number):
            return f"NaN: {value!r}"
        if math.isinf(number):
            return f"not finite: {value!r}"
        if kind == "time" and number < 0:
            return f"negative time: {value!r}"
        return None
    if kind == "iso":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return f"not an ISO 8601 timestamp: {value!r}"
        return None if parsed.tzinfo is not None else f"timestamp without zone (expected e.g. 2014-04-07T10:51:09.277Z): {value!r}"
    if kind == "date":
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            return f"not a YYYY-MM-DD date: {value!r}"
        return None
    raise ValueError(f"unknown column kind {kind!r}")


def diagnose(path: Path, sep: str, fields: list[str], columns: list[Column], header: bool) -> ConvertError | None:
    """Scan the file line by line and return the error of the first bad line (slow; runs only
    after the fast read failed)."""
    index = {col.out: _find(fields, col) for col in columns}
    rows = 0
    for number, line in numbered_lines(path):
        if header and number == 1:
            continue
        if not line.strip():
            continue
        values = _split(line, sep)
        if header and values == fields:
            return input_error(path, "duplicate header line", line=number)
        if len(values) != len(fields):
            return input_error(path, f"expected {len(fields)} fields, found {len(values)}"
                               + _separator_hint(line, sep), line=number)
        for col in columns:
            problem = check_value(col.kind, values[index[col.out]])
            if problem:
                return input_error(path, problem, line=number, field=fields[index[col.out]])
        rows += 1
    if rows == 0:
        return input_error(path, "no data rows", line=2 if header else 1)
    return None


def _find(fields: list[str], col: Column) -> int:
    for name in col.names:
        if name in fields:
            return fields.index(name)
    raise KeyError(col.name)


def read_header(path: Path, sep: str, columns: list[Column]) -> list[str]:
    """The header's field names, checked: present, no duplicates, every needed column there."""
    first = None
    for _number, line in numbered_lines(path):
        first = line
        break
    if first is None or not first.strip():
        raise input_error(path, "empty file (expected a header line)", line=1)
    fields = [f.strip() for f in _split(first.lstrip("\ufeff"), sep)]
    seen = set()
    for name in fields:
        if name in seen:
            raise input_error(path, "duplicate column in the header", line=1, field=name)
        seen.add(name)
    for col in columns:
        if not any(name in fields for name in col.names):
            accepted = " or ".join(repr(n) for n in col.names)
            raise input_error(path, f"missing column {accepted} in the header {fields}"
                              + _separator_hint(first, sep), line=1, field=col.name)
    return fields


def read_table(
    path: Path,
    columns: list[Column],
    sep: str,
    header: bool | str = True,
    names: list[str] | None = None,
    keep: Callable[[dict[str, pa.ChunkedArray]], pa.ChunkedArray] | None = None,
) -> pd.DataFrame:
    """Read ``columns`` of a delimited (optionally gzipped) file into a frame.

    ``header``: ``True`` (first line names the fields), ``False`` (``names`` gives them) or
    ``"auto"`` (a first line whose first field is not a number is a header; e.g. a YOOCHOOSE
    file to which a header was added as SR-GNN's README suggests). ``sep`` may be one character
    or one character repeated (``::``). Returns one column per ``Column.out``: ``int`` as int64,
    ``str`` as object, ``num``/``time`` as float64 (``time`` as int64 when every value is whole),
    ``iso`` as int64 unix milliseconds, ``date`` as int64 unix seconds (midnight UTC). Every
    value is checked first; ``keep`` (arrow columns by ``out`` name -> boolean mask) then drops
    rows before anything is converted to numpy (arrays are read-only views of arrow memory).
    """
    path = Path(path)
    check_file(path)
    if path.stat().st_size == 0:
        raise input_error(path, "empty file", line=1)
    if not sep or (len(sep) > 1 and set(sep) != {sep[0]}):
        raise ConvertError(f"unsupported separator {sep!r}: one character, or one character repeated")
    if header == "auto":
        header = _looks_like_header(path, sep)
    if header:
        fields = read_header(path, sep, columns)
    else:
        fields = list(names or [])
        if not fields:
            raise ValueError("names are needed for a file without header")
    # "::" is read as ':' with an empty column between any two fields
    step = len(sep)
    arrow_names = []
    for i, name in enumerate(fields):
        arrow_names.append(name)
        if i < len(fields) - 1:
            arrow_names.extend(f"__gap{i}_{k}" for k in range(step - 1))
    wanted = {_find(fields, col): col for col in columns}
    types = {fields[i]: ARROW_TYPES[col.kind] for i, col in wanted.items()}
    # whole-second times parse faster as integers: try that first, floats if it fails
    int_times = {fields[i]: pa.int64() for i, col in wanted.items() if col.kind == "time"}
    table = None
    for attempt in ([{**types, **int_times}, types] if int_times else [types]):
        try:
            table = pacsv.read_csv(
                pa.input_stream(str(path), compression="gzip") if is_gzip(path) else str(path),
                read_options=pacsv.ReadOptions(column_names=arrow_names, skip_rows=1 if header else 0),
                parse_options=pacsv.ParseOptions(delimiter=sep[0]),
                convert_options=pacsv.ConvertOptions(
                    include_columns=[fields[i] for i in sorted(wanted)],
                    column_types=attempt,
                    null_values=["", "NaN", "nan", "NA", "null", "NULL", "None"],
                    strings_can_be_null=True,
                    timestamp_parsers=[pacsv.ISO8601],
                ),
            )
            break
        except (pa.ArrowInvalid, pa.ArrowKeyError, pa.ArrowNotImplementedError, OSError, EOFError) as err:
            error = err
    if table is None:
        raise (diagnose(path, sep, fields, columns, bool(header))
               or input_error(path, f"cannot be read: {str(error).splitlines()[0]}")) from None
    if table.num_rows == 0:
        raise input_error(path, "no data rows", line=2 if header else 1)
    for i, col in wanted.items():
        if not _valid(table.column(fields[i]), col.kind):
            raise (diagnose(path, sep, fields, columns, bool(header))
                   or input_error(path, "bad value", field=fields[i]))
    if keep is not None:
        table = table.filter(keep({col.out: table.column(fields[i]) for i, col in wanted.items()}))
    # one chunk per column: numpy then views arrow's memory instead of copying it (far cheaper
    # than numpy's own fresh allocations for tens of millions of rows)
    table = table.combine_chunks()
    frame = {col.out: _to_numpy(table.column(fields[i]), col.kind) for i, col in wanted.items()}
    return pd.DataFrame(frame, copy=False)  # no copy into consolidated blocks


def _valid(chunked: pa.ChunkedArray, kind: str) -> bool:
    """No null, and for numbers no NaN or infinity (times: nothing negative either); for
    tokens, nothing blank. Vectorised in arrow."""
    if chunked.null_count > 0:
        return False
    if kind in ("num", "time") and pa.types.is_floating(chunked.type):
        if pc.any(pc.invert(pc.is_finite(chunked))).as_py():
            return False
    if kind == "time" and len(chunked) and pc.min(chunked).as_py() < 0:
        return False
    if kind == "str" and pc.any(pc.equal(pc.utf8_trim_whitespace(chunked), "")).as_py():
        return False
    return True


def _to_numpy(chunked: pa.ChunkedArray, kind: str) -> np.ndarray:
    array = chunked.chunk(0) if chunked.num_chunks == 1 else pa.concat_arrays(chunked.chunks)
    if kind == "iso":
        return array.cast(pa.int64()).to_numpy()
    if kind == "date":
        return array.cast(pa.int32()).to_numpy().astype(np.int64) * SECONDS_PER_DAY
    if kind == "str":
        return array.to_numpy(zero_copy_only=False).astype(object)
    if kind == "time" and pa.types.is_floating(array.type) and len(array):
        if pc.all(pc.equal(array, pc.floor(array))).as_py():
            return array.cast(pa.int64()).to_numpy()
    return array.to_numpy()


def _looks_like_header(path: Path, sep: str) -> bool:
    for _number, line in numbered_lines(path):
        first = _split(line, sep)[0].strip() if line else ""
        try:
            float(first)
        except ValueError:
            return True
        return False
    return False


def read_python_literals(path: Path, keys: dict[str, str]) -> pd.DataFrame:
    """One Python-literal dict per line (the Steam dumps), parsed with ``ast.literal_eval``
    (never ``eval``). ``keys`` maps a dict key to its output column; every value is kept as a
    string; the column ``line`` holds each record's line number. Each bad line or missing key is
    a ConvertError naming the line."""
    check_file(path)
    columns: dict[str, list] = {out: [] for out in keys.values()}
    lines: list[int] = []
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as err:
            raise input_error(path, f"not a Python literal ({type(err).__name__})", line=number) from None
        if not isinstance(record, dict):
            raise input_error(path, f"expected a dict, found {type(record).__name__}", line=number)
        for key, out in keys.items():
            if key not in record:
                raise input_error(path, "missing key", line=number, field=key)
            value = record[key]
            if value is None or not str(value).strip():
                raise input_error(path, "empty value", line=number, field=key)
            columns[out].append(str(value))
        lines.append(number)
    if not lines:
        raise input_error(path, "no records", line=1)
    return pd.DataFrame({**columns, "line": np.asarray(lines, dtype=np.int64)})


def parse_dates(path: Path, values: pd.Series, field: str, fmt: str = "%Y-%m-%d", lines: np.ndarray | None = None) -> np.ndarray:
    """Vectorised ``fmt`` dates into unix seconds (midnight UTC); the first unparsable value is a
    ConvertError (``lines`` maps rows to line numbers; default row + 1)."""
    parsed = pd.to_datetime(values, format=fmt, errors="coerce")
    missing = parsed.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        line = int(lines[row]) if lines is not None else row + 1
        shown = fmt.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD")
        raise input_error(path, f"not a {shown} date: {values.iloc[row]!r}", line=line, field=field)
    return parsed.to_numpy().astype("datetime64[s]").astype(np.int64)
