"""sc-neurocore: why did this spiking neural network fire?

Explainers live in :mod:`sc_neurocore.explain`, the reference network in :mod:`sc_neurocore.models`,
the neuron dynamics (written once) in :mod:`sc_neurocore.dynamics`.
"""

__version__ = "0.1.0"

from .models import LIFNetwork  # noqa: E402

__all__ = ["LIFNetwork", "__version__"]
