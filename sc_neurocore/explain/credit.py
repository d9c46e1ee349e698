r"""Spike-time credit: the rule of `SpikeAttributor(mode="auto")`, one recorded forward pass, no gradients.

The model is read as its traced `sc_neurocore.graph.ModelGraph` (verified bit for bit against the model's
own forward): segments $l = 1 .. L$, each linear maps $M_l$ (dense layers $I_l[t] = z_{l-1}[t] W_l$,
convolutions, pooling, reshapes) followed by a neuron layer with the model's own decay $\beta_l$, threshold
and reset: $v_l[t] = \beta_l v_l[t-1] + I_l[t] - \text{reset}$, $z_l[t] = H(v_l[t] - \theta_l)$, with
$z_0 = x$ the input spikes. One forward pass records every $z_l[t]$ and $v_l[t]$. The rule then runs
backwards once, layer by layer, carrying a **credit per unit of input current** $c_l[t, j]$: how much of the
explained readout a kick of current into neuron $j$ of layer $l$ at time $t$ is worth.

**Output layer** (neuron $k$ the explained one; the readout decides):

- `"final_membrane"`: $c_L[t, k] = \beta_L^{T-1-t}$, the kick's share of $v_L[T-1]$; `0` for a kick that
  a reset to zero wipes before $T-1$ (a spike at some $t' \in [t, T-2]$).
- `"max_membrane"`: the same up to the time $t^*$ of the maximum, $c_L[t, k] = \beta_L^{t^*-t}$ for
  $t \le t^*$, `0` after.
- `"count"` / `"rate"`: every output spike of neuron $k$ is worth $g_L[t, k] = 1$ (`1/T` for `"rate"`), and
  the spike rule below applies.

**Spike rule** (hidden layers, and the output layer of a count readout). A kick of current into neuron $j$ at
$t$ raises its membrane at its next spike $t_n$ by $\beta_l^{t_n - t}$, and a spike costs $\theta_l$ of
membrane; a spike at $t_n$ worth $g_l[t_n, j]$ therefore credits the kick with

$$c_l[t, j] = \frac{\beta_l^{\,t_n - t}}{\theta_l}\, g_l[t_n, j], \qquad
t_n = \min\{t' \ge t : z_l[t', j] = 1\},$$

and `0` when the neuron does not fire again after $t$ (such a kick moved no spike). A spike of layer $l$ is
worth what its kicks into layer $l+1$ are worth, $g_l[t] = h_l\, M_{l+1}^\top c_{l+1}[t]$ (the adjoint of the
maps: $W_{l+1} c_{l+1}[t]$ for a dense layer, a transposed convolution for a convolution, the recorded
argmax for a max pool; $h_l$ the height of a spike, 1 unless graded), and an input spike gets

$$A[t, i] = x[t, i]\, (M_1^\top c_1[t])_i.$$

**Other neurons.** A synaptic neuron (snnTorch `Synaptic`: the kick enters a synaptic current decaying
with $\alpha$, which feeds the membrane every step) credits a kick with every membrane kick it turns into,
$c^{syn}[t] = \sum_{u \ge t} \alpha^{u-t} c[u]$. A leaky integrator, which emits its membrane, credits a
kick with every emitted value it moves, $c[t] = \sum_{u \ge t} \beta^{u-t} g[u]$ (exact: it is linear).
Recurrent layers and Norse's current-based neurons are refused (use `mode="linear"` or the exact
explainers).

(Normalising by the membrane at the spike, $v_l[t_n]$, instead of $\theta_l$ makes the scores sum exactly
to the readout for zero-reset networks, but ranked spikes less faithfully on the selection digits of
`sc-neurocore quality`; the threshold is the rule.)

**When it is exact.**

1. *Linear readout layer.* With no hidden layer and a membrane readout whose output neuron never resets
   (`reset="none"`, or no output spike), the readout is linear in the input, $v_L[T-1] = \sum_t
   \beta_L^{T-1-t} I_L[t]$, and $A[t, i]$ is exactly the change of the readout when the spike $(t, i)$ is
   removed (for `"max_membrane"`, as long as the removal leaves the time of the maximum in place). The
   scores then sum to the readout (completeness), less the bias's share.
2. *Membrane at the next spike.* For every reset, $\theta_l c_l[t, j] / g_l[t_n, j] = \beta_l^{t_n - t}$ is
   exactly the derivative of $v_l[t_n, j]$ with respect to the kick $I_l[t, j]$, as long as the kick
   flips no spike of that neuron before $t_n$ (a reset to zero after $t_n$ wipes it; a subtractive reset
   carries it on, which the rule leaves to the next spike's own kicks).
3. *No spike flips.* The credit follows the recorded spikes. Removing a spike that flips a hidden spike
   changes the readout by whole spikes, which no one-pass rule sees; under a count readout, where the
   readout is a step function of the input, the rule is a first-order estimate, not an identity.

The decays come from the model's layers, not from an argument: a per-neuron $\beta$ is used per neuron.
Biases enter no score (they are not input spikes).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..dynamics import LIFParameters, SynapticParameters, li_step, lif_step, synaptic_step
from ..graph import MatMul, ModelGraph
from ..graph.maps import MaxPool
from ..graph.paths import has_selections, record_argmax

#: The readouts the rule follows.
CREDIT_READOUTS = ("count", "rate", "final_membrane", "max_membrane")


class CreditLayer(NamedTuple):
    """One segment of the graph as the rule sees it.

    Attributes:
        maps: the linear maps in front of the neuron layer (the graph's, with their adjoints).
        shape: the neuron layer's per-sample shape.
        kind: `"lif"`, `"synaptic"` or `"li"` (a leaky integrator, which emits its membrane).
        beta: membrane decay, a float or a per-neuron tensor.
        threshold: firing threshold (unused for `"li"`).
        reset: `"subtract"`, `"zero"` or `"none"`.
        alpha: synaptic current decay (`"synaptic"` only).
        graded: the height of an emitted spike.
        reset_delay: whether a spike's reset applies on the next step (snnTorch's default) or the same one.
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

    @classmethod
    def dense(cls, weight: Tensor, beta: float | Tensor, threshold: float | Tensor = 1.0,
              reset: str = "subtract") -> CreditLayer:
        """An LIF layer behind one `(n_in, n_out)` weight matrix.

        Example:
            >>> import torch
            >>> CreditLayer.dense(torch.ones(3, 2), 0.9).shape
            (2,)
        """
        n_in, n_out = weight.shape
        return cls((MatMul((n_in,), (n_out,), weight, None),), (n_out,), "lif", beta, threshold, reset)


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
        ValueError: a neuron kind the rule does not follow (recurrent, current-based).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> graph = model_graph(LIFNetwork([torch.ones(3, 2)], beta=0.8), torch.zeros(1, 4, 3))
        >>> layers, readout = credit_layers(graph)
        >>> readout, float(layers[0].beta), layers[0].reset
        ('count', 0.8, 'subtract')
    """
    layers = []
    for segment in graph.segments:
        neuron, params = segment.neuron, segment.neuron.params
        if neuron.recurrent is not None:
            raise ValueError(f"model: layer {neuron.name!r} is recurrent; mode='auto' counts no paths through a "
                             "recurrence. Use TemporalSaliency or CausalImportance")
        if neuron.step is lif_step and isinstance(params, LIFParameters):
            layers.append(CreditLayer(segment.maps, neuron.shape, "lif", params.beta, params.threshold, params.reset,
                                      None, params.graded, params.reset_delay))
        elif neuron.step is synaptic_step and isinstance(params, SynapticParameters):
            layers.append(CreditLayer(segment.maps, neuron.shape, "synaptic", params.beta, params.threshold,
                                      params.reset, params.alpha, params.graded, params.reset_delay))
        elif neuron.step is li_step and not neuron.spiking:
            layers.append(CreditLayer(segment.maps, neuron.shape, "li", params, reset="none"))
        else:
            raise ValueError(f"model: layer {neuron.name!r} ({neuron.kind}) has dynamics mode='auto' does not follow "
                             "(it follows LIF, synaptic and leaky-integrator layers); use mode='linear' or "
                             "TemporalSaliency")
    if graph.readout not in CREDIT_READOUTS:
        raise ValueError(f"model: readout {graph.readout!r} is not one of {CREDIT_READOUTS}")
    return layers, graph.readout


def _as(value: Any, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def spike_credit(spikes: Tensor, worth: Tensor, beta: float | Tensor, threshold: float | Tensor) -> Tensor:
    r"""The spike rule: credit per unit current $c[t] = \beta^{t_n - t} g[t_n] / \theta$, `(B, T, n)`.

    Args:
        spikes: the layer's recorded spikes $z$ `(B, T, n)`.
        worth: $g$ `(B, T, n)`, what a spike at each step is worth.
        beta: the layer's decay (float or `(n,)`).
        threshold: the layer's threshold (float or `(n,)`).

    Example:
        >>> import torch
        >>> z = torch.tensor([[[0.0], [0.0], [1.0]]])
        >>> spike_credit(z, torch.ones(1, 3, 1), 0.5, 2.0)[0, :, 0].tolist()
        [0.125, 0.25, 0.5]
    """
    decay = _as(beta, worth).reshape(-1)
    fired = spikes != 0
    share = torch.where(fired, worth / _as(threshold, worth).reshape(-1), torch.zeros_like(worth))
    credit = torch.empty_like(worth)
    carry = torch.zeros_like(worth[:, 0])
    for t in range(worth.shape[1] - 1, -1, -1):  # reverse time: the next spike at or after t
        carry = torch.where(fired[:, t], share[:, t], decay * carry)
        credit[:, t] = carry
    return credit


def accumulate(credit: Tensor, decay: float | Tensor) -> Tensor:
    r"""$a[t] = \sum_{u \ge t} d^{u-t} c[u]$ along time, `(B, T, n)`: a current or membrane that keeps a kick.

    Example:
        >>> import torch
        >>> accumulate(torch.ones(1, 3, 1), 0.5)[0, :, 0].tolist()
        [1.75, 1.5, 1.0]
    """
    rate = _as(decay, credit).reshape(-1)
    total = torch.empty_like(credit)
    carry = torch.zeros_like(credit[:, 0])
    for t in range(credit.shape[1] - 1, -1, -1):
        carry = credit[:, t] + rate * carry
        total[:, t] = carry
    return total


def membrane_credit(spikes: Tensor, membrane: Tensor, targets: Tensor, layer: CreditLayer, readout: str) -> Tensor:
    r"""Credit per unit current of the output layer under a membrane readout, `(B, T, C)`, zero but in column $k$.

    Args:
        spikes: the output layer's spikes `(B, T, C)` (a reset to zero after a spike wipes earlier kicks).
        membrane: its membrane `(B, T, C)` (the time of the maximum for `"max_membrane"`).
        targets: `(B,)` the explained neuron of each sample.
        layer: the output layer.
        readout: `"final_membrane"` or `"max_membrane"`.

    Example:
        >>> import torch
        >>> z, v = torch.zeros(1, 3, 1), torch.tensor([[[1.0], [3.0], [2.0]]])
        >>> layer = CreditLayer.dense(torch.ones(1, 1), 0.5, reset="none")
        >>> membrane_credit(z, v, torch.tensor([0]), layer, "max_membrane")[0, :, 0].tolist()
        [0.5, 1.0, 0.0]
    """
    n_samples, n_steps, _ = membrane.shape
    rows = torch.arange(n_samples, device=membrane.device)
    column_spikes = spikes[rows, :, targets] != 0  # (B, T)
    decay = _as(layer.beta, membrane).reshape(-1)
    decay = decay[targets] if decay.numel() > 1 else decay
    if readout == "final_membrane":
        end = torch.full((n_samples,), n_steps - 1, device=membrane.device)
    else:
        end = torch.argmax(membrane[rows, :, targets], dim=1)  # the first maximum
    wipes = layer.reset == "zero"
    column = torch.zeros(n_samples, n_steps, dtype=membrane.dtype, device=membrane.device)
    carry = torch.zeros(n_samples, dtype=membrane.dtype, device=membrane.device)
    for t in range(n_steps - 1, -1, -1):
        carry = decay * carry
        if wipes and layer.reset_delay:  # a spike at t resets v at t + 1: kicks up to t are gone
            carry = torch.where(column_spikes[:, t], torch.zeros_like(carry), carry)
        carry = torch.where(end == t, torch.ones_like(carry), carry)
        if wipes and not layer.reset_delay:  # a same-step reset wipes the kick at t itself
            carry = torch.where(column_spikes[:, t], torch.zeros_like(carry), carry)
        column[:, t] = carry
    credit = torch.zeros_like(membrane)
    credit[rows, :, targets] = column
    return credit


def _layer_credit(layer: CreditLayer, spikes: Tensor, worth: Tensor) -> Tensor:
    """Credit per unit input current of a layer whose emitted activity at each step is worth `worth`."""
    if layer.kind == "li":
        return accumulate(worth, layer.beta)
    credit = spike_credit(spikes, worth, layer.beta, layer.threshold)
    return accumulate(credit, layer.alpha if layer.alpha is not None else 0.0) if layer.kind == "synaptic" else credit


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


def credit_scores(x: Tensor, layers: list[CreditLayer], readout: str, spikes: list[Tensor],
                  membranes: list[Tensor], targets: Tensor, argmax: list[list[Tensor]] | None = None) -> Tensor:
    """Attribution `A` `(B, T, N)` of input spikes `x` from a recording (see the module docstring).

    Args:
        x: the input spikes `(B, T, N)` in the compute dtype.
        layers: the model's layers (`credit_layers`), maps in the compute dtype.
        readout: the model's readout.
        spikes: each layer's recorded spikes `(B, T, n_l)`.
        membranes: each layer's recorded membrane `(B, T, n_l)`.
        targets: `(B,)` explained output neurons.
        argmax: per layer, the recorded argmax of each max pool (`sc_neurocore.graph.paths.record_argmax`).

    Example:
        >>> import torch
        >>> layer = CreditLayer.dense(torch.tensor([[2.0]]), 0.5, reset="none")
        >>> x = torch.tensor([[[1.0], [1.0]]])
        >>> z, v = torch.zeros(1, 2, 1), torch.tensor([[[2.0], [3.0]]])
        >>> credit_scores(x, [layer], "final_membrane", [z], [v], torch.tensor([0]))[0, :, 0].tolist()
        [1.0, 2.0]
    """
    n_samples, n_steps, _ = x.shape
    pools = [list(found) for found in argmax] if argmax is not None else [[] for _ in layers]
    last = layers[-1]
    if readout in ("final_membrane", "max_membrane"):
        credit = membrane_credit(spikes[-1], membranes[-1], targets, last, readout)
        if last.kind == "synaptic":
            credit = accumulate(credit, last.alpha if last.alpha is not None else 0.0)
    else:
        worth = torch.zeros_like(membranes[-1])
        worth[torch.arange(n_samples, device=x.device), :, targets] = 1.0 if readout == "count" else 1.0 / n_steps
        credit = _layer_credit(last, spikes[-1], worth * _as(last.graded, worth).reshape(-1))
    for index in range(len(layers) - 2, -1, -1):
        layer = layers[index]
        worth = _adjoint(layers[index + 1].maps, credit, layers[index + 1].shape, pools[index + 1])
        credit = _layer_credit(layer, spikes[index], worth * _as(layer.graded, worth).reshape(-1))
    return x * _adjoint(layers[0].maps, credit, layers[0].shape, pools[0])


def auto_scores(model: Any, spikes: Tensor, targets: Tensor) -> Tensor:
    """`mode="auto"` scores `(B, T, N)` of `spikes` for `targets` on `model` (its graph, one recorded pass).

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
    recorded = [(record.spikes if layer.kind != "li" else torch.zeros_like(record.membrane), record.membrane)
                for layer, record in zip(layers, recording.layers, strict=True)]
    return credit_scores(x, layers, readout, [z for z, _ in recorded], [v for _, v in recorded], targets, argmax)
