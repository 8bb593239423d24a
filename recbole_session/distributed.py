"""Training in several processes through RecBole's own distributed path: :func:`run`.

With CUDA, RecBole's path as it is (NCCL, one GPU per process). Without CUDA, the processes
train on the CPU over gloo (:func:`recbole_session.config.init_cpu_process_group`), so that a
machine or a cluster without GPUs (and this package's tests) run the same path. In both, the
training rows are sharded over the processes, and the process of global rank 0 evaluates every
target, decides early stopping for all, and writes the checkpoint and the results
(:mod:`recbole_session.trainer.distributed_trainer`).
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import torch
import torch.distributed as dist

from recbole_session.build import make_config
from recbole_session.cli import UsageError
from recbole_session.datafiles import ensure_atomic_files
from recbole_session.literals import short
from recbole_session.training import run_recbole_session

# the options of RecBole's own distributed path (recbole.quick_start.run)
DISTRIBUTED_DEFAULTS = {"nproc": 1, "world_size": -1, "ip": "localhost", "port": "5678", "group_offset": 0}


def _distributed_worker(rank: int, model, dataset, config_file_list, config_dict, queue) -> None:
    # a module-level function, so that spawned processes import recbole_session (and so
    # register our models) before they unpickle it
    run_recbole_session(model, dataset, config_file_list, {**config_dict, "local_rank": rank}, queue=queue)


# TCP ports
MAX_PORT = 65535


def check_distributed_options(nproc: Any, world_size: Any, port: Any, group_offset: Any) -> None:
    """The distributed options' values, before anything else is said about them (``--nproc=0``
    was answered with "needs CUDA")."""
    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not whole(nproc) or nproc < 1:
        raise UsageError(f"--nproc={nproc!r}: expected a number of processes >= 1")
    if not whole(world_size) or (world_size < 1 and world_size != -1):
        raise UsageError(f"--world_size={world_size!r}: expected -1 (= --nproc) or a number of processes >= 1")
    if not str(port).isdigit() or not 1 <= int(port) <= MAX_PORT:
        raise UsageError(f"--port={short(port)}: expected a TCP port, 1 to {MAX_PORT}")
    if not whole(group_offset) or group_offset < 0:
        raise UsageError(f"--group_offset={group_offset!r}: expected an integer >= 0")


def check_distributed(nproc: int, world_size: int = -1, group_offset: int = 0) -> None:
    """The processes of this machine must fit in the world, and with CUDA (RecBole's NCCL path)
    each needs a GPU; without CUDA they run on the CPU over gloo."""
    world = nproc if world_size == -1 else world_size
    if group_offset + nproc > world:
        raise UsageError(f"--group_offset={group_offset} + --nproc={nproc} is more than --world_size={world}: "
                         "the ranks of this machine are group_offset .. group_offset + nproc - 1")
    if not dist.is_available():
        raise UsageError("this torch build has no torch.distributed: train with --nproc=1")
    if not torch.cuda.is_available():
        if not dist.is_gloo_available():
            raise UsageError(f"--nproc={nproc} without CUDA trains over gloo, which this torch build lacks")
        return
    if not dist.is_nccl_available():
        raise UsageError("RecBole's distributed training on GPUs uses the NCCL backend, which this torch build lacks")
    if torch.cuda.device_count() < nproc:
        raise UsageError(f"--nproc={nproc} but only {torch.cuda.device_count()} CUDA device(s) are visible")


def check_rendezvous(ip: str, port: str) -> None:
    """The machine of rank 0 hosts the processes' meeting point at ``ip:port``: refuse, before
    anything loads, an address that is not this machine's or a port already taken."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((ip, int(port)))
    except socket.gaierror:
        raise UsageError(f"--ip={short(ip)}: not a host name or address this machine can resolve") from None
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise UsageError(f"--port={port}: already in use on this machine; choose another --port") from None
        raise UsageError(f"--ip={short(ip)}: cannot listen there ({err.strerror}); the machine of "
                         "--group_offset=0 listens at --ip, so give one of its own addresses") from None


def run(
    model: str | type | None = None,
    dataset: str | None = None,
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    saved: bool = True,
    nproc: int = 1,
    world_size: int = -1,
    ip: str = "localhost",
    port: str = "5678",
    group_offset: int = 0,
) -> dict[str, Any] | None:
    """RecBole's ``run``: one process, or ``nproc`` processes through RecBole's own distributed
    path (its ``nproc``, ``world_size``, ``ip``, ``port`` and ``offset`` config keys; see the
    module docstring). Returns the run's results in the process that holds global rank 0 (for
    another machine of a cluster: ``None``)."""
    check_distributed_options(nproc, world_size, port, group_offset)
    config_dict = dict(config_dict or {})
    if nproc == 1 and world_size <= 0:
        return run_recbole_session(model, dataset, config_file_list, config_dict, saved)
    check_distributed(nproc, world_size, group_offset)
    import torch.multiprocessing as mp

    if group_offset == 0:
        check_rendezvous(ip, port)
    world_size = nproc if world_size == -1 else world_size
    config_dict.update({"world_size": world_size, "ip": ip, "port": port, "nproc": nproc, "offset": group_offset})
    if torch.cuda.is_available():
        config_dict.setdefault("gpu_id", ",".join(str(i) for i in range(nproc)))
    # build the data once before the workers start, so that they do not convert it concurrently
    ensure_atomic_files(make_config(model, dataset, config_file_list, config_dict))
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_distributed_worker, args=(model, dataset, config_file_list, config_dict, queue), nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()
