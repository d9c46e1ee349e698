r"""Readouts: how the output layer's activity over time becomes the `(B, C)` an explainer sees.

With the output layer's emitted spikes $s[t]$ and membrane $v[t]$ over $t = 0 .. T-1$:

| readout | value | use it when |
|---|---|---|
| `"count"` | $\sum_t s[t]$ (the default) | the class is the neuron that fires most |
| `"rate"` | $\frac{1}{T} \sum_t s[t]$ | you compare windows of different length |
| `"final_membrane"` | $v[T-1]$ | the model was trained on the last step |
| `"max_membrane"` | $\max_t v[t]$ | a leaky-integrator readout (Norse's `LI` with a max-over-time decoder) |

Silencing an output neuron forces its emitted spikes to 0, so it changes `"count"` and `"rate"`; a
spiking neuron's own membrane keeps integrating, so the membrane readouts of a silenced *output* neuron do
not move (its silencing still moves every neuron downstream of a hidden layer). A leaky integrator emits
its membrane, so for it the membrane readouts use what it emits, and silencing one zeroes it.
"""

from __future__ import annotations

from torch import Tensor

from ..inputs import as_choice

READOUTS: tuple[str, ...] = ("count", "rate", "final_membrane", "max_membrane")

#: Readouts that need the output layer's membrane rather than its spikes.
MEMBRANE_READOUTS: tuple[str, ...] = ("final_membrane", "max_membrane")


def check_readout(readout: object) -> str:
    """`readout` if it names a readout, else a `ValueError` listing them.

    Example:
        >>> check_readout("count")
        'count'
    """
    return as_choice(readout, READOUTS, "readout")


def apply_readout(readout: str, spikes: Tensor | None, membrane: Tensor | None) -> Tensor:
    """Reduce the output layer's activity over time to `(B, C)`.

    Args:
        readout: one of `READOUTS`.
        spikes: emitted spikes, time-first `(T, B, C)` (`None` if the model does not expose them).
        membrane: membrane potentials `(T, B, C)` (`None` if not exposed).

    Returns:
        The readout `(B, C)`, differentiable when its input is.

    Example:
        >>> import torch
        >>> spikes = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])   # T=2, B=1, C=2
        >>> apply_readout("count", spikes, None)
        tensor([[2., 1.]])
    """
    if readout in MEMBRANE_READOUTS:
        if membrane is None:
            raise ValueError(f"readout: {readout!r} needs the output layer's membrane, which this model does "
                             "not expose; use readout='count' or 'rate'")
        return membrane[-1] if readout == "final_membrane" else membrane.amax(dim=0)
    if spikes is None:
        raise ValueError(f"readout: {readout!r} needs the output layer's spikes, which this model does not "
                         "expose; use readout='final_membrane' or 'max_membrane'")
    count = spikes.sum(dim=0)
    return count / spikes.shape[0] if readout == "rate" else count
