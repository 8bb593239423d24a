"""Ray Tune searches of recbole-session and RecBole models.

Python API::

    from recbole_session.tune import tune_model
    result = tune_model("GRU4Rec", "ml-100k", "properties/tune/GRU4Rec.yaml",
                        num_samples=4, config_dict={"epochs": 10}, output="runs/gru")
    result.rows[0], result.best        # best trial first; its config as in best.yaml

Command line: ``python -m recbole_session.tune --model=M --dataset=D [--space FILE] ...``
(see ``python -m recbole_session.tune --help``).
"""

from recbole_session.tune.search import SearchResult, SearchSettings, start_ray, tune_model
from recbole_session.tune.space import SearchSpace, SearchSpaceError, load_space, parse_space

__all__ = [
    "SearchResult",
    "SearchSettings",
    "SearchSpace",
    "SearchSpaceError",
    "load_space",
    "parse_space",
    "start_ray",
    "tune_model",
]
