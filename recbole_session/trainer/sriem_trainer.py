"""Trainer of SRIEM: RecBole's ``Trainer`` plus a learning-rate schedule.

RecBole 1.2.1's ``Trainer`` has no learning-rate scheduler. SR-IEM (like SR-GNN) multiplies the
learning rate by 0.1 every 3 epochs; an epoch is a different amount of training on a small and
on a paper-size dataset, so the schedule can also count optimizer steps or follow the
validation score (``lr_schedule``, ``properties/model/SRIEM.yaml``).
"""

from __future__ import annotations

from recbole.trainer import Trainer
from recbole.utils import set_color
from torch.optim.lr_scheduler import ReduceLROnPlateau

from recbole_session.literals import short

LR_SCHEDULES = ("plateau", "steps", "epochs", "none")


class ScheduledTrainer(Trainer):
    """RecBole's ``Trainer`` with one of the ``lr_schedule`` schedules, each multiplying the
    learning rate by ``lr_decay_rate``:

    - ``epochs``: every ``lr_decay_epochs`` epochs (the paper's schedule);
    - ``steps``: every ``lr_decay_steps`` optimizer steps (an amount of training, whatever the
      dataset's size);
    - ``plateau``: when the validation score (RecBole's ``valid_metric``) has not improved for
      ``lr_plateau_patience`` evaluations (torch's ``ReduceLROnPlateau``);
    - ``none``: constant (RecBole's behaviour).

    ``epochs`` and ``steps`` compute the rate from the epoch index (and the steps done in it),
    so a run resumed with ``resume_checkpoint`` continues on the same schedule; ``plateau``
    resumes at the checkpoint's learning rate (the optimizer state holds it) with a fresh count.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.lr_schedule = config["lr_schedule"] or "none"
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {short(self.lr_schedule)}")
        self.lr_decay_rate = config["lr_decay_rate"]
        self.lr_decay_epochs = config["lr_decay_epochs"]
        self.lr_decay_steps = config["lr_decay_steps"]
        wanted = {"epochs": "lr_decay_epochs", "steps": "lr_decay_steps"}.get(self.lr_schedule)
        if self.lr_schedule != "none" and not (self.lr_decay_rate and 0 < self.lr_decay_rate < 1):
            raise ValueError(f"lr_schedule {self.lr_schedule} needs 0 < lr_decay_rate < 1")
        if wanted and not (isinstance(config[wanted], int) and config[wanted] > 0):
            raise ValueError(f"lr_schedule {self.lr_schedule} needs a positive integer {wanted}")
        self.optimizer_steps = 0  # optimizer steps since the start of training
        self.plateau = None
        if self.lr_schedule == "steps":
            self.optimizer.register_step_pre_hook(self._before_step)
        elif self.lr_schedule == "plateau":
            self.plateau = ReduceLROnPlateau(
                self.optimizer,
                mode="max" if self.valid_metric_bigger else "min",
                factor=self.lr_decay_rate,
                patience=config["lr_plateau_patience"],
                eps=0.0,  # torch skips decays smaller than 1e-8 by default: apply every one
            )

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def learning_rate_at(self, epoch_idx: int = 0, step: int = 0) -> float:
        """The rate of the ``epochs`` schedule at an epoch, or of ``steps`` at an optimizer
        step (0-based); the initial rate for the other schedules."""
        if self.lr_schedule == "epochs":
            return self.learning_rate * self.lr_decay_rate ** (epoch_idx // self.lr_decay_epochs)
        if self.lr_schedule == "steps":
            return self.learning_rate * self.lr_decay_rate ** (step // self.lr_decay_steps)
        return self.learning_rate

    def _before_step(self, optimizer, args, kwargs) -> None:
        lr = self.learning_rate_at(step=self.optimizer_steps)
        if lr != optimizer.param_groups[0]["lr"]:
            self.logger.info(set_color("learning rate", "blue") + f": {lr:g} at step {self.optimizer_steps}")
        self._set_lr(lr)
        self.optimizer_steps += 1

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.optimizer_steps = epoch_idx * len(train_data)
        if self.lr_schedule == "epochs":
            lr = self.learning_rate_at(epoch_idx)
            if lr != self.optimizer.param_groups[0]["lr"]:
                self.logger.info(set_color("learning rate", "blue") + f": {lr:g} at epoch {epoch_idx}")
            self._set_lr(lr)
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def _valid_epoch(self, valid_data, show_progress=False):
        valid_score, valid_result = super()._valid_epoch(valid_data, show_progress=show_progress)
        if self.plateau is not None:
            before = self.optimizer.param_groups[0]["lr"]
            self.plateau.step(valid_score)
            lr = self.optimizer.param_groups[0]["lr"]
            if lr != before:
                self.logger.info(set_color("learning rate", "blue") + f": {lr:g} (validation plateau)")
        return valid_score, valid_result


class SRIEMTrainer(ScheduledTrainer):
    """SR-IEM's trainer: Adam with the schedule of ``properties/model/SRIEM.yaml``."""
