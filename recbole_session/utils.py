"""The lookups in one import, as RecBole's ``recbole.utils`` (and RecBole-GNN's ``utils``):
``get_model``, ``get_trainer`` and ``model_names`` (:mod:`recbole_session.lookup`, where the
discovery rule is written) and ``create_dataset`` (:mod:`recbole_session.build`: it converts a
dataset that a recipe knows first). Nothing in the package imports this module."""

from recbole_session.build import create_dataset
from recbole_session.lookup import get_model, get_trainer, model_names

__all__ = ["create_dataset", "get_model", "get_trainer", "model_names"]
