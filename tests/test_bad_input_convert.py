"""The converter's and the downloads' bad-input table (``tests/bad_input.py``): every case exits
with code 2 and one line naming the file, line and field (or the option), no traceback, and
nothing left behind. Permissions are checked in a process that they apply to (root gives up the
capabilities that bypass them); a full disk is a real 64 KiB tmpfs where one can be mounted,
else a real file-size limit on the process (see :func:`on_full_disk`). Signals are not bad input: their own tests below
check the exit codes (130, 143), the one line and the clean-up, and that a killed conversion's
leftovers are removed by the next run."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import resource
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from recbole_session.convert import RECIPES, Download, convert, recipe_names
from recbole_session.convert.__main__ import main as convert_main
from tests.bad_input import (
    REPO,
    BadInput,
    check,
    drop_permission_override,
    sigint_default,
    steps,
    write,
)
from tests.test_convert_download import serve

FIXTURES = Path(__file__).parent / "fixtures" / "convert"
MAIN = "recbole_session.convert.__main__:main"
ML20 = "userId,movieId,rating,timestamp\n"
STEAM_LINE = "{'username': 'a', 'product_id': '1', 'date': '2017-01-01'}\n"
TAOBAO = "1,10,100,pv,1511544070\n1,11,100,buy,1511544170\n"


def without_permission_override(argv: list[str]) -> int:
    """The converter's main in a process that file permissions apply to (see
    :func:`bad_input.drop_permission_override`)."""
    drop_permission_override()
    from recbole_session.convert.__main__ import main

    return main(argv)


def on_full_disk(argv: list[str]) -> int:
    """The converter's main writing to a full disk: the 64 KiB tmpfs that :func:`full_disk`
    mounted at ``--out``, or, where none could be mounted, a real 64 KiB limit on the size of
    any file the process writes (the kernel then refuses the write, EFBIG)."""
    out = Path(argv[argv.index("--out") + 1])
    if not os.path.ismount(out):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    from recbole_session.convert.__main__ import main

    return main(argv)


def full_disk(folder: Path) -> None:
    """Mount a 64 KiB tmpfs at ``disk`` where this process may (root); else leave a plain folder."""
    (folder / "disk").mkdir()
    if os.geteuid() == 0 and sys.platform == "linux":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder / "disk")],
                       capture_output=True, check=False)


def truncated_gzip() -> bytes:
    data = gzip.compress((FIXTURES / "steam_reviews.json").read_bytes() * 50)
    return data[: len(data) // 2]


def locked_folder(folder: Path) -> None:
    (folder / "locked").mkdir()
    (folder / "locked").chmod(0o555)


def changed_download(folder: Path) -> None:
    raw = folder / "out" / ".raw" / "steam"
    raw.mkdir(parents=True)
    (raw / "steam_reviews.json.gz").write_bytes(gzip.compress(STEAM_LINE.encode()))
    (raw / "steam_reviews.json.gz.sha256").write_text(f"{hashlib.sha256(b'the first download').hexdigest()}  "
                                                      "steam_reviews.json.gz\n")


def converted_events(folder: Path) -> None:
    """``small.csv`` converted into ``out/small/`` (by the converter: it has a manifest)."""
    write("small.csv", EVENTS_CSV)(folder)
    assert convert_main([arg.replace("{tmp}", str(folder)) for arg in EVENTS]) == 0


def converted_ml1m(folder: Path) -> None:
    """``ratings.dat`` converted into ``out/ml-1m/`` (no ``ml-1m.yaml``: not asked for)."""
    write("ratings.dat", (FIXTURES / "ratings.dat").read_text())(folder)
    assert convert_main([arg.replace("{tmp}", str(folder)) for arg in RAW1_OWN]) == 0


def ml20(*rows: str) -> str:
    return ML20 + "".join(f"{row}\n" for row in rows)


def case(input: str, argv: list[str], message: str, setup=None, **kw) -> BadInput:
    return BadInput("converter", input, MAIN, tuple(argv), message, setup, **kw)


RAW20 = ["ml-20m", "--raw", "{tmp}/ratings.csv", "--out", "{tmp}/out", "--quiet"]
RAW1 = ["ml-1m", "--raw", "{tmp}/ratings.dat", "--out", "{tmp}/out", "--quiet"]
CSV = ["csv", "--raw", "{tmp}/events.csv", "--out", "{tmp}/out", "--quiet"]
STEAM = ["steam", "--raw", "{tmp}/steam_reviews.json", "--out", "{tmp}/out", "--quiet"]
TAOBAO_ARGS = ["csv", "--raw", "{tmp}/UserBehavior.csv", "--out", "{tmp}/out", "--quiet"]
# a log that every filter keeps, converted as the dataset 'small' (which writes small.yaml)
EVENTS_CSV = (FIXTURES / "events.csv").read_text()
EVENTS = ["csv", "--raw", "{tmp}/small.csv", "--out", "{tmp}/out", "--sep", ";", "--user-col", "who",
          "--item-col", "what", "--time-col", "when", "--min-item-inter", "1", "--min-user-inter", "1", "--quiet"]
RAW1_OWN = [*RAW1, "--min-item-inter", "1", "--min-user-inter", "1"]

LOCAL_CASES = [
    # reading the raw file
    case("a raw file that does not exist", RAW20, "ratings.csv: file not found"),
    case("a separator other than the recipe's", RAW20, "ratings.csv, line 1, field 'userId': missing column 'userId' "
         "in the header ['userId\\tmovieId\\trating\\ttimestamp'] (expected comma-separated values; this line "
         "looks tab-separated)",
         write("ratings.csv", ml20("1\t2\t4.0\t5").replace(",", "\t"))),
    case("a header without a needed column", RAW20, "ratings.csv, line 1, field 'timestamp': missing column",
         write("ratings.csv", "userId,movieId,rating\n1,2,4.0\n")),
    case("a non-numeric id", RAW20, "ratings.csv, line 3, field 'movieId': not an integer id: 'x7'",
         write("ratings.csv", ml20("1,2,4.0,5", "1,x7,4.0,6"))),
    case("a non-numeric time", RAW20, "ratings.csv, line 3, field 'timestamp': not a number: 'soon'",
         write("ratings.csv", ml20("1,2,4.0,5", "1,3,4.0,soon"))),
    case("an empty file", RAW20, "ratings.csv, line 1: empty file", write("ratings.csv", "")),
    case("a header and no rows", RAW20, "ratings.csv, line 2: no data rows", write("ratings.csv", ML20)),
    case("a truncated gzip file", STEAM[:2] + ["{tmp}/steam_reviews.json.gz"] + STEAM[3:],
         "truncated or corrupt gzip data", write("steam_reviews.json.gz", truncated_gzip())),
    case("the header line again in the data", RAW20, "ratings.csv, line 3: duplicate header line",
         write("ratings.csv", ml20("1,2,4.0,5") + ml20("1,3,4.0,6"))),
    case("a column twice in the header", RAW20, "ratings.csv, line 1, field 'userId': duplicate column",
         write("ratings.csv", "userId,movieId,rating,timestamp,userId\n1,2,4.0,5,1\n")),
    case("a NaN time", RAW20, "ratings.csv, line 4, field 'timestamp': NaN",
         write("ratings.csv", ml20("1,2,4.0,5", "", "1,3,4.0,NaN"))),
    case("a negative time", RAW20, "ratings.csv, line 3, field 'timestamp': negative time",
         write("ratings.csv", ml20("1,2,4.0,5", "1,3,4.0,-60"))),
    case("a time of 1e30", RAW20, "ratings.csv, line 3, field 'timestamp': time 1e30 is out of range",
         write("ratings.csv", ml20("1,2,4.0,5", "1,3,4.0,1e30"))),
    case("times in milliseconds (all above 1e11)", RAW20, "ratings.csv, line 2, field 'timestamp': every time "
         "is above 1e+11 seconds", write("ratings.csv", ml20("1,2,4.0,1511544070000", "1,3,4.0,1511544170000"))),
    case("times in microseconds with --time-unit ms", [*RAW20, "--time-unit", "ms"],
         "they look like microseconds, add --time-unit us",
         write("ratings.csv", ml20("1,2,4.0,1511544070000000", "1,3,4.0,1511544170000000"))),
    case("an id beyond the 64-bit range", RAW20,
         "ratings.csv, line 3, field 'userId': integer id beyond the 64-bit range",
         write("ratings.csv", ml20("1,2,4.0,5", "99999999999999999999,3,4.0,6"))),
    case("a quoted value holding a tab", CSV,
         "events.csv, line 3, field 'item_id': the value holds a tab or line break",
         write("events.csv", 'user_id,item_id,timestamp\nu,a,5\nu,"b\tc",6\n')),
    case("a byte that is not UTF-8", CSV, "events.csv, line 3: not UTF-8 text: byte 0xe9",
         write("events.csv", b"user_id,item_id,timestamp\nu,a,5\nu,caf\xe9,6\n")),
    case("a line with too few fields", RAW1, "ratings.dat, line 2: expected 4 fields, found 3",
         write("ratings.dat", "1::2::3::4\n1::2::3\n")),
    case("a Steam line that is not a Python literal", STEAM, "steam_reviews.json, line 2: not a Python literal",
         write("steam_reviews.json", STEAM_LINE + "{'username': 'b', \n")),
    case("a Steam line holding code", STEAM, "steam_reviews.json, line 1: not a Python literal",
         write("steam_reviews.json", "__import__('os').system('touch pwned')\n")),
    case("a Steam record without a key", STEAM, "steam_reviews.json, line 2, field 'product_id': missing key",
         write("steam_reviews.json", STEAM_LINE + "{'username': 'b', 'date': '2017-01-01'}\n")),
    case("a Steam date that is not YYYY-MM-DD", STEAM, "steam_reviews.json, line 3, field 'date': not a YYYY-MM-DD",
         write("steam_reviews.json", STEAM_LINE + "\n{'username': 'b', 'product_id': '1', 'date': 'May'}\n")),
    case("a YOOCHOOSE time that is not ISO 8601", ["yoochoose-1-64", "--raw", "{tmp}/yoochoose-clicks.dat",
                                                   "--out", "{tmp}/out", "--quiet"],
         "yoochoose-clicks.dat, line 2, field 'timestamp': not an ISO 8601 timestamp",
         write("yoochoose-clicks.dat", "1,2014-04-01T10:00:00.000Z,100,0\n1,yesterday,101,0\n")),
    case("a DIGINETICA date that is not YYYY-MM-DD", ["diginetica", "--raw", "{tmp}/train-item-views.csv",
                                                      "--out", "{tmp}/out", "--quiet"],
         "train-item-views.csv, line 3, field 'eventdate': not a YYYY-MM-DD date",
         write("train-item-views.csv",
               "sessionId;userId;itemId;timeframe;eventdate\n1;;2;3;2016-01-01\n1;;2;3;01/02/2016\n")),
    # headerless logs and the options for them
    case("a file without header, read as if it had one", [*TAOBAO_ARGS, "--user-col", "0"],
         "UserBehavior.csv, line 1, field 'item_id': missing column 'item_id' in the header ['1', '10', '100', "
         "'pv', '1511544070'] (this line looks like data: for a file without header add --no-header",
         write("UserBehavior.csv", TAOBAO)),
    case("--names with the wrong number of names", [*TAOBAO_ARGS, "--no-header", "--names", "user,item,time"],
         "UserBehavior.csv, line 1: --names gives 3 names but the line has 5 fields", write("UserBehavior.csv", TAOBAO)),
    case("a column number past the last column", [*TAOBAO_ARGS, "--no-header", "--user-col", "9"],
         "UserBehavior.csv, line 1, field '9': no column '9' among columns 0..4", write("UserBehavior.csv", TAOBAO)),
    case("--keep without '='", [*TAOBAO_ARGS, "--no-header", "--keep", "pv"],
         "--keep: expected COLUMN=VALUE[,VALUE], not 'pv'", write("UserBehavior.csv", TAOBAO)),
    case("--keep for a recipe that cannot apply it", [*STEAM, "--keep", "date=2017-01-01"],
         "--keep: recipe 'steam' does not read it", write("steam_reviews.json", STEAM_LINE)),
    case("--no-header for a recipe with a fixed format", [*RAW20, "--no-header"],
         "--no-header: recipe 'ml-20m' does not read it", write("ratings.csv", ml20("1,2,4.0,5"))),
    # options
    case("a negative --session-gap", [*RAW20, "--session-gap", "-5"], "--session-gap: expected seconds >= 0, not -5",
         write("ratings.csv", ml20("1,2,4.0,5"))),
    case("a negative --min-item-inter", [*RAW20, "--min-item-inter", "-1"],
         "--min-item-inter: expected a count >= 0, not -1", write("ratings.csv", ml20("1,2,4.0,5"))),
    case("a negative --chunk-rows", [*RAW20, "--chunk-rows", "-1"],
         "--chunk-rows: expected a row count >= 0 (0: all at once), not -1", write("ratings.csv", ml20("1,2,4.0,5"))),
    case("a --valid-ratio of 1 or more", ["session-rec", "--raw", str(FIXTURES / "session-rec"), "--out",
                                          "{tmp}/out", "--valid-ratio", "1.5", "--quiet"],
         "--valid-ratio: expected a share >= 0 and < 1, not 1.5"),
    case("a --time-unit other than s, ms, us", [*RAW20, "--time-unit", "h"],
         "argument --time-unit: invalid choice: 'h'", write("ratings.csv", ml20("1,2,4.0,5"))),
    case("an unknown recipe", ["movielens", "--out", "{tmp}/out"], "unknown dataset recipe 'movielens'"),
    case("a --max-unpack-ratio of 0", ["ml-1m", "--out", "{tmp}/out", "--max-unpack-ratio", "0"],
         "argument --max-unpack-ratio: expected a number > 0, not 0"),
    case("filters that keep nothing", RAW20, "no rows are left after the filters; the filters kept 0 of 1 users",
         write("ratings.csv", ml20("1,2,4.0,5"))),
    # the output
    case("an output folder that is a file", [*RAW1, "--out", "{tmp}/taken", "--min-item-inter", "1",
                                             "--min-user-inter", "1"],
         "taken: is a file, not a folder (choose another --out)",
         steps(write("ratings.dat", (FIXTURES / "ratings.dat").read_text()), write("taken", "x"))),
    case("a dataset folder that is a file", [*RAW1, "--min-item-inter", "1", "--min-user-inter", "1"],
         "ml-1m: is a file, not a folder (move it away or use --name)",
         steps(write("ratings.dat", (FIXTURES / "ratings.dat").read_text()), write("out/ml-1m", "x"))),
    # files in the dataset folder that the converter did not write (or that changed since) are
    # replaced only with --force, and a folder where a file should be not even then
    case("your own X.inter and X.yaml in the dataset folder", EVENTS,
         "small.inter: already there and not written by the converter (no small.manifest.json in the folder: "
         "your own file, or converted before the converter kept one); also in the way: small.yaml; --force "
         "replaces the files the conversion writes (it never removes others)",
         steps(write("small.csv", EVENTS_CSV), write("out/small/small.inter", "mine\n"),
               write("out/small/small.yaml", "mine: 1\n"))),
    case("a converted X.yaml edited afterwards, converted again with other settings", [*EVENTS, "--session-gap", "60"],
         "small.yaml: already there and not written by the converter (changed since the converter wrote it: its "
         "sha256 differs from small.manifest.json)", steps(converted_events, write("out/small/small.yaml", "mine\n"))),
    case("your own X.yaml beside a converted dataset, which a conversion now writes", [*RAW1_OWN, "--weight", "Rating"],
         "ml-1m.yaml: already there and not written by the converter (ml-1m.manifest.json does not list it)",
         steps(converted_ml1m, write("out/ml-1m/ml-1m.yaml", "mine: 1\n"))),
    case("a manifest that is not JSON", [*EVENTS, "--session-gap", "60"],
         "small.inter: already there and not written by the converter (small.manifest.json is not a manifest the "
         "converter can read)", steps(converted_events, write("out/small/small.manifest.json", "{not json"))),
    case("a folder where an output file should be, with --force", [*EVENTS, "--force"],
         "small.inter: is a folder, not a file (move it away or use --name)",
         steps(write("small.csv", EVENTS_CSV), write("out/small/small.inter/notes.txt", "mine\n"))),
    # permissions hold in a process they apply to (see without_permission_override)
    BadInput("converter", "a raw file it may not read", "tests.test_bad_input_convert:without_permission_override",
             tuple(RAW20), "ratings.csv: cannot read the file: permission denied",
             write("ratings.csv", ml20("1,2,4.0,5"), mode=0o000), subprocess=True),
    BadInput("converter", "an output folder it may not write", "tests.test_bad_input_convert:without_permission_override",
             (*RAW1, "--out", "{tmp}/locked", "--min-item-inter", "1", "--min-user-inter", "1"),
             "cannot write: permission denied (choose a writable folder with --out)",
             steps(write("ratings.dat", (FIXTURES / "ratings.dat").read_text()), locked_folder), subprocess=True),
    # a full disk: a real 64 KiB tmpfs, or a real file-size limit where mounting is not allowed
    BadInput("converter", "a full disk", "tests.test_bad_input_convert:on_full_disk",
             ("ml-100k", "--out", "{tmp}/disk", "--quiet"), "(free some space or write elsewhere with --out)",
             full_disk, subprocess=True),
    # a download reused later
    BadInput("download", "a downloaded file changed since its first download", MAIN,
             ("steam", "--out", "{tmp}/out", "--quiet"),
             "steam_reviews.json.gz: changed since it was downloaded", changed_download),
]


@pytest.mark.parametrize("case", LOCAL_CASES, ids=[c.id for c in LOCAL_CASES])
def test_bad_input(case, open_folder):
    try:
        check(case, open_folder)
    finally:
        if os.path.ismount(open_folder / "disk"):
            subprocess.run(["umount", str(open_folder / "disk")], check=False)
    assert not (open_folder / "pwned").exists()


# downloads, served from a loopback server (tests/test_convert_download.py)
BOMB = b"0" * (8 << 20)  # 8 MiB of zeros: a zip of a few KiB


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


SERVED = {
    "evil.zip": zipped({"ml-1m/ratings.dat": b"1::2::3::4\n", "../../evil.dat": b"x"}),
    "bomb.zip": zipped({"ml-1m/ratings.dat": BOMB}),
}
# case -> (the file the recipe downloads, its checksum)
DOWNLOADS = {
    "no --raw, no local file, the download fails": ("missing.zip", None),
    "an archive with a member outside its folder": ("evil.zip", None),
    "an archive that unpacks to 100 times its size": ("bomb.zip", None),
}
DOWNLOAD_CASES = [
    BadInput("download", "no --raw, no local file, the download fails", MAIN, ("ml-1m", "--out", "{tmp}/out", "--quiet"),
             "missing.zip: HTTP 404 Not Found; or download it yourself and run: python -m recbole_session.convert "
             "ml-1m --raw PATH"),
    BadInput("download", "an archive with a member outside its folder", MAIN, ("ml-1m", "--out", "{tmp}/out", "--quiet"),
             "evil.zip, field '../../evil.dat': archive member escapes the target folder",
             keep=("out", "out/.raw", "out/.raw/ml-1m", "out/.raw/ml-1m/evil.zip*")),
    BadInput("download", "an archive that unpacks to 100 times its size", MAIN, ("ml-1m", "--out", "{tmp}/out", "--quiet"),
             "times its size (more than --max-unpack-ratio 100: a zip bomb?)",
             keep=("out", "out/.raw", "out/.raw/ml-1m", "out/.raw/ml-1m/bomb.zip*")),
]
CASES = LOCAL_CASES + DOWNLOAD_CASES  # the README's troubleshooting table reads this list


@pytest.mark.parametrize("case", DOWNLOAD_CASES, ids=[c.id for c in DOWNLOAD_CASES])
def test_bad_download(case, tmp_path, monkeypatch):
    with serve(SERVED) as server:
        recipe_names()
        file, checksum = DOWNLOADS[case.input]
        monkeypatch.setitem(RECIPES, "ml-1m", dataclasses.replace(
            RECIPES["ml-1m"], download=Download(f"{server.url}/{file}", checksum)))
        check(case, tmp_path)
    assert not list(tmp_path.rglob("evil.dat")) and not list(tmp_path.rglob("ratings.dat"))


def test_the_table_covers_the_issue(tmp_path):
    """At least 40 cases, each message naming what it is about."""
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


# signals: Ctrl+C and SIGTERM while writing remove the staging folder; SIGKILL leaves it, and the
# next conversion of the same dataset removes it


def big_ratings(path: Path, users: int = 3000, per_user: int = 120) -> None:
    """An ML-1M-shaped ratings.dat big enough that writing takes a while."""
    lines = []
    for user in range(1, users + 1):
        t = 956_703_932 + user * 1000
        for k in range(per_user):
            t += 60 if k % 10 else 200_000
            lines.append(f"{user}::{(user * 7 + k * 13) % 3000 + 1}::{k % 5 + 1}::{t}\n")
    path.write_text("".join(lines))


def staging(out: Path) -> list[Path]:
    return [p for p in out.glob(".ml-1m.*")] if out.is_dir() else []


def start_and_wait_for_staging(raw: Path, out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "recbole_session.convert", "ml-1m", "--raw", str(raw), "--out",
                             str(out), "--quiet", "--max-user-inter", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=sigint_default)
    deadline = time.monotonic() + 300
    while not staging(out):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the conversion ended before it was seen writing: {proc.communicate()}")
        time.sleep(0.001)
    return proc


@pytest.fixture(scope="module")
def big_raw(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("big") / "ratings.dat"
    big_ratings(raw)
    return raw


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_writing_removes_the_staging_folder(big_raw, tmp_path, signum, code):
    out = tmp_path / "out"
    proc = start_and_wait_for_staging(big_raw, out)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines() == [
        f"python -m recbole_session.convert: {'SIGTERM' if signum == signal.SIGTERM else 'interrupted (Ctrl+C)'}: "
        "stopped; the unfinished output was removed"]
    assert not out.exists()  # no staging folder, no dataset folder, not even the output root it made


def test_sigkill_leftovers_are_removed_by_the_next_run(big_raw, tmp_path):
    out = tmp_path / "out"
    proc = start_and_wait_for_staging(big_raw, out)
    proc.kill()
    proc.communicate(timeout=60)
    left = staging(out)
    assert left, "SIGKILL cannot be caught: the staging folder stays"
    # another dataset's staging folder and a live process's one are not touched
    other = out / f".ml-20m.{proc.pid}.abcd1234.staging"
    other.mkdir()
    live = out / f".ml-1m.{os.getpid()}.abcd1234.staging"
    live.mkdir()
    folder = convert("ml-1m", raw=big_raw, out=out, max_user_inter=0, verbose=False)
    assert not any(p.exists() for p in left)
    assert other.is_dir() and live.is_dir()
    assert (folder / "ml-1m.inter").is_file()
