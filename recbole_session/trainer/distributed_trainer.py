"""Training over several processes (RecBole's distributed path) with one decision for all of them.

RecBole's trainers train distributed through ``DistributedDataParallel`` and a
``DistributedSampler`` per loader. Three parts of that path do not hold for this package, and
:class:`DistributedTraining` (mixed into any trainer class by :func:`with_distributed`, which
:func:`recbole_session.lookup.trainer_for` does whenever a run has more than one process)
replaces them:

- **Evaluation is exact and made once.** RecBole shards every eval loader (its sampler pads the
  shards with repeated rows) and averages the shards' means weighted by their number of
  *batches*, so a distributed run's metrics differ from the same checkpoint's evaluation in one
  process, and the package's protocol validation (``valid_protocol``) scored each rank's shard
  alone, so that ranks could stop at different epochs. Here the eval loaders are not sharded
  (:func:`recbole_session.build.build`): the process of global rank 0 evaluates every target,
  exactly as one process would, and sends the result (plain JSON, never a pickle) to the
  others, so that every rank makes the same early-stopping decision. Training, the costly
  part, stays sharded.
- **Checkpoints are written by global rank 0 only** (RecBole writes one per machine: its test
  is the machine-local rank).
- **On the CPU** (gloo, :func:`recbole_session.config.init_cpu_process_group`), the model is
  wrapped without ``device_ids`` (RecBole passes its local rank as a CUDA device) and batch
  norms are left local (``SyncBatchNorm`` is CUDA-only).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from recbole_session.lookup import mixed_in

# the rank that evaluates, saves the checkpoint and writes the results
MAIN_RANK = 0


def is_main_process() -> bool:
    """Whether this process evaluates and writes for the run: always in a one-process run."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == MAIN_RANK


@contextlib.contextmanager
def one_process(config: Any) -> Iterator[None]:
    """``config`` reads as a one-process run inside the block (RecBole's ``single_spec``): what
    RecBole builds or evaluates there is neither sharded nor averaged across ranks."""
    before = config["single_spec"]
    config["single_spec"] = True
    try:
        yield
    finally:
        config["single_spec"] = before


def collective_device() -> torch.device:
    """Where the tensors of a collective must be: NCCL sends CUDA tensors only, gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_json(value: Any) -> Any:
    """``value`` (JSON-able) as the main rank has it, on every rank."""
    device = collective_device()
    # numpy and torch scalars (RecBole's metric values) as the floats they are
    payload = json.dumps(value, default=float).encode("utf-8") if is_main_process() else b""
    size = torch.tensor([len(payload)], dtype=torch.int64, device=device)
    dist.broadcast(size, MAIN_RANK)
    buffer = torch.zeros(int(size.item()), dtype=torch.uint8, device=device)
    if is_main_process():
        buffer[:] = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device)
    dist.broadcast(buffer, MAIN_RANK)
    return json.loads(bytes(buffer.cpu().numpy()).decode("utf-8"))


class DistributedTraining:
    """Mixin for a RecBole trainer in a run of several processes (see the module docstring)."""

    def __init__(self, config: Any, model: Any):
        on_cpu = torch.device(config["device"]).type == "cpu"
        if on_cpu:
            with one_process(config):  # RecBole's wrap names a CUDA device
                super().__init__(config, model)
            # gloo cannot broadcast a sparse buffer (V-SKNN's index): such buffers are built from
            # the data, the same on every rank, so only the dense ones are sent
            sparse = any(buffer.is_sparse for buffer in self.model.buffers())
            self.distributed_model = DistributedDataParallel(self.model, broadcast_buffers=not sparse)
        else:
            super().__init__(config, model)
        self._alone = False  # inside an evaluation made by the main rank alone
        self.rows_trained = self.steps_trained = 0  # this rank's share, for gather_processes

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        inner = loss_func or self.model.calculate_loss

        def counted(interaction):
            self.rows_trained += len(interaction)
            self.steps_trained += 1
            return inner(interaction)

        return super()._train_epoch(train_data, epoch_idx, loss_func=counted, show_progress=show_progress)

    def _main_rank_only(self, evaluation: Callable[[], Any]) -> Any:
        """``evaluation()`` run by the main rank alone, as in one process; its result on every rank."""
        if self._alone:
            return evaluation()
        result = None
        if is_main_process():
            self._alone = True
            try:
                with one_process(self.config):
                    result = evaluation()
            finally:
                self._alone = False
        return broadcast_json(result)

    def _valid_epoch(self, valid_data, show_progress=False):
        score, result = self._main_rank_only(lambda: super(DistributedTraining, self)._valid_epoch(
            valid_data, show_progress=show_progress))  # a JSON list on the way
        return score, result

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        return self._main_rank_only(lambda: super(DistributedTraining, self).evaluate(
            eval_data, load_best_model=load_best_model, model_file=model_file, show_progress=show_progress))

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if is_main_process():
            with one_process(self.config):  # RecBole's own test is the machine-local rank
                super()._save_checkpoint(epoch, verbose=verbose, **kwargs)


# bytes of a parameter digest sent to the other ranks (as one int64)
DIGEST_BYTES = 8
DIGEST_MASK = 2 ** (8 * DIGEST_BYTES) - 1  # the int64 read back as the unsigned digest


def parameters_digest(model: torch.nn.Module) -> int:
    """The model's parameters as one number: equal on two ranks when their weights are equal."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode("utf-8"))
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return int.from_bytes(digest.digest()[:DIGEST_BYTES], "little", signed=True)


def gather_processes(trainer: Any) -> list[dict[str, Any]]:
    """Per global rank, on every rank: the training rows and optimizer steps it took and the
    digest of its weights (equal on every rank when the gradients were averaged across them)."""
    mine = torch.tensor([trainer.rows_trained, trainer.steps_trained, parameters_digest(trainer.model)],
                        dtype=torch.int64, device=collective_device())
    every = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    return [{"rank": rank, "train_rows": int(t[0]), "train_steps": int(t[1]),
             "weights_digest": f"{int(t[2]) & DIGEST_MASK:016x}"} for rank, t in enumerate(every)]


def with_distributed(trainer_class: type) -> type:
    """``trainer_class`` with :class:`DistributedTraining` mixed in (one class per base)."""
    return mixed_in(DistributedTraining, trainer_class)
