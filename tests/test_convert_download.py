"""Downloads from a loopback HTTP server (127.0.0.1 only; nothing here touches the internet):
checksum, resume with HTTP Range after a broken transfer, servers that ignore ranges, safe
extraction, and a recipe converted end to end from its download."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from recbole_session.convert import RECIPES, ConvertError, Download, convert, recipe_names
from recbole_session.convert.__main__ import main
from recbole_session.convert.download import extract, fetch

FIXTURES = Path(__file__).parent / "fixtures" / "convert"


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


ML_1M_ZIP = zipped({"ml-1m/ratings.dat": (FIXTURES / "ratings.dat").read_bytes(), "ml-1m/README": b"x"})
BIG = bytes(range(256)) * 4096  # 1 MiB: several read blocks


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; ``/flaky/...`` breaks the first transfer halfway, ``/norange/...``
    ignores Range headers. Every request is logged as (path, Range header)."""

    def do_GET(self):  # noqa: N802  (http.server's name)
        server = self.server
        body = server.files.get(self.path.split("/", 2)[-1] if self.path.startswith(("/flaky/", "/norange/")) else self.path[1:])
        requested = self.headers.get("Range")
        server.log.append((self.path, requested))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if requested and not self.path.startswith("/norange/"):
            start = int(requested.split("=")[1].split("-")[0])
            if start >= len(body):  # RFC 9110: the full size in Content-Range
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        part = body[start:]
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if self.path.startswith("/flaky/") and self.path not in server.broken:
            server.broken.add(self.path)
            self.wfile.write(part[: len(part) // 2])
            self.close_connection = True
            return
        self.wfile.write(part)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(files: dict[str, bytes]) -> Iterator[str]:
    """Serve ``files`` on 127.0.0.1 (see :class:`Handler`); yields the base address."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files = files
    httpd.log, httpd.broken = [], set()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server():
    with serve({"ml-1m.zip": ML_1M_ZIP, "big.bin": BIG,
                "evil.zip": zipped({"ratings.dat": b"1::2::3::4\n", "../../evil.dat": b"x"})}) as httpd:
        yield httpd


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_fetch_verifies_checksums(server, tmp_path):
    target = fetch(f"{server.url}/big.bin", tmp_path / "big.bin", sha256(BIG), progress=False)
    assert target.read_bytes() == BIG
    md5 = "md5:" + hashlib.md5(BIG).hexdigest()
    assert fetch(f"{server.url}/big.bin", tmp_path / "b2.bin", md5, progress=False).read_bytes() == BIG
    with pytest.raises(ConvertError, match="checksum mismatch"):
        fetch(f"{server.url}/big.bin", tmp_path / "bad.bin", sha256(b"other"), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b2.bin", "big.bin"]  # nothing half-made


def test_broken_transfer_resumes_with_range(server, tmp_path):
    target = fetch(f"{server.url}/flaky/big.bin", tmp_path / "big.bin", sha256(BIG), progress=False)
    assert target.read_bytes() == BIG
    assert server.log == [("/flaky/big.bin", None), ("/flaky/big.bin", f"bytes={len(BIG) // 2}-")]


def test_partial_file_resumes_and_a_server_ignoring_ranges_restarts(server, tmp_path):
    (tmp_path / "big.bin.part").write_bytes(BIG[:1000])
    assert fetch(f"{server.url}/big.bin", tmp_path / "big.bin", sha256(BIG), progress=False).read_bytes() == BIG
    (tmp_path / "again.bin.part").write_bytes(b"garbage")
    got = fetch(f"{server.url}/norange/big.bin", tmp_path / "again.bin", sha256(BIG), progress=False)
    assert got.read_bytes() == BIG
    assert server.log == [("/big.bin", "bytes=1000-"), ("/norange/big.bin", "bytes=7-")]


def test_http_error_is_one_line(server, tmp_path):
    with pytest.raises(ConvertError, match="HTTP 404"):
        fetch(f"{server.url}/missing.zip", tmp_path / "missing.zip", progress=False)


@pytest.fixture
def local_ml_1m(server, monkeypatch):
    """The ml-1m recipe with its download address pointed at the loopback server."""
    recipe_names()
    spec = RECIPES["ml-1m"]

    def point(url: str, checksum: str | None):
        monkeypatch.setitem(RECIPES, "ml-1m", dataclasses.replace(
            spec, download=Download(url, checksum=checksum)))
    return point


def test_missing_raw_file_is_downloaded_extracted_and_converted(server, local_ml_1m, tmp_path):
    local_ml_1m(f"{server.url}/flaky/ml-1m.zip", sha256(ML_1M_ZIP))
    folder = convert("ml-1m", out=tmp_path, min_item_inter=1, min_user_inter=1, verbose=False)
    assert (tmp_path / ".raw" / "ml-1m" / "ml-1m" / "ratings.dat").read_bytes() == (FIXTURES / "ratings.dat").read_bytes()
    assert len((folder / "ml-1m.inter").read_text().splitlines()) == 1 + 8
    # --download into a folder given as --raw
    folder = convert("ml-1m", raw=tmp_path / "mine", out=tmp_path / "o2", download=True, min_item_inter=1,
                     min_user_inter=1, verbose=False)
    assert (tmp_path / "mine" / "ml-1m.zip").is_file() and (folder / "ml-1m.inter").is_file()


def test_download_errors_name_the_convert_command(server, local_ml_1m, tmp_path, capsys):
    local_ml_1m(f"{server.url}/ml-1m.zip", sha256(b"not it"))
    with pytest.raises(ConvertError, match=r"checksum mismatch.*python -m recbole_session.convert ml-1m --raw PATH"):
        convert("ml-1m", out=tmp_path, verbose=False)
    with pytest.raises(ConvertError, match="needs its raw file ratings.dat"):
        convert("ml-1m", out=tmp_path, download=False, verbose=False)
    local_ml_1m(f"{server.url}/evil.zip", None)
    with pytest.raises(ConvertError, match="escapes the target folder"):
        convert("ml-1m", out=tmp_path / "x", verbose=False)
    assert not list(tmp_path.rglob("evil.dat")) and not (tmp_path / "x" / "ml-1m").exists()
    # the command line: exit code 2, one line naming the archive and the member
    assert main(["ml-1m", "--out", str(tmp_path / "y"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "evil.zip, field '../../evil.dat': archive member escapes" in err
    assert not list(tmp_path.rglob("evil.dat")) and not (tmp_path / "y" / "ml-1m").exists()


def test_a_part_file_larger_than_the_remote_file_restarts(server, tmp_path):
    (tmp_path / "big.bin.part").write_bytes(BIG + b"junk at the end")
    assert fetch(f"{server.url}/big.bin", tmp_path / "big.bin", progress=False).read_bytes() == BIG
    assert server.log == [("/big.bin", f"bytes={len(BIG) + 15}-"), ("/big.bin", None)]
    # a complete .part (the server answers 416 with the same size) is used as it is
    (tmp_path / "again.bin.part").write_bytes(BIG)
    assert fetch(f"{server.url}/big.bin", tmp_path / "again.bin", sha256(BIG), progress=False).read_bytes() == BIG


def test_without_a_published_checksum_the_first_download_is_recorded_and_checked(server, tmp_path):
    target = tmp_path / "big.bin"
    fetch(f"{server.url}/big.bin", target, progress=False)
    record = tmp_path / "big.bin.sha256"
    assert record.read_text() == f"{hashlib.sha256(BIG).hexdigest()}  big.bin\n"  # sha256sum's format
    assert fetch(f"{server.url}/big.bin", target, progress=False) == target  # reused: verified, no request
    assert len(server.log) == 1
    target.write_bytes(BIG[:-1] + b"?")  # changed on disk afterwards
    with pytest.raises(ConvertError, match="big.bin: does not match the sha256 recorded at its first download"):
        fetch(f"{server.url}/big.bin", target, progress=False)
    # a resume after the file was deleted is verified against the record too
    target.unlink()
    (tmp_path / "big.bin.part").write_bytes(b"x" * 1000)  # not the file's first bytes
    with pytest.raises(ConvertError, match="does not match the sha256 recorded at its first download"):
        fetch(f"{server.url}/big.bin", target, progress=False)
    assert not (tmp_path / "big.bin.part").exists() and not target.exists()
    assert fetch(f"{server.url}/big.bin", target, progress=False).read_bytes() == BIG


def test_a_recipe_without_checksum_records_and_verifies_its_download(server, tmp_path, monkeypatch):
    gz = gzip.compress((FIXTURES / "steam_reviews.json").read_bytes())
    server.files["steam_reviews.json.gz"] = gz
    recipe_names()
    monkeypatch.setitem(RECIPES, "steam", dataclasses.replace(
        RECIPES["steam"], download=Download(f"{server.url}/steam_reviews.json.gz")))
    convert("steam", out=tmp_path, min_item_inter=1, min_user_inter=1, verbose=False)
    raw = tmp_path / ".raw" / "steam" / "steam_reviews.json.gz"
    assert (raw.parent / "steam_reviews.json.gz.sha256").read_text().split()[0] == hashlib.sha256(gz).hexdigest()
    raw.write_bytes(gzip.compress(b"{'username': 'x', 'product_id': '1', 'date': '2017-01-01'}\n"))
    with pytest.raises(ConvertError, match="changed since it was downloaded"):
        convert("steam", out=tmp_path, force=True, min_item_inter=1, min_user_inter=1, verbose=False)


def test_an_archive_that_unpacks_too_far_is_refused_unless_allowed(tmp_path):
    archive = tmp_path / "bomb.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-1m/ratings.dat", b"0" * (4 << 20))
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(ConvertError, match=r"bomb.zip: would unpack to 4,194,304 bytes, \d+ times its size"):
        extract(archive, tmp_path / "a")
    assert not any((tmp_path / "a").iterdir())
    extract(archive, tmp_path / "b", max_ratio=10_000)
    assert (tmp_path / "b" / "ml-1m" / "ratings.dat").stat().st_size == 4 << 20
    gz = tmp_path / "zeros.bin.gz"
    gz.write_bytes(gzip.compress(b"0" * (4 << 20)))
    with pytest.raises(ConvertError, match="zeros.bin.gz: would unpack to"):
        extract(gz, tmp_path / "c")
    assert not any((tmp_path / "c").iterdir())
