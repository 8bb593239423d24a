"""The bad-input table: each case is one line on stderr naming file, line and field, exit code 2,
and no output at all."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from recbole_session.convert.__main__ import main
from recbole_session.convert.download import extract
from recbole_session.convert.errors import ConvertError

FIXTURES = Path(__file__).parent / "fixtures" / "convert"
ML20 = "userId,movieId,rating,timestamp\n"
STEAM_LINE = "{'username': 'a', 'product_id': '1', 'date': '2017-01-01'}\n"


def truncated_gzip() -> bytes:
    data = gzip.compress((FIXTURES / "steam_reviews.json").read_bytes() * 50)
    return data[: len(data) // 2]


# id, recipe, raw file name, content (None: the file is absent), where: (line, field), words
CASES = [
    ("missing file", "ml-20m", "ratings.csv", None, (None, None), "file not found"),
    ("wrong separator", "ml-20m", "ratings.csv", ML20.replace(",", "\t") + "1\t2\t4.0\t5\n",
     (1, "userId"), "tab-separated"),
    ("missing column", "ml-20m", "ratings.csv", "userId,movieId,rating\n1,2,4.0\n", (1, "timestamp"), "missing column"),
    ("non-numeric id", "ml-20m", "ratings.csv", ML20 + "1,2,4.0,5\n1,x7,4.0,6\n", (3, "movieId"), "not an integer"),
    ("non-numeric time", "ml-20m", "ratings.csv", ML20 + "1,2,4.0,5\n1,3,4.0,soon\n", (3, "timestamp"), "not a number"),
    ("empty file", "ml-20m", "ratings.csv", "", (1, None), "empty file"),
    ("header only", "ml-20m", "ratings.csv", ML20, (2, None), "no data rows"),
    ("truncated gzip", "steam", "steam_reviews.json.gz", truncated_gzip(), (None, None), "truncated"),
    ("duplicate header", "ml-20m", "ratings.csv", ML20 + "1,2,4.0,5\n" + ML20 + "1,3,4.0,6\n", (3, None),
     "duplicate header"),
    ("duplicate column", "ml-20m", "ratings.csv", "userId,movieId,rating,timestamp,userId\n1,2,4.0,5,1\n",
     (1, "userId"), "duplicate column"),
    ("NaN time", "ml-20m", "ratings.csv", ML20 + "1,2,4.0,5\n\n1,3,4.0,NaN\n", (4, "timestamp"), "NaN"),
    ("negative time", "ml-20m", "ratings.csv", ML20 + "1,2,4.0,5\n1,3,4.0,-60\n", (3, "timestamp"), "negative"),
    ("wrong field count", "ml-1m", "ratings.dat", "1::2::3::4\n1::2::3\n", (2, None), "expected 4 fields"),
    ("steam not a literal", "steam", "steam_reviews.json", STEAM_LINE + "{'username': 'b', \n", (2, None),
     "not a Python literal"),
    ("steam code is not run", "steam", "steam_reviews.json", "__import__('os').system('true')\n", (1, None),
     "not a Python literal"),
    ("steam missing key", "steam", "steam_reviews.json", STEAM_LINE + "{'username': 'b', 'date': '2017-01-01'}\n",
     (2, "product_id"), "missing key"),
    ("steam bad date", "steam", "steam_reviews.json", STEAM_LINE + "\n{'username': 'b', 'product_id': '1', 'date': 'May'}\n",
     (3, "date"), "YYYY-MM-DD"),
    ("yoochoose bad timestamp", "yoochoose-1-64", "yoochoose-clicks.dat",
     "1,2014-04-01T10:00:00.000Z,100,0\n1,yesterday,101,0\n", (2, "timestamp"), "ISO 8601"),
    ("diginetica bad date", "diginetica", "train-item-views.csv",
     "sessionId;userId;itemId;timeframe;eventdate\n1;;2;3;2016-01-01\n1;;2;3;01/02/2016\n", (3, "eventdate"), "date"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_no_output(case, tmp_path, capsys):
    _id, recipe, file, content, (line, field), words = case
    raw = tmp_path / "raw" / file
    raw.parent.mkdir()
    if content is not None:
        raw.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out"
    assert main([recipe, "--raw", str(raw), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("python -m recbole_session.convert: error: ")
    assert str(raw) in err and words in err
    if line is not None:
        assert f"line {line}" in err
    if field is not None:
        assert f"field '{field}'" in err
    assert not out.exists()


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
