"""Toxic types, one module each. A module registers its type with `@register("name")`; every
module in this package is imported here, so adding a toxic touches no other file."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Mapping

from chaos.toxiproxy.toxics.base import (
    CleanupToxic,
    StatefulToxic,
    Toxic,
    registered,
    settings_from_json,
    settings_to_json,
)

__all__ = [
    "CleanupToxic",
    "StatefulToxic",
    "Toxic",
    "settings_from_json",
    "settings_to_json",
    "toxic_types",
]

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def toxic_types() -> Mapping[str, type[Any]]:
    """Type name -> settings class, for every registered toxic."""
    return registered()
