"""The `SpikingModel` protocol: what every explainer accepts.

A spiking model, whatever framework it was written in, is seen by the explainers as:

* a batched call ``run(spikes) -> outputs`` from batch-first spikes ``(B, T, N)`` to a readout
  ``(B, C)``, resetting all neuron state on every call (so results never depend on what ran before);
* an ordered list of its neuron layers (name and size), ``neuron_layers``;
* the ability to silence a per-sample boolean mask of neurons ``(B, n)`` in any of those layers at every
  timestep (``run(spikes, silence={name: mask})``), so one batched pass silences a different neuron in
  each row;
* optionally, a recording of every layer's spikes and membranes (``record``) for gated attribution, and
  the chain of ``(n_in, n_out)`` weight matrices (``linear_weights``) where the model is a plain stack
  of linear layers and neurons.

Silencing means a neuron's spikes never reach the rest of the network (its emitted spikes are forced to
0 at every timestep); its own membrane keeps integrating. The input pseudo-layer ``"input"`` is handled by
the explainers themselves (an input neuron is silenced by zeroing its spike train), so every model
supports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol, runtime_checkable

from torch import Tensor

INPUT_LAYER = "input"


class LayerRecord(NamedTuple):
    """What one neuron layer did during a forward pass, batch-first.

    Attributes:
        name: the layer's name (as in ``neuron_layers``).
        spikes: emitted spikes ``(B, T, n)``.
        membrane: membrane potential after each step ``(B, T, n)``.
    """

    name: str
    spikes: Tensor
    membrane: Tensor


class Recording(NamedTuple):
    """A forward pass with every layer recorded.

    Attributes:
        outputs: the readout ``(B, C)``, as ``run`` returns it.
        layers: one `LayerRecord` per neuron layer, input side first.
    """

    outputs: Tensor
    layers: tuple[LayerRecord, ...]


@runtime_checkable
class SpikingModel(Protocol):
    """A batched spiking network the explainers can run, silence and record (see the module docstring)."""

    @property
    def neuron_layers(self) -> Mapping[str, int]:
        """Ordered ``{layer name: number of neurons}``, input side first."""
        ...

    @property
    def n_inputs(self) -> int:
        """Number of input neurons ``N``."""
        ...

    def run(self, spikes: Tensor, silence: Mapping[str, Tensor] | None = None) -> Tensor:
        """Readout ``(B, C)`` for spikes ``(B, T, N)``, with ``silence[name]`` a ``(B, n)`` bool mask."""
        ...

    def record(self, spikes: Tensor) -> Recording:
        """One forward pass recording every neuron layer's spikes and membranes."""
        ...

    def linear_weights(self) -> list[Tensor] | None:
        """The ``(n_in, n_out)`` weight chain of a linear-layer stack, or ``None`` if not one."""
        ...
