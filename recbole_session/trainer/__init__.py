"""Model-specific trainers, found as ``<Model>Trainer`` by the rule of
:mod:`recbole_session.lookup`; every model without one uses RecBole's own trainer."""

from recbole_session.trainer.sriem_trainer import LR_SCHEDULES, ScheduledTrainer, SRIEMTrainer

__all__: list[str] = ["LR_SCHEDULES", "SRIEMTrainer", "ScheduledTrainer"]
