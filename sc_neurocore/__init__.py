"""sc-neurocore: why did this spiking neural network fire?

The explainers and their results are importable from here (`from sc_neurocore import TemporalSaliency`);
they live in `sc_neurocore.explain`, the reference network in `sc_neurocore.models`, the neuron dynamics
(written once) in `sc_neurocore.dynamics`, the adapters for snnTorch, Norse and other modules in
`sc_neurocore.adapters`.

Every public name loads its module on first use (PEP 562), so `import sc_neurocore` and
`sc-neurocore --help` stay light: torch is imported only when an explainer or a model is touched.

Example:
    >>> import sc_neurocore
    >>> sc_neurocore.TemporalSaliency.__module__
    'sc_neurocore.explain.saliency'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: The one version string; pyproject.toml reads it from here.
__version__ = "0.1.0"

#: Public name -> the module that defines it, imported when the name is first used.
_LAZY = {
    "SpikeAttributor": "sc_neurocore.explain",
    "TemporalSaliency": "sc_neurocore.explain",
    "CausalImportance": "sc_neurocore.explain",
    "AttributionResult": "sc_neurocore.explain",
    "SaliencyResult": "sc_neurocore.explain",
    "CausalResult": "sc_neurocore.explain",
    "LIFNetwork": "sc_neurocore.models",
    "from_snntorch": "sc_neurocore.adapters",
    "from_norse": "sc_neurocore.adapters",
    "from_module": "sc_neurocore.adapters",
    "from_nir": "sc_neurocore.adapters",
    "from_spikingjelly": "sc_neurocore.adapters",
    "explain_dataset": "sc_neurocore.distributed",
    "load_explanations": "sc_neurocore.distributed",
}

__all__ = [
    "AttributionResult",
    "CausalImportance",
    "CausalResult",
    "LIFNetwork",
    "SaliencyResult",
    "SpikeAttributor",
    "TemporalSaliency",
    "__version__",
    "explain_dataset",
    "from_module",
    "from_nir",
    "from_norse",
    "from_snntorch",
    "from_spikingjelly",
    "load_explanations",
]

if TYPE_CHECKING:
    from .adapters import from_module, from_nir, from_norse, from_snntorch, from_spikingjelly
    from .distributed import explain_dataset, load_explanations
    from .explain import (
        AttributionResult,
        CausalImportance,
        CausalResult,
        SaliencyResult,
        SpikeAttributor,
        TemporalSaliency,
    )
    from .models import LIFNetwork


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'sc_neurocore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
