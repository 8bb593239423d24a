"""The converter's one error type: bad input, reported as one line naming file, line and field."""

from __future__ import annotations

from pathlib import Path


class ConvertError(Exception):
    """Bad input for a conversion; the message names the file, line and field."""


def input_error(path: str | Path, message: str, line: int | None = None, field: str | None = None) -> ConvertError:
    """``<file>, line <n>, field '<f>': <message>`` (line and field left out when unknown)."""
    where = [str(path)]
    if line is not None:
        where.append(f"line {line}")
    if field is not None:
        where.append(f"field '{field}'")
    return ConvertError(f"{', '.join(where)}: {message}")
