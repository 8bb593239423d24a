"""The converter's one error type: bad input, reported as one line naming file, line and field
(or the option)."""

from __future__ import annotations

from pathlib import Path


class ConvertError(ValueError):
    """Bad input for a conversion; the message names the file, line and field, or the option."""


def input_error(path: str | Path, message: str, line: int | None = None, field: str | None = None) -> ConvertError:
    """``<file>, line <n>, field '<f>': <message>`` (line and field left out when unknown)."""
    where = [str(path)]
    if line is not None:
        where.append(f"line {line}")
    if field is not None:
        where.append(f"field '{field}'")
    return ConvertError(f"{', '.join(where)}: {message}")


def option_error(option: str, message: str) -> ConvertError:
    """``<--option>: <message>`` for a bad command-line value (or the same key of the API)."""
    return ConvertError(f"{option}: {message}")
