"""Trainer of SRIEM: RecBole's ``Trainer`` plus the paper's step decay of the learning rate.

RecBole 1.2.1's ``Trainer`` has no learning-rate scheduler, and SR-IEM (like SR-GNN) multiplies
the learning rate by ``lr_decay_rate`` every ``lr_decay_step`` epochs.
"""

from __future__ import annotations

from recbole.trainer import Trainer
from recbole.utils import set_color


class StepDecayTrainer(Trainer):
    """RecBole's ``Trainer`` whose learning rate at epoch ``e`` (0-based) is
    ``learning_rate * lr_decay_rate ** (e // lr_decay_step)``.

    The rate is computed from the epoch index rather than kept in a scheduler's state, so a run
    resumed with ``resume_checkpoint`` continues on the same schedule. ``lr_decay_step`` unset or
    0 means no decay (RecBole's behaviour).
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.lr_decay_step = config["lr_decay_step"] or 0
        self.lr_decay_rate = config["lr_decay_rate"]
        if self.lr_decay_step < 0:
            raise ValueError(f"lr_decay_step must be >= 0, got {self.lr_decay_step}")
        if self.lr_decay_step and self.lr_decay_rate is None:
            raise ValueError("lr_decay_step is set but lr_decay_rate is not")

    def learning_rate_at(self, epoch_idx: int) -> float:
        if not self.lr_decay_step:
            return self.learning_rate
        return self.learning_rate * self.lr_decay_rate ** (epoch_idx // self.lr_decay_step)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        lr = self.learning_rate_at(epoch_idx)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.lr_decay_step and epoch_idx % self.lr_decay_step == 0:
            self.logger.info(set_color("learning rate", "blue") + f": {lr:g}")
        return super()._train_epoch(
            train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress
        )


class SRIEMTrainer(StepDecayTrainer):
    """SR-IEM's trainer: Adam with the step decay of the paper (0.1 every 3 epochs by default,
    ``properties/model/SRIEM.yaml``)."""
