r"""Neuron dynamics, written once.

Every part of sc-neurocore that simulates a network (the reference `LIFNetwork`, the traced model graph,
the perturbation engines' replay and the FPGA's integer reference) is built from the pure step functions
of this package, so "what the network does" cannot drift between them.

Each step has the form `step(input, state, params) -> (output, state)`; states and parameters are small
immutable NamedTuples (the Norse style). All functions work on any tensor shape and any floating dtype,
and the trace step on integer tensors too. Each family lives in its own module:

- `sc_neurocore.dynamics.leaky`: discrete-time leaky neurons as snnTorch computes them (`Leaky`,
  `Synaptic`, `RLeaky`, `RSynaptic`) and the plain leaky integrator;
- `sc_neurocore.dynamics.current`: current-based neurons integrated by forward Euler as Norse computes
  them (`LIFCell`, `LIF`, `LIFRecurrentCell`, `LIFBoxCell`, `LICell`, `LI`, `LILinearCell`, `LIBoxCell`);
- `sc_neurocore.dynamics.integrate_fire`: integrate-and-fire neurons as SpikingJelly computes them
  (`IFNode`, `LIFNode`, `ParametricLIFNode`; hard and soft reset);
- `sc_neurocore.dynamics.trace`: the decayed spike trace of the attribution rule and the FPGA.
"""

from .current import (BoxReset, CurrentBoxState, CurrentLIBoxParameters, CurrentLIFBoxParameters, CurrentLIFParameters,
                      CurrentLIFState, CurrentLIParameters, CurrentLIState, RecurrentCurrentLIFState,
                      current_box_initial_state, current_li_box_step, current_li_initial_state, current_li_step,
                      current_lif_box_decision, current_lif_box_integrate, current_lif_box_step, current_lif_decision,
                      current_lif_initial_state, current_lif_integrate, current_lif_step)
from .integrate_fire import (IntegrateFireParameters, IntegrateFireState, integrate_fire_charge, integrate_fire_decision,
                             integrate_fire_fire, integrate_fire_initial_state, integrate_fire_reset,
                             integrate_fire_step)
from .leaky import (RESET_MECHANISMS, LIFParameters, LIFState, LIState, RecurrentLIFParameters, RecurrentLIFState,
                    ResetMechanism, SynapticParameters, SynapticState, heaviside, li_step, lif_initial_state,
                    lif_step, recurrent_lif_initial_state, recurrent_lif_step, synaptic_initial_state, synaptic_step)
from .trace import decay_weights, trace_step

__all__ = [
    "RESET_MECHANISMS", "BoxReset", "CurrentBoxState", "CurrentLIBoxParameters", "CurrentLIFBoxParameters",
    "CurrentLIFParameters", "CurrentLIFState", "CurrentLIParameters", "CurrentLIState", "IntegrateFireParameters",
    "IntegrateFireState", "LIFParameters", "LIFState", "LIState", "RecurrentCurrentLIFState", "RecurrentLIFParameters",
    "RecurrentLIFState", "ResetMechanism", "SynapticParameters", "SynapticState", "current_box_initial_state",
    "current_li_box_step", "current_li_initial_state", "current_li_step", "current_lif_box_decision",
    "current_lif_box_integrate", "current_lif_box_step", "current_lif_decision", "current_lif_initial_state",
    "current_lif_integrate", "current_lif_step", "decay_weights", "heaviside", "integrate_fire_charge",
    "integrate_fire_decision", "integrate_fire_fire", "integrate_fire_initial_state", "integrate_fire_reset",
    "integrate_fire_step", "li_step", "lif_initial_state", "lif_step", "recurrent_lif_initial_state",
    "recurrent_lif_step", "synaptic_initial_state", "synaptic_step", "trace_step",
]
