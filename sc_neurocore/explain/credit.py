r"""Spike-time credit: the rule of `SpikeAttributor(mode="auto")`, one recorded forward pass, no gradients.

The model is read as its traced `sc_neurocore.graph.ModelGraph` (verified bit for bit against the model's
own forward): segments $l = 1 .. L$, each linear maps $M_l$ (dense layers, convolutions, pooling, reshapes)
followed by a neuron layer, with $z_0 = x$ the input spikes. Between two spikes every neuron the graph
supports is linear, and `sc_neurocore.explain.credit_layers` reads that linear response from the layer's own
step function and parameters: the membrane decay $\beta_l$, the input gain $a_l$, the synaptic decay $b_l$
($0$ without a synaptic current), the cost of a spike $\theta_l$ (the membrane it discharges: the threshold,
or $v_{th} - v_{reset}$ for a hard reset) and how a reset wipes the membrane. A kick $\delta$ of input
current at $t$ enters the membrane at $u \ge t$ as $a_l b_l^{u-t} \delta$, so while no spike resets it the
membrane moves by the kernel $K_l(d) = \sum_{s=0}^{d} a_l b_l^s \beta_l^{d-s}$ after $d$ steps.

One forward pass records every layer's spikes $z_l[t]$ and membrane $v_l[t]$. The rule then runs backwards
once, layer by layer, carrying the **credit per unit of membrane kick** $m_l[u, j]$ and the **credit per unit
of input current** $c_l[t, j]$ of neuron $j$, how much of the explained readout such a kick is worth:

$$c_l[t] = a_l \sum_{u \ge t} b_l^{\,u-t}\, m_l[u].$$

**Spike rule** (spiking layers). A membrane kick at $u$ raises the membrane at the neuron's next spike
$t_n$ by $\beta_l^{t_n - u}$, and a spike costs $\theta_l$ of membrane; a spike at $t_n$ worth $g_l[t_n, j]$
therefore credits the kick with

$$m_l[u, j] = \frac{\beta_l^{\,t_n - u}}{\theta_l}\, g_l[t_n, j], \qquad t_n = \min\{t' \ge u : z_l[t', j] = 1\},$$

`0` when the neuron does not fire again after $u$ (such a kick moved no spike), and `0` for a kick the reset
of a spike at $u - 1$ wipes whole (snnTorch's delayed zero reset of `Synaptic` and `RLeaky`). A spike is
worth what its kicks downstream and, for a recurrent layer, into its own layer one step later are worth:

$$g_l[t] = h_l \big(M_{l+1}^\top c_{l+1}[t] + R_l^\top c_l[t+1]\big)$$

($M^\top$ the adjoint of the maps: $W^\top$ for a dense layer, a transposed convolution, the recorded argmax
for a max pool; $R_l$ the layer's recurrent maps, absent without recurrence; $h_l$ the spike height, 1 unless
graded). A **leaky integrator** (it emits its membrane) credits a membrane kick with every emitted value it
moves, $m_l[u] = \sum_{u' \ge u} \beta_l^{u'-u} g_l[u']$ (with $g_l$ as above, $h_l = 1$); a **delay line**
($y[t] = I[t - d]$) credits $c_l[t, j] = g_l[t + d_j, j]$. An input spike gets

$$A[t, i] = x[t, i]\, (M_1^\top c_1[t])_i.$$

**Output layer** (neuron $k$ the explained one; the readout decides):

- `"count"` / `"rate"`: every output spike of neuron $k$ is worth $g_L[t, k] = 1$ (`1/T` for `"rate"`).
- `"final_membrane"` (read step $e = T-1$) and `"max_membrane"` (the first maximum, $e = t^*$): a spiking
  output adds $\beta_L^{e-u}$ to $m_L[u, k]$ for $u \le e$, `0` for a kick that a reset wipes before $e$
  (a reset to a fixed potential; a subtractive reset keeps it); a layer that emits its membrane (a leaky
  integrator, a delay) reads $g_L[e, k] = 1$.

**Recurrence.** A recurrent layer's spike at $t$ enters its own layer at $t+1$ exactly where the input
current does ($R_l z_l[t]$ added to $I_l[t+1]$), so the rule reads the layer unrolled in time: every
recorded recurrent spike is a hidden spike of step $t$ feeding step $t+1$, credited by the same spike rule.
The one reverse scan over time computes $c_l[t+1]$ before $g_l[t]$ needs it.

(Normalising by the membrane at the spike, $v_l[t_n]$, instead of $\theta_l$ makes the scores sum exactly
to the readout for zero-reset networks, but ranked spikes less faithfully on the selection digits of
`sc-neurocore quality`; the spike's cost is the rule.)

**When it is exact.**

1. *Linear readout layer.* With no hidden layer and a membrane readout, the output membrane after its last
   reset is linear in the input: $K_L$ is its exact impulse response and a reset to a fixed potential wipes
   exactly what the rule zeroes. So for every neuron type of the table in `credit_layers`, $A[t, i]$ is
   exactly the change of the readout when spike $(t, i)$ is removed, as long as the removal flips no output
   spike (always, when the output never fires; for `"max_membrane"`, as long as the time of the maximum
   stays). With no output spike, the scores sum to the readout less its value on no input
   (completeness: biases, leak and rest potentials enter no score).
2. *Linear recurrence.* A non-spiking layer fed back through its recurrent maps (a NIR `LI`, `CubaLI` or
   `I` node with a recurrent edge) is a linear system, and $R^\top c[t+1]$ is its adjoint: condition 1 and
   completeness hold with the recurrence.
3. *Membrane at the next spike.* For every neuron type, reset and recurrence, the share of $c_l[t, j]$ that
   the next spike $t_n$ receives is $K_l(t_n - t)\, g_l[t_n, j] / \theta_l$, and $K_l(t_n - t)$ is exactly the
   derivative of the membrane $v_l[t_n, j]$ that decides that spike with respect to a kick of input current
   at $t$, as long as the kick flips no spike before $t_n$ (the recurrence then carries nothing: its spikes
   stay as recorded). What a synaptic current carries past $t_n$ is credited the same way through the
   spikes after it.
4. *No spike flips.* The credit follows the recorded spikes. Removing a spike that flips a hidden or
   recurrent spike changes the readout by whole spikes, which no one-pass rule sees; under a count readout,
   where the readout is a step function of the input, the rule is a first-order estimate, not an identity.

The decays come from the model's layers, not from an argument: a per-neuron parameter is used per neuron.
Biases enter no score (they are not input spikes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..graph import ModelGraph
from ..graph.maps import MaxPool
from ..graph.paths import has_selections, record_argmax
from .credit_layers import CreditLayer, credit_layer
from .credit_scan import SpikeRule, accumulate, layer_credit, membrane_credit, readout_end, spike_credit

#: The readouts the rule follows.
CREDIT_READOUTS = ("count", "rate", "final_membrane", "max_membrane")

__all__ = ["CREDIT_READOUTS", "CreditLayer", "accumulate", "auto_scores", "credit_layers", "credit_scores",
           "membrane_credit", "model_graph", "spike_credit", "SpikeRule"]


def model_graph(model: Any, spikes: Tensor) -> ModelGraph:
    """The model graph the rule runs on: `model` itself, an `LIFNetwork`'s graph, or an adapter's traced and
    verified graph (`graph_for`).

    Raises:
        ValueError: the model has no verified graph (the reason is the adapter's `graph_reason`).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> model_graph(LIFNetwork([torch.ones(3, 2)]), torch.zeros(1, 4, 3)).neuron_layers
        {'0': 2}
    """
    from ..models import LIFNetwork

    if isinstance(model, ModelGraph):
        return model
    if type(model) is LIFNetwork:  # a subclass may override the simulation: only the class itself is known
        from ..adapters.lif_network import lif_network_graph

        return lif_network_graph(model)
    graph_for = getattr(model, "graph_for", None)
    if callable(graph_for):
        graph = graph_for(spikes)
        if graph is not None:
            return graph
        raise ValueError(f"model: mode='auto' runs on the model's traced graph, and {type(model).__name__} has "
                         f"none ({getattr(model, 'graph_reason', '') or 'untraceable'}); use mode='linear' or "
                         "TemporalSaliency")
    raise ValueError(f"model: mode='auto' needs a model it can trace (an LIFNetwork, a ModelGraph or an adapter "
                     f"of sc_neurocore.adapters), got {type(model).__name__}; use mode='linear' with its weights")


def credit_layers(graph: ModelGraph) -> tuple[list[CreditLayer], str]:
    """The graph's segments as the rule needs them, with the model's own parameters, and its readout.

    Raises:
        ValueError: a neuron the rule does not follow (see `sc_neurocore.explain.credit_layers.credit_layer`).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> graph = model_graph(LIFNetwork([torch.ones(3, 2)], beta=0.8), torch.zeros(1, 4, 3))
        >>> layers, readout = credit_layers(graph)
        >>> readout, float(layers[0].beta), layers[0].reset
        ('count', 0.8, 'subtract')
    """
    if graph.readout not in CREDIT_READOUTS:
        raise ValueError(f"model: readout {graph.readout!r} is not one of {CREDIT_READOUTS}")
    return [credit_layer(segment) for segment in graph.segments], graph.readout


def _adjoint(maps: tuple[Any, ...], signal: Tensor, shape: tuple[int, ...], pools: list[Tensor]) -> Tensor:
    """`M^T signal` for `(B, T, n)` signals through the maps (in reverse), `(B, T, n_in)`."""
    n_samples, n_steps = signal.shape[:2]
    flat = signal.reshape(n_samples * n_steps, *shape)
    for linear_map in reversed(maps):
        if isinstance(linear_map, MaxPool):
            route = pools.pop()
            flat = linear_map.adjoint(flat, route.reshape(n_samples * n_steps, *route.shape[2:]))
        else:
            flat = linear_map.adjoint(flat)
    return flat.reshape(n_samples, n_steps, -1)


def _output_worth(layer: CreditLayer, readout: str, membrane: Tensor, targets: Tensor) -> Tensor:
    """$g_L$: what a unit of the output layer's emitted value is worth at each step, `(B, T, C)`."""
    n_samples, n_steps = membrane.shape[:2]
    rows = torch.arange(n_samples, device=membrane.device)
    worth = torch.zeros_like(membrane)
    if readout in ("count", "rate"):
        worth[rows, :, targets] = 1.0 if readout == "count" else 1.0 / n_steps
    elif layer.kind != "lif":  # a layer that emits its membrane: the read step's value is the readout
        worth[rows, readout_end(membrane, targets, readout), targets] = 1.0
    return worth


def credit_scores(x: Tensor, layers: list[CreditLayer], readout: str, spikes: list[Tensor],
                  membranes: list[Tensor], targets: Tensor, argmax: list[list[Tensor]] | None = None,
                  spike_rule: SpikeRule | None = None) -> Tensor:
    """Attribution `A` `(B, T, N)` of input spikes `x` from a recording (see the module docstring).

    Args:
        x: the input spikes `(B, T, N)` in the compute dtype.
        layers: the model's layers (`credit_layers`), maps in the compute dtype.
        readout: the model's readout.
        spikes: each layer's recorded spikes `(B, T, n_l)`.
        membranes: each layer's recorded membrane (emitted values, for a layer that emits no spikes).
        targets: `(B,)` explained output neurons.
        argmax: per layer, the recorded argmax of each max pool (`sc_neurocore.graph.paths.record_argmax`).
        spike_rule: a variant of the spike rule for plain spiking layers (`credit_scan.layer_credit`); `None`
            is the rule above (the evaluation of `sc-neurocore quality` measures variants with it).

    Example:
        >>> import torch
        >>> layer = CreditLayer.dense(torch.tensor([[2.0]]), 0.5, reset="none")
        >>> x = torch.tensor([[[1.0], [1.0]]])
        >>> z, v = torch.zeros(1, 2, 1), torch.tensor([[[2.0], [3.0]]])
        >>> credit_scores(x, [layer], "final_membrane", [z], [v], torch.tensor([0]))[0, :, 0].tolist()
        [1.0, 2.0]
    """
    pools = [list(found) for found in argmax] if argmax is not None else [[] for _ in layers]
    last = layers[-1]
    kick = None
    if readout in ("final_membrane", "max_membrane") and last.kind == "lif":
        kick = membrane_credit(spikes[-1], membranes[-1], targets, last, readout)
    credit = layer_credit(last, spikes[-1], _output_worth(last, readout, membranes[-1], targets), kick,
                          membranes[-1], spike_rule)
    for index in range(len(layers) - 2, -1, -1):
        worth = _adjoint(layers[index + 1].maps, credit, layers[index + 1].shape, pools[index + 1])
        credit = layer_credit(layers[index], spikes[index], worth, None, membranes[index], spike_rule)
    return x * _adjoint(layers[0].maps, credit, layers[0].shape, pools[0])


def auto_scores(model: Any, spikes: Tensor, targets: Tensor, spike_rule: SpikeRule | None = None) -> Tensor:
    """`mode="auto"` scores `(B, T, N)` of `spikes` for `targets` on `model` (its graph, one recorded pass).

    `spike_rule` replaces the spike rule on plain spiking layers (see `credit_scores`).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.ones(3, 2)], threshold=0.5)
        >>> auto_scores(net, torch.ones(1, 2, 3), torch.tensor([0]))[0].tolist()
        [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
    """
    graph = model_graph(model, spikes)
    layers, readout = credit_layers(graph)
    if graph.n_inputs != spikes.shape[2]:
        raise ValueError(f"input_spikes: the model takes {graph.n_inputs} input values per step, got {spikes.shape[2]}")
    dtype = graph._dtype()
    x = spikes.to(dtype)
    recording = graph.record(x)
    argmax = record_argmax(graph, x) if has_selections(graph) else None
    return credit_scores(x, layers, readout, [record.spikes for record in recording.layers],
                         [record.membrane for record in recording.layers], targets, argmax, spike_rule)
