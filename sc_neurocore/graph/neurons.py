"""Neuron nodes: a layer of neurons advanced by one pure step function of `sc_neurocore.dynamics`.

A node knows nothing of the framework it came from: the front end that traced the model chose the step
function and filled its parameters from the module, and the graph is verified against the model's own
forward before anything trusts it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

#: `step(current, state, params) -> (emitted, state)`, a step function of `sc_neurocore.dynamics`.
Step = Callable[[Tensor, Any, Any], tuple[Tensor, Any]]


@dataclass(frozen=True, eq=False)
class NeuronNode:
    """One layer of neurons.

    Attributes:
        name: the layer's name, as the user's model names the module (`"1"`, `"lif1"`): the name
            explainers take for `layer=` and `silence=`.
        kind: what it is, in the framework's words (`"leaky"`, `"synaptic"`, `"lif_cell"`, ...).
        shape: the per-sample shape of its state and output, e.g. `(128,)` or `(12, 12, 12)`.
        step: the step function.
        params: the step function's parameters (a NamedTuple of `sc_neurocore.dynamics`).
        initial_state: `initial_state(current) -> state`, the resting state shaped like a `(B, *shape)` current.
        spiking: `False` for a leaky integrator, which emits its membrane rather than spikes.
        feedback: the name of the state field that holds the emitted spikes the layer feeds back to itself
            (recurrent neurons), or `None`. A silenced neuron feeds back its silenced output.
        decision: `decision(current, before, after, params) -> Tensor`, the signed distance to threshold
            that decided each spike this step (for executors that watch near-ties), or `None` when it is
            `after.membrane - params.threshold`.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    step: Step
    params: Any
    initial_state: Callable[[Tensor], Any]
    spiking: bool = True
    feedback: str | None = None
    decision: Callable[[Tensor, Any, Any, Any], Tensor] | None = None

    @property
    def size(self) -> int:
        """The number of neurons."""
        return math.prod(self.shape)

    @property
    def recurrent(self) -> Any:
        """The recurrent map (a graph map's `forward`) or `None`."""
        return getattr(self.params, "recurrent", None)

    def membrane(self, state: Any) -> Tensor:
        """The membrane potential held in `state`."""
        return state.membrane
