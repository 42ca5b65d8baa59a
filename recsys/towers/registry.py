"""Towers by name: ``@register_tower("text")`` and ``create_tower("text", **kwargs)``."""
from __future__ import annotations

import importlib
from collections.abc import Callable

from recsys.errors import ConfigError
from recsys.towers.base import Tower

__all__ = ["register_tower", "create_tower", "list_towers"]

_TOWERS: dict[str, Callable[..., Tower]] = {}
# the built-in towers' modules register them when imported, on first use: `import recsys` stays
# light (no torch), and this module imports none of the modules that import it
_BUILTIN = ("recsys.towers.image", "recsys.towers.tabular", "recsys.towers.text")


def register_tower(name: str):
    """Class or function decorator that makes a tower constructible by ``name``."""

    def decorate(factory):
        if name in _TOWERS:
            raise ValueError(f"tower {name!r} is registered twice")
        _TOWERS[name] = factory
        return factory

    return decorate


def _load_builtin() -> None:
    for module in _BUILTIN:
        importlib.import_module(module)


def list_towers() -> list[str]:
    _load_builtin()
    return sorted(_TOWERS)


def create_tower(name: str, **kwargs) -> Tower:
    """Build a registered tower; ``None`` keyword values fall back to the tower's own defaults.

    Raises:
        ConfigError: unknown name; the message lists the registered ones.

    Example:
        >>> create_tower("tabular").modality
        'tabular'
    """
    _load_builtin()
    if name not in _TOWERS:
        raise ConfigError(f"unknown tower {name!r}; choose one of: {', '.join(list_towers())}")
    return _TOWERS[name](**{k: v for k, v in kwargs.items() if v is not None})
