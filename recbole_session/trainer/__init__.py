"""Model-specific trainers, found as ``<Model>Trainer`` by the rule of
:mod:`recbole_session.lookup`; every model without one uses RecBole's own trainer."""

from recbole_session.trainer.protocol_trainer import (
    ProtocolValidation,
    SessionBERT4RecTrainer,
    with_protocol_validation,
)
from recbole_session.trainer.sriem_trainer import LR_SCHEDULES, ScheduledTrainer, SRIEMTrainer

__all__: list[str] = [
    "LR_SCHEDULES",
    "ProtocolValidation",
    "SRIEMTrainer",
    "ScheduledTrainer",
    "SessionBERT4RecTrainer",
    "with_protocol_validation",
]
