"""Model selection on the papers' candidate protocols, and epochs of a fixed number of steps.

RecBole's ``Trainer`` selects the best epoch on its own evaluation of the valid split (full
ranking, or its sampled ``uni<N>`` / ``pop<N>`` modes). The session-aware papers select on valid
NDCG@10 under *random-100* negatives (100 items the user never touched, drawn once with a fixed
seed). :class:`ProtocolValidation` makes any RecBole trainer do that:

- ``valid_protocol: random100`` (any name :mod:`recbole_session.evaluation` knows; empty =
  RecBole's own validation) scores every validation with
  :func:`~recbole_session.evaluation.evaluate_protocols_detailed` on the full-sort valid loader,
  and ``valid_metric`` (e.g. ``NDCG@10``) of that protocol is the early-stopping score;
- ``epoch_steps: K`` (> 0) makes an epoch K optimizer steps drawn from a persistent pass over
  the training loader (reshuffled when it runs out), so that models whose training rows differ
  (RecBole's every-prefix rows, the per-user rows of SessionBERT4Rec) get the same number of
  steps between validations; empty or 0 = RecBole's epoch (one whole pass);
- after every epoch the C heap's free pages go back to the OS (:func:`recbole_session.compat.trim_heap`).

:func:`with_protocol_validation` returns the mixin over any trainer class (RecBole's
``Trainer`` for SASRec and BERT4Rec), so that every row of a comparison is selected the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from recbole.trainer import Trainer

from recbole_session import compat
from recbole_session.evaluation import evaluate_protocols_detailed
from recbole_session.literals import short
from recbole_session.lookup import mixed_in


class StepWindow:
    """The next ``steps`` batches of a dataloader, continuing where the previous window
    stopped; a new pass (RecBole reshuffles) starts when the loader runs out."""

    def __init__(self, loader: Any, steps: int):
        self.loader = loader
        self.steps = steps
        self.shuffle = getattr(loader, "shuffle", False)
        self._batches: Iterator | None = None

    def __len__(self) -> int:
        return self.steps

    @property
    def sampler(self) -> Any:
        # RecBole's distributed epoch calls ``train_data.sampler.set_epoch``: the loader's
        # DistributedSampler then reshuffles the next pass the same way on every rank
        return self.loader.sampler

    def __iter__(self) -> Iterator:
        for _ in range(self.steps):
            try:
                batch = next(self._batches) if self._batches is not None else None
            except StopIteration:
                batch = None
            if batch is None:
                self._batches = iter(self.loader)
                batch = next(self._batches)
            yield batch


class ProtocolValidation:
    """Mixin for a RecBole trainer: validation under ``valid_protocol`` and epochs of
    ``epoch_steps`` steps (see the module docstring)."""

    def __init__(self, config: Any, model: Any):
        super().__init__(config, model)
        self.valid_protocol = config["valid_protocol"] or None
        self.epoch_steps = int(config["epoch_steps"] or 0)
        # the whole dataset the loaders came from (histories for the negatives); when left
        # None, the evaluation module rebuilds it from the config once
        self.protocol_dataset = None
        self._window: StepWindow | None = None

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self.epoch_steps > 0:
            if self._window is None or self._window.loader is not train_data:
                self._window = StepWindow(train_data, self.epoch_steps)
            train_data = self._window
        result = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        compat.trim_heap()  # the freed blocks of the epoch's steps back to the OS (see compat)
        return result

    def _valid_epoch(self, valid_data, show_progress=False):
        if not self.valid_protocol:
            return super()._valid_epoch(valid_data, show_progress=show_progress)
        result = evaluate_protocols_detailed(
            self.model, valid_data, self.config, protocols=[self.valid_protocol],
            dataset=self.protocol_dataset,
        )
        key = f"{self.valid_protocol}/{self.valid_metric}"
        if key not in result.metrics:
            raise ValueError(
                f"valid_metric {short(self.valid_metric)} is not computed: add it to metrics/topk "
                f"(got {sorted(result.metrics)})"
            )
        return result.metrics[key], result.metrics


def with_protocol_validation(trainer_class: type) -> type:
    """``trainer_class`` with :class:`ProtocolValidation` mixed in (one class per base)."""
    return mixed_in(ProtocolValidation, trainer_class)


class SessionBERT4RecTrainer(ProtocolValidation, Trainer):
    """SessionBERT4Rec's trainer: RecBole's ``Trainer``, selecting on ``valid_protocol``
    (random-100 by default, as the paper) with ``epoch_steps`` available."""
