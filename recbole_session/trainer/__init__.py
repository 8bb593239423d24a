"""Model-specific trainers, found by :func:`recbole_session.utils.get_trainer` as
``<Model>Trainer``; every model without one uses RecBole's own trainer."""

from recbole_session.trainer.sriem_trainer import LR_SCHEDULES, ScheduledTrainer, SRIEMTrainer

__all__: list[str] = ["LR_SCHEDULES", "SRIEMTrainer", "ScheduledTrainer"]
