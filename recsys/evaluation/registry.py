"""Every model an evaluation can name: the classic ones (:data:`~recsys.evaluation.models.MODELS`),
the ranking stage's (:data:`~recsys.evaluation.ranking.RANKING_MODELS`) and ``bundle:PATH``."""
from __future__ import annotations

from recsys.errors import ConfigError
from recsys.evaluation.models import MODELS, ALSModel, BundleModel, Model, RandomModel
from recsys.evaluation.ranking import RANKING_MODELS
from recsys.settings import Settings

__all__ = ["create_model"]


def create_model(name: str, settings: Settings) -> Model:
    """A model by name: one of :data:`MODELS` or ``bundle:PATH``.

    Raises:
        ConfigError: an unknown name.
    """
    if name.startswith("bundle:"):
        return BundleModel(name.split(":", 1)[1])
    if name == "random":
        return RandomModel(settings.seed)
    if name == "als":
        return ALSModel(settings.collab.factors, settings.seed)
    if name in MODELS:
        return MODELS[name]()
    if name in RANKING_MODELS:
        return RANKING_MODELS[name]()
    raise ConfigError(f"unknown model {name!r}; choose from {', '.join([*MODELS, *RANKING_MODELS])} "
                      "or bundle:PATH")
