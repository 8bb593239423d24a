"""Distributed training on the CPU (gloo): two real processes through RecBole's distributed path,
started by the package's command line, as ``--nproc=2`` on one machine and as two "nodes" on
loopback (``--world_size=2``, one command per node). Each run must have trained on both ranks
(each its half of the rows, the same steps, the same weights at the end), written one checkpoint,
and reported metrics equal to a one-process evaluation of that checkpoint."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import MODELS

from recbole_session.evaluate import reevaluate

REPO = Path(__file__).resolve().parents[1]
# two epochs of a few steps each: what the checks need, quick on two shared cores
SMALL = ["--epochs=2", "--MAX_ITEM_LIST_LENGTH=20", "--show_progress=False", "--eval_batch_size=512"]
# each of the package's trainers: RecBole's (SASRec), protocol validation with step windows
# (SessionBERT4Rec), a learning-rate schedule (SRIEM); and a model with sparse buffers (VSKNN)
STEPS = {"SASRec": ["--train_batch_size=2048"], "SessionBERT4Rec": ["--epoch_steps=3", "--train_batch_size=128"],
         "SRIEM": ["--train_batch_size=2048"], "VSKNN": ["--train_batch_size=2048"]}
PROTOCOLS = ["full", "random100"]

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU (gloo) path runs where there is no CUDA")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(model: str, atomic_root: Path, folder: Path, *extra: str) -> list[str]:
    sizes = [f"--{key}={value}" for key, value in MODELS.get(model, {}).items()]
    return [sys.executable, str(REPO / "run_recbole_session.py"), f"--model={model}", "--dataset=ml-100k",
            *SMALL, *STEPS[model], *sizes, f"--data_path={atomic_root}", f"--checkpoint_dir={folder / 'saved'}", *extra]


def results_of(folder: Path, model: str) -> dict:
    files = list((folder / "log" / model).glob("*.results.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def check_processes(results: dict) -> None:
    """Both ranks trained, each its share, and ended with the same weights."""
    ranks = results["processes"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["train_steps"] > 0 and r["train_rows"] > 0 for r in ranks)
    assert ranks[0]["train_steps"] == ranks[1]["train_steps"]
    assert ranks[0]["weights_digest"] == ranks[1]["weights_digest"]


def check_one_process_evaluation(results: dict, atomic_root: Path, out: Path) -> None:
    """The checkpoint reloads, and its evaluation in this one process gives the run's metrics."""
    again = reevaluate(results["model_file"], PROTOCOLS, data_path=str(atomic_root), out=out)
    for split in ("valid", "test"):
        assert again[f"{split}_protocols"] == {k: v for k, v in results[f"{split}_protocols"].items()
                                               if k.split("/")[0] in PROTOCOLS}
    # RecBole's own full-ranking test evaluation (the trainer's, made by rank 0) too
    assert results["test_result"] == {k: again["test_protocols"][f"full/{k}"] for k in results["test_result"]}


@pytest.mark.parametrize("model", list(STEPS))
def test_two_processes_train_as_one_run(model, atomic_root, tmp_path):
    run = subprocess.run(command(model, atomic_root, tmp_path, "--nproc=2", f"--port={free_port()}"),
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = results_of(tmp_path, model)
    check_processes(results)
    assert [p.name for p in (tmp_path / "saved").iterdir()] == [Path(results["model_file"]).name]
    check_one_process_evaluation(results, atomic_root, tmp_path / "again")


def test_two_nodes_on_loopback(atomic_root, tmp_path):
    """Two commands, as two machines of a cluster would run them: rank 0 evaluates and writes,
    the other node trains its share and writes nothing."""
    port = free_port()
    nodes = [tmp_path / f"node{rank}" for rank in (0, 1)]
    started = []
    for rank, folder in enumerate(nodes):
        folder.mkdir()
        started.append(subprocess.Popen(
            command("SASRec", atomic_root, folder, "--nproc=1", "--world_size=2", f"--group_offset={rank}",
                    "--ip=127.0.0.1", f"--port={port}"),
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [process.communicate(timeout=600)[0] for process in started]
    assert [process.returncode for process in started] == [0, 0], outputs[1][-3000:] + outputs[0][-3000:]
    results = results_of(nodes[0], "SASRec")
    check_processes(results)
    assert not (nodes[1] / "saved").exists() or not any((nodes[1] / "saved").iterdir())
    assert not list((nodes[1] / "log").rglob("*.results.json"))
    check_one_process_evaluation(results, atomic_root, tmp_path / "again")


def test_a_taken_port_is_refused_before_anything_loads(atomic_root, workdir, capsys):
    from recbole_session.command import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["--model=SASRec", "--dataset=ml-100k", "--nproc=2", "--ip=127.0.0.1", f"--port={port}",
                     f"--data_path={atomic_root}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.splitlines() == [f"run_recbole_session.py: error: --port={port}: already in use on "
                                              "this machine; choose another --port"]
    assert not (workdir / "log").exists() and not (workdir / "saved").exists()


# the package's other models, one epoch each: they train on the trainers the runs above cover
OTHER_MODELS = {"ASARS": ["--train_batch_size=2048"], "SessionSASRec": ["--epoch_steps=2", "--train_batch_size=128"],
                "SessionGRU4Rec": ["--train_batch_size=2048"]}


@pytest.mark.parametrize("model", list(OTHER_MODELS))
def test_the_package_s_other_models_train_in_two_processes(model, atomic_root, tmp_path):
    cmd = [arg for arg in command("SASRec", atomic_root, tmp_path, "--nproc=2", f"--port={free_port()}")
           if not arg.startswith(("--model=", "--train_batch_size", "--n_", "--hidden_size", "--inner_size"))]
    sizes = [f"--{key}={value}" for key, value in MODELS.get(model, {}).items()]
    run = subprocess.run([*cmd, f"--model={model}", "--epochs=1", *OTHER_MODELS[model], *sizes],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = results_of(tmp_path, model)
    check_processes(results)
    assert [p.name for p in (tmp_path / "saved").iterdir()] == [Path(results["model_file"]).name]
