"""The timestep-level model graph: what every front end traces a spiking model into, and what the
executors, the weight-path attribution and the FPGA export read.

- `maps`: linear maps (`Dense`, `MatMul`, `Conv`, `Pool`, `Scale`, `BatchNorm`, `Reshape`, `Identity`) and the
  `MaxPool` selection, each with its adjoint;
- `neurons`: `NeuronNode`, a layer advanced by a step function of `sc_neurocore.dynamics`;
- `model`: `Segment` and `ModelGraph`, the one simulation loop, itself a `SpikingModel`;
- `readout`: the readouts;
- `paths`: weight paths through the graph's adjoints, for `SpikeAttributor`.
"""

from .maps import BatchNorm, Conv, Dense, Identity, LinearMap, MatMul, MaxPool, Pool, Reshape, Scale
from .model import ModelGraph, Segment
from .neurons import NeuronNode
from .paths import paths_for, weight_paths
from .readout import MEMBRANE_READOUTS, READOUTS, apply_readout, check_readout

__all__ = ["MEMBRANE_READOUTS", "READOUTS", "BatchNorm", "Conv", "Dense", "Identity", "LinearMap", "MatMul", "MaxPool",
           "ModelGraph", "NeuronNode", "Pool", "Reshape", "Scale", "Segment", "apply_readout", "check_readout", "paths_for", "weight_paths"]
