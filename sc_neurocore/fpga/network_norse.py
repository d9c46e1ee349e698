r"""Norse models on the chip: a `SequentialState` of `Linear` + `LIFBoxCell` pairs as the integer network.

Norse's box neuron (`LIFBoxCell`, no synaptic current) steps

$$\tilde v_t = v_{t-1} + \Delta t\, \tau_{mem}^{-1} \big((v_{leak} - v_{t-1}) + W x_t\big), \quad
s_t = H(\tilde v_t - v_{th}), \quad v_t = (1 - s_t)\, \tilde v_t + s_t v_{reset},$$

which with $a = \Delta t\, \tau_{mem}^{-1}$, $v_{leak} = v_{reset} = 0$ and `reset_value` is exactly the
chip's step with $\beta = 1 - a$, input weights $a W$ and a same-step reset to zero
(`NetworkSpec(reset="zero", reset_delay=False)`). The integer network then differs from Norse's float
forward only by the quantisation of $\beta$, $a W$ and $v_{th}$ and the floor of the leak;
`network_reference.integer_accuracy` reports the accuracy loss.

Refused, with the reason, because the chip's datapath cannot hold them:

* Norse's **current-based** LIF (`LIFCell`, `LIF`, `LIFRecurrentCell`, `LIFRecurrent`, with `tau_syn_inv`):
  its synaptic current is a second state per neuron that decays and feeds the membrane one step later;
  the chip keeps one membrane per neuron and one multiplier pass per synapse. Use `LIFBoxCell` for the
  chip, or explain the model in software (`SpikeAttributor`, `TemporalSaliency`).
* `reset_subtract` (Norse subtracts in the same step; the chip subtracts on the next step), a nonzero
  `v_leak` or `v_reset`, per-neuron parameters, a threshold method whose forward is not the Heaviside
  step, and leaky-integrator readouts (`LI`, `LIBoxCell`): the chip counts output spikes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

#: The Norse neurons with a synaptic current (`tau_syn_inv`), refused by name.
CURRENT_BASED = ("LIFCell", "LIF", "LIFRecurrentCell", "LIFRecurrent", "LIFAdExCell", "LIFExCell")


def is_norse_stack(model: Any) -> bool:
    """Whether `model` is a Norse `SequentialState` (without importing Norse when it is not loaded).

    Example:
        >>> import torch
        >>> is_norse_stack(torch.nn.Sequential(torch.nn.Linear(2, 2)))
        False
    """
    return type(model).__name__ == "SequentialState" and type(model).__module__.startswith("norse")


def _scalar(value: Any, what: str, layer: int) -> float:
    tensor = torch.as_tensor(value).detach()
    if tensor.numel() != 1:
        raise ValueError(f"model: layer {layer}'s {what} is per neuron ({tuple(tensor.shape)}); the chip has one "
                         "value per layer")
    return float(tensor)


def norse_chain(model: Any) -> tuple[list[Tensor], list[float], list[float], str, bool]:
    """Weights `(n_in, n_out)` (as `a W`), betas `1 - a`, thresholds, reset and reset delay of a Norse stack.

    Raises:
        ValueError: a current-based Norse LIF, or another layer or parameter the chip cannot run (the
            message says why and what to use).
        TypeError: a stack that is not `Linear` + neuron pairs.

    Example:
        >>> import torch, norse.torch as norse
        >>> stack = norse.SequentialState(torch.nn.Linear(4, 2, bias=False), norse.LIFBoxCell())
        >>> weights, betas, thresholds, reset, delay = norse_chain(stack)
        >>> round(betas[0], 6), thresholds, reset, delay
        (0.9, [1.0], 'zero', False)
    """
    from norse.torch.functional.reset import reset_subtract, reset_value

    from ..adapters.norse import HEAVISIDE_METHODS

    modules = list(model)
    weights: list[Tensor] = []
    betas: list[float] = []
    thresholds: list[float] = []
    if not modules or len(modules) % 2:
        raise TypeError(f"model: expected a Norse SequentialState of Linear + LIFBoxCell pairs, got {len(modules)} "
                        "modules")
    for layer, (linear, neuron) in enumerate(zip(modules[::2], modules[1::2], strict=True)):
        kind = type(neuron).__name__
        if kind in CURRENT_BASED:
            raise ValueError(
                f"model: layer {layer} is Norse's current-based {kind} (tau_syn_inv): its synaptic current is a "
                "second state per neuron, decaying and feeding the membrane a step later, which the chip's "
                "datapath does not hold; use norse.LIFBoxCell (no synaptic current) for the chip, or explain "
                "this model in software (SpikeAttributor, TemporalSaliency)")
        if not isinstance(linear, torch.nn.Linear) or kind != "LIFBoxCell":
            raise TypeError(f"model: expected Linear + norse LIFBoxCell pairs, got {type(linear).__name__} + {kind} "
                            f"at layer {layer}")
        if linear.bias is not None and bool((linear.bias != 0).any()):
            raise ValueError("model: the chip has no biases; expected Linear layers without bias")
        p = neuron.p
        if p.method not in HEAVISIDE_METHODS:
            raise ValueError(f"model: layer {layer}'s threshold method {p.method!r} is not the Heaviside step")
        if p.reset_method is reset_subtract:
            raise ValueError(f"model: layer {layer} resets by reset_subtract in the same step, which the chip does "
                             "not do (it subtracts on the next step); use reset_value with v_reset = 0")
        if p.reset_method is not reset_value:
            raise ValueError(f"model: layer {layer}'s reset method {p.reset_method!r} is not on the chip")
        for name in ("v_leak", "v_reset"):
            if _scalar(getattr(p, name), name, layer) != 0.0:
                raise ValueError(f"model: layer {layer} has {name} != 0; the chip's membranes rest and reset at 0")
        rate = float(neuron.dt) * _scalar(p.tau_mem_inv, "tau_mem_inv", layer)
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"model: layer {layer} has dt * tau_mem_inv = {rate}; expected a value in (0, 1] "
                             "(a membrane decay 1 - dt * tau_mem_inv in [0, 1))")
        weights.append(rate * linear.weight.detach().to(torch.float64).T)
        betas.append(1.0 - rate)
        thresholds.append(_scalar(p.v_th, "v_th", layer))
    return weights, betas, thresholds, "zero", False
