"""Multi-GPU training through RecBole's own distributed path: :func:`run`."""

from __future__ import annotations

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


def check_distributed(nproc: int) -> None:
    """RecBole's distributed path needs CUDA, NCCL and ``nproc`` GPUs; say which is missing."""
    if not torch.cuda.is_available():
        raise UsageError(f"--nproc={nproc} uses RecBole's distributed (NCCL) training, which needs CUDA GPUs; none is available")
    if not dist.is_available() or not dist.is_nccl_available():
        raise UsageError("RecBole's distributed training uses the NCCL backend, which this torch build lacks")
    if torch.cuda.device_count() < nproc:
        raise UsageError(f"--nproc={nproc} but only {torch.cuda.device_count()} CUDA device(s) are visible")


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
    path (its ``nproc``, ``world_size``, ``ip``, ``port`` and ``offset`` config keys)."""
    check_distributed_options(nproc, world_size, port, group_offset)
    config_dict = dict(config_dict or {})
    if nproc == 1 and world_size <= 0:
        return run_recbole_session(model, dataset, config_file_list, config_dict, saved)
    check_distributed(nproc)
    import torch.multiprocessing as mp

    world_size = nproc if world_size == -1 else world_size
    config_dict.update(
        {"world_size": world_size, "ip": ip, "port": port, "nproc": nproc, "offset": group_offset,
         "gpu_id": config_dict.get("gpu_id", ",".join(str(i) for i in range(nproc)))}
    )
    # build the data once before the workers start, so that they do not convert it concurrently
    ensure_atomic_files(make_config(model, dataset, config_file_list, config_dict))
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_distributed_worker, args=(model, dataset, config_file_list, config_dict, queue), nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()
