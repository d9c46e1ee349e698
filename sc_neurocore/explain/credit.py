r"""Spike-time credit: the rule of `SpikeAttributor(mode="auto")`, one recorded forward pass, no gradients.

The model is read as a stack of layers $l = 1 .. L$, each a weight matrix $W_l$ (`(n_{l-1}, n_l)`) followed
by LIF neurons with the model's own decay $\beta_l$, threshold and reset (`sc_neurocore.dynamics.lif_step`):
$I_l[t] = z_{l-1}[t] W_l$, $v_l[t] = \beta_l v_l[t-1] + I_l[t] - \text{reset}$, $z_l[t] = H(v_l[t] - \theta_l)$,
with $z_0 = x$ the input spikes. One forward pass records every $z_l[t]$ and $v_l[t]$. The rule then runs
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
worth what its kicks into layer $l+1$ are worth, $g_l[t, j] = \sum_m W_{l+1}[j, m]\, c_{l+1}[t, m]$, and an
input spike gets

$$A[t, i] = x[t, i] \sum_j W_1[i, j]\, c_1[t, j].$$

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
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..dynamics import LIFParameters, lif_step

#: The readouts the rule follows.
CREDIT_READOUTS = ("count", "rate", "final_membrane", "max_membrane")


class CreditLayer(NamedTuple):
    """One layer as the rule sees it.

    Attributes:
        weight: `(n_in, n_out)` input weights.
        beta: membrane decay, a float or a per-neuron `(n_out,)` tensor.
        threshold: firing threshold, a float or a per-neuron tensor.
        reset: `"subtract"`, `"zero"` or `"none"`.
    """

    weight: Tensor
    beta: float | Tensor
    threshold: float | Tensor
    reset: str


def credit_layers(model: Any) -> tuple[list[CreditLayer], str]:
    """The layers and readout of `model` as the rule needs them, read from the model's own parameters.

    Args:
        model: an `LIFNetwork`, or an snnTorch adapter (`from_snntorch`) of `Linear` + `Leaky` pairs.

    Returns:
        `(layers, readout)`.

    Raises:
        ValueError: the model is not a stack of linear layers and LIF neurons the rule knows.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> layers, readout = credit_layers(LIFNetwork([torch.ones(3, 2)], beta=0.8))
        >>> readout, float(layers[0].beta), layers[0].reset
        ('count', 0.8, 'subtract')
    """
    from ..adapters.compile import compile_model  # structure only: the spikes come from the model's recording

    stack = compile_model(model)
    if stack is None:
        raise ValueError(f"model: mode='auto' reads the layers of an LIFNetwork or a Linear + LIF stack; "
                         f"{type(model).__name__} is not one it knows. Use mode='linear' with its weights")
    layers = []
    for index, layer in enumerate(stack.layers):
        if layer.step is not lif_step or not isinstance(layer.params, LIFParameters):
            raise ValueError(f"model: layer {stack.names[index]!r} is not an LIF layer (lif_step); mode='auto' "
                             "follows LIF dynamics only. Use mode='linear'")
        layers.append(CreditLayer(layer.weight.detach(), layer.params.beta, layer.params.threshold, layer.params.reset))
    if stack.readout not in CREDIT_READOUTS:
        raise ValueError(f"model: readout {stack.readout!r} is not one of {CREDIT_READOUTS}")
    return layers, stack.readout


def _beta(beta: float | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(beta, dtype=like.dtype, device=like.device)


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
    decay = _beta(beta, worth)
    fired = spikes != 0
    share = torch.where(fired, worth / _beta(threshold, worth), torch.zeros_like(worth))
    credit = torch.empty_like(worth)
    carry = torch.zeros_like(worth[:, 0])
    for t in range(worth.shape[1] - 1, -1, -1):  # reverse time: the next spike at or after t
        carry = torch.where(fired[:, t], share[:, t], decay * carry)
        credit[:, t] = carry
    return credit


def membrane_credit(spikes: Tensor, membrane: Tensor, targets: Tensor, beta: float | Tensor, reset: str,
                    readout: str) -> Tensor:
    r"""Credit per unit current of the output layer under a membrane readout, `(B, T, C)`, zero but in column $k$.

    Args:
        spikes: the output layer's spikes `(B, T, C)` (a reset to zero after a spike wipes earlier kicks).
        membrane: its membrane `(B, T, C)` (the time of the maximum for `"max_membrane"`).
        targets: `(B,)` the explained neuron of each sample.
        beta: the layer's decay.
        reset: the layer's reset.
        readout: `"final_membrane"` or `"max_membrane"`.

    Example:
        >>> import torch
        >>> z, v = torch.zeros(1, 3, 1), torch.tensor([[[1.0], [3.0], [2.0]]])
        >>> membrane_credit(z, v, torch.tensor([0]), 0.5, "none", "max_membrane")[0, :, 0].tolist()
        [0.5, 1.0, 0.0]
    """
    n_samples, n_steps, _ = membrane.shape
    rows = torch.arange(n_samples, device=membrane.device)
    column_membrane = membrane[rows, :, targets]  # (B, T)
    column_spikes = spikes[rows, :, targets] != 0
    decay = _beta(beta, membrane)
    if decay.ndim:
        decay = decay[targets]
    if readout == "final_membrane":
        end = torch.full((n_samples,), n_steps - 1, device=membrane.device)
    else:
        end = torch.argmax(column_membrane, dim=1)  # the first maximum
    column = torch.zeros(n_samples, n_steps, dtype=membrane.dtype, device=membrane.device)
    carry = torch.zeros(n_samples, dtype=membrane.dtype, device=membrane.device)
    for t in range(n_steps - 1, -1, -1):
        carry = decay * carry
        if reset == "zero":  # a spike at t resets v at t + 1: kicks up to t are gone
            carry = torch.where(column_spikes[:, t], torch.zeros_like(carry), carry)
        carry = torch.where(end == t, torch.ones_like(carry), carry)
        column[:, t] = carry
    credit = torch.zeros_like(membrane)
    credit[rows, :, targets] = column
    return credit


def credit_scores(x: Tensor, layers: list[CreditLayer], readout: str, spikes: list[Tensor],
                  membranes: list[Tensor], targets: Tensor) -> Tensor:
    """Attribution `A` `(B, T, N)` of input spikes `x` from a recording (see the module docstring).

    Args:
        x: the input spikes `(B, T, N)` in the compute dtype.
        layers: the model's layers (`credit_layers`), weights in the compute dtype.
        readout: the model's readout.
        spikes: each layer's recorded spikes `(B, T, n_l)`.
        membranes: each layer's recorded membrane `(B, T, n_l)`.
        targets: `(B,)` explained output neurons.

    Example:
        >>> import torch
        >>> layer = CreditLayer(torch.tensor([[2.0]]), 0.5, 1.0, "none")
        >>> x = torch.tensor([[[1.0], [1.0]]])
        >>> z, v = torch.zeros(1, 2, 1), torch.tensor([[[2.0], [3.0]]])
        >>> credit_scores(x, [layer], "final_membrane", [z], [v], torch.tensor([0]))[0, :, 0].tolist()
        [1.0, 2.0]
    """
    n_samples, n_steps, _ = x.shape
    last = layers[-1]
    if readout in ("final_membrane", "max_membrane"):
        credit = membrane_credit(spikes[-1], membranes[-1], targets, last.beta, last.reset, readout)
    else:
        worth = torch.zeros_like(membranes[-1])
        worth[torch.arange(n_samples, device=x.device), :, targets] = 1.0 if readout == "count" else 1.0 / n_steps
        credit = spike_credit(spikes[-1], worth, last.beta, last.threshold)
    for index in range(len(layers) - 2, -1, -1):
        worth = credit @ layers[index + 1].weight.T  # what a spike of layer `index` is worth at each step
        credit = spike_credit(spikes[index], worth, layers[index].beta, layers[index].threshold)
    return x * (credit @ layers[0].weight.T)
