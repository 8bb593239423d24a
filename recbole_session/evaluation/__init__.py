"""Evaluation the way the papers report it: several candidate protocols on one trained model.

``evaluate_protocols(model, eval_data, config, protocols=None) -> dict[str, float]`` evaluates a
trained model on a RecBole full-sort eval dataloader under each protocol (default
``config["eval_protocols"]``): ``random<N>``, ``popular<N>``, ``full`` (the papers') and
RecBole's ``uni<N>`` / ``pop<N>``. Keys look like ``"random100/recall@10"``.
"""

from recbole_session.evaluation.candidates import (
    PAPER_PROTOCOLS,
    DatasetHistory,
    Protocol,
    history_from_dataset,
    parse_protocol,
    parse_protocols,
)
from recbole_session.evaluation.protocols import (
    ProtocolResult,
    dataset_history,
    evaluate_protocols,
    evaluate_protocols_detailed,
)

__all__ = [
    "PAPER_PROTOCOLS",
    "DatasetHistory",
    "Protocol",
    "ProtocolResult",
    "dataset_history",
    "evaluate_protocols",
    "evaluate_protocols_detailed",
    "history_from_dataset",
    "parse_protocol",
    "parse_protocols",
]
