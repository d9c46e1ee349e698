"""The test zoo: models built as the frameworks' documentation builds them (see `entry.py`)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from .entry import Built, ZooModel


def collect() -> list[ZooModel]:
    """Every entry of every `models_*.py` module in this folder, in module order."""
    models: list[ZooModel] = []
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name.startswith("models_"):
            models += importlib.import_module(f"{__name__}.{info.name}").MODELS
    return models


__all__ = ["Built", "ZooModel", "collect"]
