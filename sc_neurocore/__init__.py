"""sc-neurocore: why did this spiking neural network fire?

Explainers live in :mod:`sc_neurocore.explain`, the reference network in :mod:`sc_neurocore.models`,
the neuron dynamics (written once) in :mod:`sc_neurocore.dynamics`.
"""

__version__ = "0.1.0"

from .models import LIFNetwork  # noqa: E402

__all__ = ["LIFNetwork", "__version__", "explain_dataset", "load_explanations"]

#: Public names whose modules load only when first used, so that ``import sc_neurocore`` stays light.
_LAZY = {"explain_dataset": "sc_neurocore.distributed", "load_explanations": "sc_neurocore.distributed"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sc_neurocore' has no attribute {name!r}")
