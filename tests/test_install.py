"""A non-editable install works from any folder: the wheel ships every data file, and with only
the installed copy on the path the converter and a one-epoch training run (the slow test of
the suite: it builds and installs the wheel once for the module)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _tracked_data_files() -> list[str]:
    """Every file of the package and of properties/ that is not Python source."""
    out = subprocess.run(["git", "ls-files", "recbole_session", "properties"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.split()
    return [f for f in out if not f.endswith(".py") and (REPO / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(folder), str(REPO)], check=True, capture_output=True)
    return next(folder.glob("recbole_session-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """``pip install --no-deps --target`` of the wheel: a folder holding only this package."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q",
                    "--target", str(target), str(wheel)], check=True, capture_output=True)
    return target


def test_wheel_ships_every_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for file in _tracked_data_files():
        if file.startswith("properties/"):
            expected.add("recbole_session/" + file)  # shipped as recbole_session/properties/
        else:
            expected.add(file)
    assert expected and expected <= names, sorted(expected - names)


def _run(installed: Path, cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_installed_copy_converts_and_trains_from_another_folder(installed, tmp_path):
    where = _run(installed, tmp_path, "-c", "import recbole_session; print(recbole_session.__file__)")
    assert where.returncode == 0 and where.stdout.strip().startswith(str(installed)), where.stdout + where.stderr

    help_ = _run(installed, tmp_path, "-m", "recbole_session.convert", "--help")
    assert help_.returncode == 0 and "usage:" in help_.stdout, help_.stderr[-2000:]

    converted = _run(installed, tmp_path, "-m", "recbole_session.convert", "ml-100k", "--out", "atomic_files")
    assert converted.returncode == 0, converted.stderr[-2000:]
    assert (tmp_path / "atomic_files" / "ml-100k" / "ml-100k.inter").is_file()

    console_script = installed / "bin" / "recbole-session"
    assert console_script.is_file()
    trained = _run(installed, tmp_path, str(console_script), "--model=GRU4Rec", "--dataset=ml-100k", "--epochs=1",
                   "--embedding_size=8", "--hidden_size=8", "--train_batch_size=512", "--show_progress=False",
                   "--eval_protocols=[full]")
    assert trained.returncode == 0, trained.stderr[-3000:]
    log = trained.stdout + trained.stderr
    assert "test result" in log and "173 users" in log
    checkpoint = str(next((tmp_path / "saved").glob("GRU4Rec-*.pth")))

    recommended = _run(installed, tmp_path, "-m", "recbole_session.recommend", checkpoint, "--user", "2", "--topk", "3")
    assert recommended.returncode == 0 and recommended.stdout.splitlines()[0] == "user,rank,item,score", \
        recommended.stderr[-2000:]

    server = subprocess.Popen([sys.executable, "-m", "recbole_session.serve", checkpoint, "--port", "0"], cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(installed)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        ready = re.search(r"on (http://[\d.]+:\d+)", server.stdout.readline())
        assert ready, server.stderr.read()[-2000:] if server.poll() is not None else "no serving line"
        request = urllib.request.Request(ready.group(1) + "/recommend", data=b'{"user": "2", "k": 3}', method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert [i["item"] for i in answer["items"]] == [line.split(",")[2] for line in recommended.stdout.splitlines()[1:]]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
