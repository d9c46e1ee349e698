"""Why did this spiking network fire? The three explainers and their results.

* `SpikeAttributor`: one pass, no autograd -- weight paths times exponential decay, per spike and timestep.
* `TemporalSaliency`: exact -- the output change when each input spike is removed.
* `CausalImportance`: the output or accuracy change when each neuron is silenced for all timesteps.
"""

from .attribution import SpikeAttributor
from .causal import CausalImportance
from .results import AttributionResult, CausalResult, SaliencyResult
from .saliency import TemporalSaliency
from .sparse_results import SparseAttributionResult

__all__ = ["SpikeAttributor", "TemporalSaliency", "CausalImportance", "AttributionResult", "SaliencyResult",
           "CausalResult", "SparseAttributionResult"]
