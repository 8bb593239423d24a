"""recbole-session: session-aware and session-based recommenders for RecBole.

``import recbole_session`` applies the compatibility shims of :mod:`recbole_session.compat`
and registers this package's models, trainers and dataset classes with RecBole, so that
RecBole's own ``Config``-free lookups (``get_model``, ``load_data_and_model``) find them.
"""

from recbole_session import compat

compat.apply()

from recbole_session.config import Config  # noqa: E402
from recbole_session.utils import (  # noqa: E402
    create_dataset,
    get_model,
    get_trainer,
    model_names,
    register_with_recbole,
)

register_with_recbole()

__version__ = "0.1.0"

__all__ = ["Config", "create_dataset", "get_model", "get_trainer", "model_names", "__version__"]
