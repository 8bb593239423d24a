"""Fast, strict readers of raw dumps.

The fast path is one pyarrow CSV read with typed columns (multi-threaded, no per-row Python).
Whenever pyarrow rejects the file or a vectorised check fails (a null, NaN, negative or
out-of-range time, a token holding a tab), a slow line-by-line :func:`diagnose` pass finds the
first offending line and reports it as one line naming file, line and field; that pass runs
only on bad input.

Columns are named by the header, or for a file without one by ``names`` (``--names``); a column
may also be given by its number, counted from 0 (``--user-col 0``).

Inside :func:`streamed` (the converter's ``--chunk-rows`` path) the same read runs block by block
(:data:`READ_BLOCK_BYTES` at a time) and keeps each text column as :class:`Coded` (int32 codes
into one dictionary of its distinct values) instead of one string per row: about 4 bytes a row
instead of ~30 for a short id. Values, checks and errors are the same; on a bad value the whole
read runs again to name it exactly as above.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import csv
import gzip
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recbole_session.convert.errors import ConvertError, input_error, option_error
from recbole_session.files import os_reason
from recbole_session.literals import short

GZIP_MAGIC = b"\x1f\x8b"
# arrow types per column kind; "time" and "num" are read as float64 and checked afterwards
ARROW_TYPES = {
    "int": pa.int64(),
    "str": pa.string(),
    "any": pa.string(),
    "num": pa.float64(),
    "time": pa.float64(),
    "iso": pa.timestamp("ms", tz="UTC"),
    "date": pa.date32(),
}
NULL_VALUES = ["", "NaN", "nan", "NA", "null", "NULL", "None"]
SEPARATOR_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "::": "'::'", "|": "'|'", " ": "space"}
SECONDS_PER_DAY = 86_400
INT64 = (-(2**63), 2**63 - 1)
# a unix time in seconds above this is after the year 5138: the file is in ms or us
MAX_SECONDS = 1e11
TIME_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000}
STRUCTURAL = "[\t\n\r]"  # characters an atomic (tab-separated, unquoted) file cannot hold
READ_BLOCK_BYTES = 64 << 20  # bytes parsed at a time by a streamed read (~2M rows of a short log)
# the block size of the streamed read in progress (0: read whole files); see streamed()
_STREAM_BLOCK: contextvars.ContextVar[int] = contextvars.ContextVar("stream_block", default=0)


@dataclass(frozen=True)
class Column:
    """A column to read: ``names`` are the accepted header names (or column numbers), ``kind``
    one of ``int`` (integer id within int64), ``str`` (a non-empty token without tab or line
    break), ``any`` (any text, may be empty), ``num`` (finite number), ``time`` (finite,
    non-negative time in 1/``unit`` seconds, at most :data:`MAX_SECONDS` seconds), ``iso`` (ISO
    8601 timestamp with zone, e.g. ``2014-04-07T10:51:09.277Z``) or ``date`` (``YYYY-MM-DD``);
    ``out`` the column's key in the result."""

    names: tuple[str, ...]
    kind: str
    out: str
    unit: int = 1  # time values per second (--time-unit)

    @property
    def name(self) -> str:
        return self.names[0]


@dataclass
class Events:
    """Session-aware rows as read, in file order: ``user``, ``item`` (numpy arrays or arrow
    string arrays), ``time`` (numpy, in 1/``unit`` seconds), extra output fields (atomic header
    -> values, e.g. ``event_type:token``) and the selections to apply before the filters
    (``(step, rule, mask)``, e.g. ``--keep`` or a minimum rating), in order."""

    user: Any
    item: Any
    time: np.ndarray
    unit: int = 1
    fields: dict[str, Any] = field(default_factory=dict)
    selections: list[tuple[str, str, np.ndarray]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.time)


@dataclass
class Coded:
    """A text column as ``codes`` (int32, one per row) into ``dictionary`` (an arrow string array
    of distinct values): the streamed read's compact form of a ``str``/``any`` column."""

    codes: np.ndarray
    dictionary: pa.Array

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, index: np.ndarray) -> Coded:
        return Coded(self.codes[index], self.dictionary)

    def decode(self) -> pa.Array:
        """The values, as the whole read returns them."""
        return self.dictionary.take(pa.array(self.codes))

    def isin(self, values: list[str]) -> np.ndarray:
        """Per row: whether the value is one of ``values`` (a null is not)."""
        hit = pc.fill_null(pc.is_in(self.dictionary, value_set=pa.array(values)), False)
        return hit.to_numpy(zero_copy_only=False)[self.codes]


@contextlib.contextmanager
def streamed(active: bool = True) -> Iterator[None]:
    """While inside (and ``active``), :func:`read_table` reads block by block and returns text
    columns as :class:`Coded`."""
    token = _STREAM_BLOCK.set(READ_BLOCK_BYTES if active else 0)
    try:
        yield
    finally:
        _STREAM_BLOCK.reset(token)


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def check_file(path: Path) -> None:
    """The file exists, is a file and can be read (``permission denied`` otherwise)."""
    try:
        if not path.exists():
            raise input_error(path, "file not found")
        if not path.is_file():
            raise input_error(path, "not a file")
        with open(path, "rb") as fh:
            fh.read(1)
    except ConvertError:
        raise
    except OSError as err:
        raise input_error(path, f"cannot read the file: {os_reason(err)}") from None


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line without its end)``, strictly UTF-8 (a line holding another encoding
    is a ConvertError naming it), gunzipped on the fly when the file starts with the gzip magic
    bytes; a truncated or corrupt gzip is a ConvertError naming the last complete line."""
    number = 0
    gzipped = is_gzip(path)
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as fh:
            for number, raw in enumerate(fh, start=1):  # noqa: B007  (number used below)
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise input_error(path, f"not UTF-8 text: byte 0x{raw[err.start]:02x} at character "
                                            f"{err.start + 1} (re-encode the file, e.g. iconv -f latin1 "
                                            f"-t utf-8)", line=number) from None
                yield number, line.rstrip("\r\n").lstrip("\ufeff") if number == 1 else line.rstrip("\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise input_error(path, f"truncated or corrupt gzip data after this line ({err})", line=number) from None
    except OSError as err:
        if isinstance(err, ConvertError):
            raise
        raise input_error(path, f"cannot read the file: {os_reason(err)}", line=number or None) from None


def _split(line: str, sep: str) -> list[str]:
    if len(sep) == 1:
        return next(csv.reader([line], delimiter=sep))
    return line.split(sep)


def _separator_hint(line: str, sep: str) -> str:
    for other, label in SEPARATOR_NAMES.items():
        if other != sep and other in line and other != " ":
            return f" (expected {SEPARATOR_NAMES.get(sep, repr(sep))}-separated values; this line looks {label}-separated)"
    return f" (expected {SEPARATOR_NAMES.get(sep, repr(sep))}-separated values)"


def check_value(col: Column, value: str) -> str | None:
    """Why ``value`` is not a valid value of ``col``, or ``None`` when it is."""
    kind = col.kind
    if kind == "any":
        return None
    if kind == "str":
        if not value.strip():
            return "empty value"
        if any(c in value for c in "\t\n\r"):
            return f"the value holds a tab or line break, which an atomic file cannot hold: {short(value)}"
        return None
    if kind == "int":
        try:
            number = int(value)
        except ValueError:
            return f"not an integer id: {short(value)}"
        if not INT64[0] <= number <= INT64[1]:
            return f"integer id beyond the 64-bit range: {short(value)} (read ids as tokens with the csv recipe)"
        return None
    if kind in ("num", "time"):
        try:
            number = float(value)
        except ValueError:
            return f"not a number: {short(value)}"
        if math.isnan(number):
            return f"NaN: {short(value)}"
        if math.isinf(number):
            return f"not finite: {short(value)}"
        if kind == "time" and number < 0:
            return f"negative time: {short(value)}"
        if kind == "time" and number > MAX_SECONDS * col.unit:
            return f"time {value} is out of range: {_unit_name(col.unit)} after the year 5138 ({_limit(col.unit)})"
        return None
    if kind == "iso":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return f"not an ISO 8601 timestamp: {short(value)}"
        return None if parsed.tzinfo is not None else f"timestamp without zone (expected e.g. 2014-04-07T10:51:09.277Z): {short(value)}"
    if kind == "date":
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            return f"not a YYYY-MM-DD date: {short(value)}"
        return None
    raise ValueError(f"unknown column kind {kind!r}")


def _unit_name(unit: int) -> str:
    return {1: "seconds", 1_000: "milliseconds", 1_000_000: "microseconds"}[unit]


def _limit(unit: int) -> str:
    return f"expected unix {_unit_name(unit)} up to {MAX_SECONDS * unit:.0e}"


def diagnose(path: Path, sep: str, fields: list[str], columns: list[Column], header: bool) -> ConvertError | None:
    """Scan the file line by line and return the error of the first bad line (slow; runs only
    after the fast read failed)."""
    index = {col.out: find_column(fields, col) for col in columns}
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
            problem = check_value(col, values[index[col.out]])
            if problem:
                return input_error(path, problem, line=number, field=fields[index[col.out]])
        rows += 1
    if rows == 0:
        return input_error(path, "no data rows", line=2 if header else 1)
    return None


def find_column(fields: list[str], col: Column) -> int:
    """The position of ``col`` among ``fields``: by name, else by number (from 0)."""
    for name in col.names:
        if name in fields:
            return fields.index(name)
    for name in col.names:
        if name.isdigit() and int(name) < len(fields):
            return int(name)
    raise KeyError(col.name)


def _first_line(path: Path) -> str:
    for _number, line in numbered_lines(path):
        return line
    return ""


def _looks_like_data(values: list[str]) -> bool:
    for value in values:
        try:
            float(value)
            return True
        except ValueError:
            continue
    return False


def read_header(path: Path, sep: str, columns: list[Column]) -> list[str]:
    """The header's field names, checked: present, no duplicates, every needed column there."""
    first = _first_line(path)
    if not first.strip():
        raise input_error(path, "empty file (expected a header line)", line=1)
    fields = [f.strip() for f in _split(first, sep)]
    data_hint = ""
    if len(fields) > 1 and _looks_like_data(fields):
        data_hint = (" (this line looks like data: for a file without header add --no-header, and name the "
                     "columns with --names a,b,c or give them by number from 0)")
    seen = set()
    for name in fields:
        if name in seen:
            raise input_error(path, "duplicate column in the header" + data_hint, line=1, field=name)
        seen.add(name)
    for col in columns:
        try:
            find_column(fields, col)
        except KeyError:
            accepted = " or ".join(repr(n) for n in col.names)
            raise input_error(path, f"missing column {accepted} in the header {fields}"
                              + (data_hint or _separator_hint(first, sep)), line=1, field=col.name) from None
    return fields


def headerless_fields(path: Path, sep: str, names: list[str] | None, columns: list[Column]) -> list[str]:
    """The field names of a file without header: ``names`` (checked against the first line's
    field count), or the column numbers ``0, 1, ...``."""
    first = _first_line(path)
    if not first.strip():
        raise input_error(path, "empty file", line=1)
    count = len(_split(first, sep))
    if names:
        if len(names) != count:
            raise input_error(path, f"--names gives {len(names)} names but the line has {count} fields"
                              + _separator_hint(first, sep), line=1)
        if len(set(names)) != len(names):
            raise option_error("--names", f"duplicate name in {','.join(names)}")
        fields = list(names)
    else:
        fields = [str(i) for i in range(count)]
    for col in columns:
        try:
            find_column(fields, col)
        except KeyError:
            known = f"--names {','.join(fields)}" if names else f"columns 0..{count - 1} (or name them with --names)"
            raise input_error(path, f"no column {short(col.name)} among {known}", line=1, field=col.name) from None
    return fields


def read_table(
    path: Path,
    columns: list[Column],
    sep: str,
    header: bool | str = True,
    names: list[str] | None = None,
) -> dict[str, Any]:
    """Read ``columns`` of a delimited (optionally gzipped) file.

    ``header``: ``True`` (first line names the fields), ``False`` (``names`` gives them, or they
    are numbered from 0) or ``"auto"`` (a first line whose first field is not a number is a
    header; e.g. a YOOCHOOSE file to which a header was added as SR-GNN's README suggests).
    ``sep`` may be one character or one character repeated (``::``). Returns one array per
    ``Column.out``: ``int`` as int64 numpy, ``str``/``any`` as an arrow string array (no Python
    object per row), ``num``/``time`` as float64 numpy (``time`` as int64 when every value is
    whole), ``iso`` as int64 unix milliseconds, ``date`` as int64 unix seconds (midnight UTC).
    Every value is checked first.
    """
    path = Path(path)
    check_file(path)
    if path.stat().st_size == 0:
        raise input_error(path, "empty file", line=1)
    if not sep or (len(sep) > 1 and set(sep) != {sep[0]}):
        raise option_error("--sep", f"unsupported separator {sep!r}: one character, or one character repeated")
    if header == "auto":
        header = _looks_like_header(path, sep)
    fields = read_header(path, sep, columns) if header else headerless_fields(path, sep, names, columns)
    # "::" is read as ':' with an empty column between any two fields
    step = len(sep)
    arrow_names = []
    for i, name in enumerate(fields):
        arrow_names.append(name)
        if i < len(fields) - 1:
            arrow_names.extend(f"__gap{i}_{k}" for k in range(step - 1))
    wanted: dict[int, list[Column]] = {}
    for col in columns:
        wanted.setdefault(find_column(fields, col), []).append(col)
    # a column read twice (e.g. --keep on the item column) is read with its strictest kind
    types = {fields[i]: ARROW_TYPES[cols[0].kind] for i, cols in wanted.items()}
    # whole-second times parse faster as integers: try that first, floats if it fails
    int_times = {fields[i]: pa.int64() for i, cols in wanted.items() if cols[0].kind == "time"}
    attempts = [{**types, **int_times}, types] if int_times else [types]
    if _STREAM_BLOCK.get():
        read = _read_streamed(path, fields, arrow_names, wanted, attempts, header, sep)
        if read is not None:
            return read
        # a parse error or a bad value: the whole read below names it as usual
    table, error = None, None
    for attempt in attempts:
        try:
            table = pacsv.read_csv(
                pa.input_stream(str(path), compression="gzip") if is_gzip(path) else str(path),
                read_options=pacsv.ReadOptions(column_names=arrow_names, skip_rows=1 if header else 0),
                parse_options=pacsv.ParseOptions(delimiter=sep[0]),
                convert_options=pacsv.ConvertOptions(
                    include_columns=[fields[i] for i in sorted(wanted)],
                    column_types=attempt,
                    null_values=NULL_VALUES,
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
    result = {}
    for i, cols in wanted.items():
        # one chunk: numpy then views arrow's memory instead of copying it again
        array = table.column(fields[i]).combine_chunks()
        for col in cols:
            if not _valid(array, col):
                _check_time_unit(path, array, col, fields[i], 2 if header else 1)
                raise (diagnose(path, sep, fields, columns, bool(header))
                       or input_error(path, "bad value", field=fields[i]))
            result[col.out] = _convert(array, col.kind)
    return result


def _read_streamed(path: Path, fields: list[str], arrow_names: list[str], wanted: dict[int, list[Column]],
                   attempts: list[dict], header: bool, sep: str) -> dict[str, Any] | None:
    """:func:`read_table`'s read, block by block, text as :class:`Coded`; ``None`` when a type
    attempt fails on every block's types or a value is bad (the caller then reads it whole)."""
    for attempt in attempts:
        parts: dict[str, list] = {col.out: [] for cols in wanted.values() for col in cols}
        try:
            reader = pacsv.open_csv(
                pa.input_stream(str(path), compression="gzip") if is_gzip(path) else str(path),
                read_options=pacsv.ReadOptions(column_names=arrow_names, skip_rows=1 if header else 0,
                                               block_size=_STREAM_BLOCK.get()),
                parse_options=pacsv.ParseOptions(delimiter=sep[0]),
                convert_options=pacsv.ConvertOptions(
                    include_columns=[fields[i] for i in sorted(wanted)], column_types=attempt,
                    null_values=NULL_VALUES, strings_can_be_null=True, timestamp_parsers=[pacsv.ISO8601]),
            )
            for batch in reader:
                for i, cols in wanted.items():
                    array = batch.column(batch.schema.get_field_index(fields[i]))
                    for col in cols:
                        if not _valid(array, col):
                            return None
                        parts[col.out].append(_compact(array, col.kind))
                del batch, array
                # the parsed block is freed; give its memory back rather than let the pool keep
                # it (its peak would otherwise grow with the file)
                pa.default_memory_pool().release_unused()
        except (pa.ArrowInvalid, pa.ArrowKeyError, pa.ArrowNotImplementedError, OSError, EOFError):
            continue
        if not any(len(chunk) for chunk in next(iter(parts.values()))):
            return None  # no data rows
        kinds = {col.out: col.kind for cols in wanted.values() for col in cols}
        # one column at a time, its blocks freed as soon as it is joined: one copy at most
        return {out: _joined(parts.pop(out), kinds[out]) for out in list(parts)}
    return None


def _compact(array: pa.Array, kind: str) -> Any:
    """One block's column: text as (codes, block dictionary), times as read, the rest as the
    whole read converts them."""
    if kind in ("str", "any"):
        encoded = pc.dictionary_encode(array, null_encoding="encode")
        return encoded.indices.to_numpy(), encoded.dictionary
    if kind == "time":
        return array.to_numpy()
    return _convert(array, kind)


def _joined(chunks: list, kind: str) -> Any:
    """The blocks of one column as one: text as :class:`Coded` over one dictionary, times as
    int64 when every value is whole (as :func:`_convert`)."""
    if kind in ("str", "any"):
        dictionaries = pa.chunked_array([d for _, d in chunks], type=chunks[0][1].type)
        merged = pc.dictionary_encode(dictionaries, null_encoding="encode")
        merged = merged.combine_chunks() if isinstance(merged, pa.ChunkedArray) else merged
        code_of = merged.indices.to_numpy()  # each block's dictionary entry -> its merged code
        codes = np.empty(sum(len(c) for c, _ in chunks), dtype=np.int32)
        row = entry = 0
        for block_codes, dictionary in chunks:
            codes[row: row + len(block_codes)] = code_of[entry: entry + len(dictionary)][block_codes]
            row, entry = row + len(block_codes), entry + len(dictionary)
        return Coded(codes, merged.dictionary)
    values = np.concatenate(chunks)
    if kind == "time" and values.dtype.kind == "f" and len(values) and np.all(values == np.floor(values)):
        return values.astype(np.int64)
    return values


def is_in(values: Any, wanted: list[str]) -> np.ndarray:
    """Per row of an arrow string array or a :class:`Coded`: whether it is one of ``wanted``."""
    if isinstance(values, Coded):
        return values.isin(wanted)
    return pc.fill_null(pc.is_in(values, value_set=pa.array(wanted)), False).to_numpy(zero_copy_only=False)


def _valid(array: pa.Array, col: Column) -> bool:
    """No null (but in ``any``), and for numbers no NaN or infinity (times: nothing negative or
    out of range either); for tokens, nothing blank and no tab or line break. Vectorised."""
    kind = col.kind
    if kind == "any":
        return True
    if array.null_count > 0:
        return False
    if kind in ("num", "time") and pa.types.is_floating(array.type):
        if pc.any(pc.invert(pc.is_finite(array))).as_py():
            return False
    if kind == "time" and len(array):
        low, high = pc.min_max(array).values()
        if low.as_py() < 0 or high.as_py() > MAX_SECONDS * col.unit:
            return False
    if kind == "str":
        if pc.any(pc.equal(pc.utf8_trim_whitespace(array), "")).as_py():
            return False
        if pc.any(pc.match_substring_regex(array, STRUCTURAL)).as_py():
            return False
    return True


def _check_time_unit(path: Path, array: pa.Array, col: Column, field_name: str, line: int) -> None:
    """Every time above the range of ``--time-unit``: the file is in a finer unit; say which."""
    if col.kind != "time" or array.null_count or not len(array):
        return
    if pa.types.is_floating(array.type) and not pc.all(pc.is_finite(array)).as_py():
        return
    low = pc.min(array).as_py()
    if low <= MAX_SECONDS * col.unit:
        return
    seconds = low / col.unit
    finer = next((name for name, unit in TIME_UNITS.items() if unit > col.unit and seconds / unit * col.unit <= MAX_SECONDS), None)
    if finer is None:
        raise input_error(path, f"every time is beyond the year 5138 even in microseconds (the smallest is {low}); "
                                f"expected unix seconds, milliseconds or microseconds", line=line, field=field_name)
    raise input_error(path, f"every time is above {MAX_SECONDS * col.unit:.0e} {_unit_name(col.unit)} (after the "
                            f"year 5138; the smallest is {low}): they look like {_unit_name(TIME_UNITS[finer])}, "
                            f"add --time-unit {finer}", line=line, field=field_name)


def _convert(array: pa.Array, kind: str) -> Any:
    if kind == "iso":
        return array.cast(pa.int64()).to_numpy()
    if kind == "date":
        return array.cast(pa.int32()).to_numpy().astype(np.int64) * SECONDS_PER_DAY
    if kind in ("str", "any"):
        return array
    if kind == "time" and pa.types.is_floating(array.type) and len(array):
        if pc.all(pc.equal(array, pc.floor(array))).as_py():
            return array.cast(pa.int64()).to_numpy()
    return array.to_numpy()


def _looks_like_header(path: Path, sep: str) -> bool:
    first = _first_line(path)
    if not first:
        return False
    try:
        float(_split(first, sep)[0].strip())
    except ValueError:
        return True
    return False


def time_unit(params: dict) -> int:
    """``time_unit`` (``--time-unit``: s, ms or us) as time values per second."""
    unit = str(params.get("time_unit") or "s")
    if unit not in TIME_UNITS:
        raise option_error("--time-unit", f"expected one of {', '.join(TIME_UNITS)}, not {short(unit)}")
    return TIME_UNITS[unit]


def parse_keep(specs: list[str] | str | None) -> list[tuple[str, list[str]]]:
    """``--keep COLUMN=VALUE[,VALUE]`` (repeatable) as ``(column, values)`` pairs."""
    if not specs:
        return []
    out = []
    for spec in [specs] if isinstance(specs, str) else specs:
        column, sep, values = str(spec).partition("=")
        kept = [v for v in values.split(",") if v != ""]
        if not sep or not column.strip() or not kept:
            raise option_error("--keep", f"expected COLUMN=VALUE[,VALUE], not {short(spec)}")
        out.append((column.strip(), kept))
    return out


def names_list(names: list[str] | str | None) -> list[str] | None:
    """``--names a,b,c`` as a list (``None`` when not given)."""
    if names is None or names == "" or names == []:
        return None
    items = names.split(",") if isinstance(names, str) else [str(n) for n in names]
    items = [n.strip() for n in items]
    if any(not n for n in items):
        raise option_error("--names", f"expected comma-separated column names, not {','.join(items)!r}")
    return items


def read_events(path: Path, params: dict, user: Column, item: Column, time: Column, sep: str,
                header: bool = True, names: list[str] | None = None,
                columns: list[Column] = ()) -> tuple[Events, dict[str, Any]]:
    """Read session-aware rows with the options every table recipe shares: ``time_unit``,
    ``keep`` (``--keep COLUMN=VALUE[,VALUE]``, each a selection step before the filters),
    ``type_col`` (kept as ``event_type:token``) and ``weight`` (kept as ``weight:float``).
    ``columns`` are further columns the recipe needs; returns the events and every column read."""
    unit = time_unit(params)
    time = Column(time.names, "time", time.out, unit)
    keep = parse_keep(params.get("keep"))
    wanted = [user, item, time, *columns]
    wanted += [Column((column,), "any", f"keep:{k}") for k, (column, _values) in enumerate(keep)]
    extra = {}
    if params.get("type_col") not in (None, ""):
        wanted.append(Column((str(params["type_col"]),), "str", "event_type"))
        extra["event_type"] = "event_type:token"
    if params.get("weight") not in (None, ""):
        wanted.append(Column((str(params["weight"]),), "num", "weight"))
        extra["weight"] = "weight:float"
    read = read_table(path, wanted, sep=sep, header=header, names=names)
    events = Events(read["user"], read["item"], read["time"], unit,
                    {header_: read[out] for out, header_ in extra.items()})
    for k, (column, values) in enumerate(keep):
        events.selections.append(("keep", f"{column} in {','.join(values)}", is_in(read[f"keep:{k}"], values)))
    return events, read


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
            if any(c in str(value) for c in "\t\n\r"):
                raise input_error(path, f"the value holds a tab or line break, which an atomic file cannot "
                                        f"hold: {short(str(value))}", line=number, field=key)
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
        raise input_error(path, f"not a {shown} date: {short(values.iloc[row])}", line=line, field=field)
    return parsed.to_numpy().astype("datetime64[s]").astype(np.int64)
