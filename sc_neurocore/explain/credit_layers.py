r"""What the spike-time credit rule reads from each neuron layer: its linear response between spikes.

Between two spikes every neuron the graph supports is linear in its input current. The rule needs four
numbers per neuron, each read from the layer's own step function and parameters (never a fixed decay):

- the **membrane decay** $\beta$: $v[t] = \beta v[t-1] + (\text{what enters the membrane at } t)$;
- the **input gain** $a$ and the **synaptic decay** $b$: a kick $\delta$ of input current at $t$ enters the
  membrane at every step $u \ge t$ as $a\, b^{u-t} \delta$ ($b = 0$ for a neuron without a synaptic current:
  the kick enters once, at $t$);
- the **cost of a spike** $\theta$: the membrane a spike discharges, the threshold for a subtractive reset
  and the distance from the reset potential to the threshold, $v_{th} - v_{reset}$, for a hard one;

and how a reset treats the membrane (the `wipe` of `CreditLayer`). The membrane response to a kick at
$t$, while no spike resets it, is then the kernel

$$K(d) = \frac{\partial v[t+d]}{\partial I[t]} = \sum_{s=0}^{d} a\, b^{s} \beta^{d-s}.$$

| neuron (step function) | $\beta$ | $a$ | $b$ | $\theta$ | reset |
|---|---|---|---|---|---|
| snnTorch `Leaky` (`lif_step`) | `beta` | 1 | 0 | `threshold` | `reset_mechanism`, `reset_delay` |
| snnTorch `Synaptic` / `RSynaptic` (`synaptic_step`) | `beta` | 1 | `alpha` | `threshold` | as `Leaky`; a delayed zero reset also wipes the step's input |
| snnTorch `RLeaky` (`recurrent_lif_step`) | `beta` | 1 | 0 | `threshold` | as `Synaptic` |
| snnTorch leaky integrator (`li_step`) | `beta` | 1 | 0 | - | emits $v$ |
| Norse `LIF*Cell`, `LIFRecurrent*` (`current_lif_step`) | $1 - dt\,\tau_{mem}^{-1}$ | $dt\,\tau_{mem}^{-1}$ | $1 - dt\,\tau_{syn}^{-1}$ | $v_{th} - v_{reset}$ | to `v_reset`, same step |
| Norse `LI`, `LICell`, `LILinearCell` (`current_li_step`) | $1 - dt\,\tau_{mem}^{-1}$ | $dt\,\tau_{mem}^{-1}$ | $1 - dt\,\tau_{syn}^{-1}$ | - | emits $v$ |
| Norse `LIFBoxCell` (`current_lif_box_step`) | $1 - dt\,\tau_{mem}^{-1}$ | $dt\,\tau_{mem}^{-1}$ | 0 | $v_{th} - v_{reset}$ or $v_{th}$ | `reset_value` or `reset_subtract`, same step |
| Norse `LIBoxCell` (`current_li_box_step`) | $1 - dt\,\tau_{mem}^{-1}$ | $dt\,\tau_{mem}^{-1}$ | 0 | - | emits $v$ |
| SpikingJelly `IFNode` (`integrate_fire_step`) | 1 | 1 | 0 | $\theta - v_r$ or $\theta$ | hard (`v_reset`) or soft (`None`), same step |
| SpikingJelly `LIFNode` | $1 - 1/\tau$ | $1/\tau$ (`decay_input`) or 1 | 0 | as `IFNode` | as `IFNode` |
| SpikingJelly `ParametricLIFNode` | $1 - \sigma(w)$ | $\sigma(w)$ (`decay_input`) or 1 | 0 | as `IFNode` | as `IFNode` |
| NIR `LIF` (`euler_step`) | $1 - dt/\tau$ | $R\, dt/\tau$ | 0 | $v_{th} - v_{reset}$ | to `v_reset`, same step |
| NIR `CubaLIF` | $1 - dt/\tau_{mem}$ | $R\, \frac{dt}{\tau_{mem}}\, w_{in} \frac{dt}{\tau_{syn}}$ | $1 - dt/\tau_{syn}$ | $v_{th} - v_{reset}$ | as `LIF` |
| NIR `IF` | 1 | $R\, dt$ | 0 | $v_{th} - v_{reset}$ | as `LIF` |
| NIR `LI`, `CubaLI`, `I` | as `LIF`, `CubaLIF`, `IF` | | | - | emit $v$ |
| NIR `Delay` (`delay_step`) | emits $I[t - d]$: credit $c[t] = g[t + d]$ | | | | |

The derivations, read off the step functions of `sc_neurocore.dynamics`: Norse's
$\tilde v = v + dt\,\tau_{mem}^{-1}((v_{leak} - v) + j)$ with $j[t] = i[t-1] + I[t]$ and
$i[t] = (1 - dt\,\tau_{syn}^{-1})\, j[t]$ gives $\beta = 1 - dt\,\tau_{mem}^{-1}$ and a kick reaching the
membrane $u - t$ steps later as $dt\,\tau_{mem}^{-1} (1 - dt\,\tau_{syn}^{-1})^{u-t}$; NIR's
$i[t] = i[t-1] + \frac{dt}{\tau_{syn}}(w_{in} I[t] - i[t-1])$ and $\tilde v = v + \frac{dt}{\tau_{mem}}((v_{leak}
- v) + R\, i[t])$ give its row; SpikingJelly's charge $h = v + (x - (v - v_r))/\tau$ gives
$\beta = 1 - 1/\tau$ and $a = 1/\tau$ (with `decay_input=False`, $h = v - (v - v_r)/\tau + x$: $a = 1$).
Constant terms (leak potentials, biases, reset potentials) move no credit.

A recurrent layer (snnTorch `RLeaky` / `RSynaptic`, Norse `LIFRecurrentCell`, a NIR node with a
recurrent edge) feeds its previous output through its recurrent maps $R$ into the same place as its
input current; `CreditLayer.recurrent` holds those maps (their adjoints carry the credit back).

A NIR `Threshold` node (a bare Heaviside of its input, with no membrane to discharge) and any step
function not listed are refused with the node's name.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..dynamics import (current_li_box_step, current_li_step, current_lif_box_step, current_lif_step,
                        integrate_fire_step, li_step, lif_step, recurrent_lif_step, synaptic_step)
from ..dynamics import nir_euler
from ..graph import MatMul
from ..graph.maps import LinearMap, MaxPool

#: How a reset treats the membrane: `"none"` (a subtractive reset or none: every kick stays),
#: `"next"` (snnTorch's delayed zero reset of `Leaky`: a spike at $t$ wipes $v[t]$ from $v[t+1]$ on),
#: `"through"` (the delayed zero reset of `Synaptic` / `RLeaky`: a spike at $t$ zeroes $v[t+1]$ whole, the
#: input of step $t+1$ with it), `"same"` (a reset in the step that fires: $v[t]$ itself is the reset value).
WIPES = ("none", "next", "through", "same")


class CreditLayer(NamedTuple):
    """One segment of the graph as the rule sees it (the module docstring's table).

    Attributes:
        maps: the linear maps in front of the neuron layer (the graph's, with their adjoints).
        shape: the neuron layer's per-sample shape.
        kind: `"lif"` (spiking), `"li"` (emits its membrane) or `"delay"` (emits its input, delayed).
        beta: membrane decay $\\beta$, a float or a per-neuron `(n,)` tensor.
        threshold: the cost of a spike $\\theta$ (unused but for `"lif"`).
        reset: `"subtract"`, `"zero"` (any reset to a fixed potential) or `"none"`.
        alpha: the synaptic decay $b$, or `None` for a neuron without a synaptic current.
        graded: the height of an emitted spike.
        reset_delay: whether a spike's reset applies on the next step (snnTorch's default) or the same one.
        gain: the input gain $a$.
        wipe: one of `WIPES`, how the reset treats the membrane.
        recurrent: the recurrent maps (previous output -> input current), or `None`.
        delay: a `"delay"` layer's per-neuron delay in steps `(n,)`, else `None`.
        name: the layer's name in the graph.
    """

    maps: tuple[Any, ...]
    shape: tuple[int, ...]
    kind: str
    beta: float | Tensor
    threshold: float | Tensor = 1.0
    reset: str = "subtract"
    alpha: float | Tensor | None = None
    graded: float | Tensor = 1.0
    reset_delay: bool = True
    gain: float | Tensor = 1.0
    wipe: str = "none"
    recurrent: tuple[LinearMap, ...] | None = None
    delay: Tensor | None = None
    name: str = ""

    @classmethod
    def dense(cls, weight: Tensor, beta: float | Tensor, threshold: float | Tensor = 1.0,
              reset: str = "subtract") -> CreditLayer:
        """An snnTorch-style LIF layer (`lif_step`, delayed reset) behind one `(n_in, n_out)` weight matrix.

        Example:
            >>> import torch
            >>> CreditLayer.dense(torch.ones(3, 2), 0.9, reset="zero").wipe
            'next'
        """
        n_in, n_out = weight.shape
        return cls((MatMul((n_in,), (n_out,), weight, None),), (n_out,), "lif", beta, threshold, reset,
                   wipe=_snntorch_wipe(reset, True, through=False))


def _snntorch_wipe(reset: str, reset_delay: bool, *, through: bool) -> str:
    if reset != "zero":
        return "none"
    if not reset_delay:
        return "same"
    return "through" if through else "next"


def _flat(value: Any, shape: tuple[int, ...]) -> float | Tensor:
    """A parameter as a float, or as a flat per-neuron `(n,)` tensor (broadcast to the layer's shape)."""
    if isinstance(value, Tensor):
        if value.numel() == 1:
            return value.reshape(())
        return torch.broadcast_to(value, shape).reshape(-1)
    return float(value)


def _recurrent_maps(neuron: Any) -> tuple[LinearMap, ...] | None:
    """The maps of a layer's recurrence (a graph map's bound `forward`, or a NIR edge's `maps`)."""
    recurrence = neuron.recurrent
    if recurrence is None:
        return None
    maps = getattr(recurrence, "maps", None)
    if maps is None and isinstance(getattr(recurrence, "__self__", None), LinearMap):
        maps = (recurrence.__self__,)
    if maps is None or not all(isinstance(m, LinearMap) and not isinstance(m, MaxPool) for m in maps):
        raise ValueError(f"model: layer {neuron.name!r} has a recurrence mode='auto' cannot transpose "
                         f"({type(recurrence).__name__}); use TemporalSaliency or CausalImportance")
    return tuple(maps)


def _cost(name: str, threshold: Any, reset_potential: Any, shape: tuple[int, ...]) -> float | Tensor:
    cost = _flat(threshold if reset_potential is None else threshold - reset_potential, shape)
    if bool(torch.as_tensor(cost).le(0).any()):
        raise ValueError(f"model: layer {name!r} discharges no membrane when it fires (threshold minus reset "
                         "potential <= 0), so a spike has no cost to credit by; use TemporalSaliency")
    return cost


def credit_layer(segment: Any) -> CreditLayer:
    """The rule's view of one graph segment, read from its neuron's step function and parameters.

    Raises:
        ValueError: a neuron the rule does not follow (a NIR `Threshold`, an unknown step function), a
            recurrence it cannot transpose, or a spike that discharges no membrane; the message names the
            layer and what to use instead.

    Example:
        >>> import torch
        >>> from sc_neurocore.dynamics import CurrentLIFParameters, current_lif_initial_state, current_lif_step
        >>> from sc_neurocore.graph import NeuronNode, Segment
        >>> params = CurrentLIFParameters(tau_syn_inv=200.0, tau_mem_inv=100.0, dt=0.001)
        >>> node = NeuronNode("1", "lif_cell", (2,), current_lif_step, params, current_lif_initial_state)
        >>> layer = credit_layer(Segment((), node))
        >>> round(layer.beta, 6), round(layer.gain, 6), round(layer.alpha, 6), layer.wipe
        (0.9, 0.1, 0.8, 'same')
    """
    neuron, params, shape = segment.neuron, segment.neuron.params, segment.neuron.shape
    step, name = neuron.step, neuron.name
    recurrent = _recurrent_maps(neuron)

    def build(kind: str, beta: Any, gain: Any = 1.0, alpha: Any = None, threshold: Any = 1.0, reset: str = "none",
              wipe: str = "none", graded: Any = 1.0, reset_delay: bool = False) -> CreditLayer:
        return CreditLayer(segment.maps, shape, kind, _flat(beta, shape), threshold, reset,
                           None if alpha is None else _flat(alpha, shape), _flat(graded, shape), reset_delay,
                           _flat(gain, shape), wipe, recurrent, None, name)

    if step is lif_step:
        return build("lif", params.beta, threshold=_cost(name, params.threshold, None, shape), reset=params.reset,
                     wipe=_snntorch_wipe(params.reset, params.reset_delay, through=False), graded=params.graded,
                     reset_delay=params.reset_delay)
    if step in (synaptic_step, recurrent_lif_step):
        delay = getattr(params, "reset_delay", True)
        return build("lif", params.beta, alpha=getattr(params, "alpha", None),
                     threshold=_cost(name, params.threshold, None, shape), reset=params.reset,
                     wipe=_snntorch_wipe(params.reset, delay, through=True), graded=params.graded, reset_delay=delay)
    if step is li_step and not neuron.spiking:
        return build("li", params)
    if step in (current_lif_step, current_li_step, current_lif_box_step, current_li_box_step):
        rate = params.dt * params.tau_mem_inv
        synapse = None if step in (current_lif_box_step, current_li_box_step) else 1 - params.dt * params.tau_syn_inv
        if step in (current_li_step, current_li_box_step):
            return build("li", 1 - rate, rate, synapse)
        subtract = getattr(params, "reset", "value") == "subtract"
        return build("lif", 1 - rate, rate, synapse, _cost(name, params.v_th, None if subtract else params.v_reset,
                                                           shape), "subtract" if subtract else "zero",
                     "none" if subtract else "same")
    if step is integrate_fire_step:
        leak = (1 / params.tau) if params.tau is not None else params.decay
        beta = 1.0 if leak is None else 1 - leak
        gain = leak if leak is not None and params.decay_input else 1.0
        hard = params.v_reset is not None
        return build("lif", beta, gain, None, _cost(name, params.v_threshold, params.v_reset, shape),
                     "zero" if hard else "subtract", "same" if hard else "none")
    if step is nir_euler.euler_step:
        beta = 1 - params.gain if params.leaky else 1.0
        gain = params.gain * params.r if params.leaky else params.gain
        synapse = None
        if params.syn_gain is not None and params.w_in is not None:
            gain, synapse = gain * params.syn_gain * params.w_in, 1 - params.syn_gain
        if params.v_threshold is None or params.v_reset is None:
            return build("li", beta, gain, synapse)
        return build("lif", beta, gain, synapse, _cost(name, params.v_threshold, params.v_reset, shape), "zero",
                     "same")
    if step is nir_euler.delay_step:
        steps = torch.broadcast_to(params.steps, shape).reshape(-1)
        return CreditLayer(segment.maps, shape, "delay", 1.0, delay=steps, name=name)
    raise ValueError(f"model: layer {name!r} ({neuron.kind}) has dynamics mode='auto' does not follow (a "
                     "bare threshold or an unknown step function: no membrane to credit through); use "
                     "mode='linear', TemporalSaliency or CausalImportance")
