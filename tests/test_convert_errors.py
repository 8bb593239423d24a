"""Converter errors outside the bad-input table (``tests/test_bad_input_convert.py``, where the
former table of this file now lives): an unsafe archive is refused before anything is extracted,
and the real ``python -m`` entry point exits with status 2 and one line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from recbole_session.convert.download import extract
from recbole_session.convert.errors import ConvertError

ML20 = "userId,movieId,rating,timestamp\n"


def test_archive_with_parent_paths_is_refused_before_extracting(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "1::2::3::4\n")
        zf.writestr("../evil.txt", "x")
    archive = tmp_path / "ml-1m.zip"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(ConvertError, match=r"ml-1m.zip, field '\.\./evil.txt': archive member escapes"):
        extract(archive, tmp_path / "target")
    assert not (tmp_path / "evil.txt").exists() and not any((tmp_path / "target").iterdir())


def test_command_line_exit_code(tmp_path):
    """The real ``python -m`` entry point: exit status 2 and one line."""
    raw = tmp_path / "ratings.csv"
    raw.write_text(ML20 + "1,2,4.0,5\n1,x,4.0,6\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "recbole_session.convert", "ml-20m", "--raw", str(raw),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"python -m recbole_session.convert: error: {raw}, line 3, field 'movieId': not an integer id: 'x'"]
    assert not (tmp_path / "out").exists()
