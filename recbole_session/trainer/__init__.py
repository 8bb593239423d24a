"""Model-specific trainers, found as ``<Model>Trainer`` by the rule of
:mod:`recbole_session.lookup`; every model without one uses RecBole's own trainer."""

from recbole_session.trainer.protocol_trainer import (
    ProtocolValidation,
    SessionBERT4RecTrainer,
    with_protocol_validation,
)
from recbole_session.trainer.sriem_trainer import SRIEMTrainer, StepDecayTrainer

__all__: list[str] = [
    "ProtocolValidation",
    "SRIEMTrainer",
    "SessionBERT4RecTrainer",
    "StepDecayTrainer",
    "with_protocol_validation",
]
