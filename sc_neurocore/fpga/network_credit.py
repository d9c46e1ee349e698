r"""The one-pass auto rule (`SpikeAttributor(mode="auto")`) in the chip's integers, on its recorded spikes.

`sc_neurocore.explain.credit` gives a kick of current into neuron $j$ of layer $l$ at step $t$ the credit
$c_l[t, j] = \beta_l^{\,t_n - t}\, g_l[t_n, j] / \theta_l$, with $t_n$ the neuron's next spike at or after
$t$ and $g_l$ what a spike is worth: $1$ for the explained output neuron under the count readout,
$g_l[t] = W_{l+1} c_{l+1}[t]$ below it; an input spike scores $A[t, i] = x[t, i] (W_1 c_1[t])_i$.

**Integer form** (`integer_credit`). The integer network (`network_reference`) records every spike; the
explained neuron is the chip's class $k$ (the argmax of the output counts). In reverse time each layer
carries one integer per neuron, exactly as the membrane leak of the chip:

$$C_l[t] = \begin{cases} G_l[t] & z_l[t] = 1 \\ \lfloor \beta_{int,l}\, C_l[t+1] / 2^{k_b} \rfloor & \text{else}
\end{cases}, \qquad G_L[t, k] = 2^Q, \quad G_l[t] = W^{int}_{l+1} C_{l+1}[t],$$

so $\beta^{t_n - t}$ is $t_n - t$ multiply-and-shift steps, and $A^{int}[t, i] = x[t, i] (W^{int}_1 C_1[t])_i$,
`int64` throughout (`credit_bits` $= Q$; a network whose credits could leave `int64` is refused). The
division by $\theta_l$ is the same for every neuron of a layer, so it is left out: it scales every score of
a sample alike and changes no ranking.

**What it equals.** Let $A$ be the float rule with the chip's own constants ($\beta_l = \beta_{int,l} / 2^{k_b}$,
$w = w^{int} / 2^G$, $\theta_l = \theta_{int,l} / 2^G$) on the same recorded spikes. Then

$$A^{int} = S\, A - \epsilon, \qquad S = 2^Q \prod_l \theta_{int,l},$$

with $0 \le$ each floor's loss $< 1$: in layer $l$ a carry loses less than $\sum_{m=0}^{T-2} \beta_l^m$ to its
floors, and what a layer passes down loses the weight-sum of its errors, so
$|\epsilon[t, i]| \le$ `credit_error_bound(network)` (per score; `T` times that for an input's importance).
$\epsilon = 0$ **exactly** when no floor drops a bit, for example when every $\beta_l = 2^{-s_l}$ and
$Q \ge \sum_l s_l (T - 1)$: every carry is then a multiple of the shifts it meets. Against the float rule on
the *float* model the two also differ where the integer network's spikes differ from the float network's
(the quantised weights and leak); `docs/fpga.md` gives the measured agreement on the digits test set.

Networks with a zero reset (snnTorch's or Norse's) are refused: the float rule zeroes the credit of the
kicks such a reset erases, which this form does not carry. Where it runs: here, on the host, from the spike train (the chip streams no hidden spikes back); the
chip's own importance is the linear rule (`network_reference`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .network_reference import QuantizedNetwork, record_spikes
from .reference import as_spike_bits

#: Default fraction bits $Q$ of the output credit: one more than the leak's 14, so the first decay step
#: keeps every bit of `beta_int`.
CREDIT_BITS = 15
#: The largest magnitude an intermediate may reach (a product `beta_int * C` must stay in `int64`).
_INT64_HEADROOM = 1 << 62


@dataclass(frozen=True)
class IntegerCredit:
    r"""The integer auto rule of one batch.

    Attributes:
        scores: $A^{int}$ `(B, T, N)` `int64`.
        importance: per input, summed over time `(B, N)`.
        top_indices, top_scores: the `top_k` inputs by `|importance|` (ties to the lower index) and their
            importance `(B, k)`.
        predicted: the explained class per sample `(B,)` (the chip's argmax).
        scale: $S = 2^Q \prod_l \theta_{int,l}$: `scores / scale` is the float rule up to the floors.
    """

    scores: Tensor
    importance: Tensor
    top_indices: Tensor
    top_scores: Tensor
    predicted: Tensor
    scale: int


def _check_bits(credit_bits) -> int:
    if not isinstance(credit_bits, int) or isinstance(credit_bits, bool) or not 0 <= credit_bits <= 40:
        raise ValueError(f"credit_bits: expected an int in [0, 40], got {credit_bits!r}")
    return credit_bits


def credit_magnitudes(network: QuantizedNetwork, credit_bits: int = CREDIT_BITS) -> list[int]:
    """The largest `|C_l|` per layer (input layer's `|W_1 C_1|` last) any spike train can give.

    Example:
        >>> from sc_neurocore.data import pretrained_network
        >>> from sc_neurocore.fpga.network_reference import quantize_network
        >>> [m.bit_length() for m in credit_magnitudes(quantize_network(pretrained_network(8), n_steps=25))]
        [16, 25, 35]
    """
    top = 1 << _check_bits(credit_bits)
    sizes = [top]
    for weight in reversed(network.weights[1:]):  # a carry never grows (beta_int < 2**kb)
        top = int(weight.abs().sum(dim=1).max()) * top
        sizes.append(top)
    sizes.append(int(network.weights[0].abs().sum(dim=1).max()) * top)
    return sizes


def credit_error_bound(network: QuantizedNetwork) -> float:
    r"""Bound on $|S A - A^{int}|$ per score (see the module docstring): the floors of each layer's carry
    lose less than $E_l = \sum_{m=0}^{T-2} \beta_l^m$, a layer passes its errors down through the weights.

    Example:
        >>> from sc_neurocore.data import pretrained_network
        >>> from sc_neurocore.fpga.network_reference import quantize_network
        >>> round(credit_error_bound(quantize_network(pretrained_network(8), n_steps=25)))
        7084496
    """
    spec = network.spec
    leaks = [b / (1 << spec.beta_bits) for b in spec.beta_int]
    per_layer = [sum(beta**m for m in range(spec.n_steps - 1)) for beta in leaks]
    error = per_layer[-1]
    for index in range(len(network.weights) - 2, -1, -1):
        row = float(network.weights[index + 1].abs().sum(dim=1).max())
        error = row * error + per_layer[index]
    return float(network.weights[0].abs().sum(dim=1).max()) * error


def _carry(fired: Tensor, worth: Tensor, beta_int: int, beta_bits: int) -> Tensor:
    """`C[t] = G[t]` at a spike, else `floor(beta_int C[t+1] / 2**kb)`, in reverse time, `(B, T, n)`."""
    credit = torch.zeros_like(worth)
    carry = torch.zeros_like(worth[:, 0])
    for t in range(worth.shape[1] - 1, -1, -1):  # reverse time: the next spike at or after t
        carry = torch.where(fired[:, t], worth[:, t], (beta_int * carry) >> beta_bits)
        credit[:, t] = carry
    return credit


def integer_credit(network: QuantizedNetwork, spikes: Tensor, credit_bits: int = CREDIT_BITS) -> IntegerCredit:
    """The auto rule in integers for the chip's class of each sample (see the module docstring).

    Args:
        network: the `QuantizedNetwork`.
        spikes: 0/1 input spikes `(B, T, N)`.
        credit_bits: fraction bits `Q` of the output credit.

    Returns:
        The `IntegerCredit`.

    Raises:
        ValueError: `credit_bits` out of range, credits that could leave `int64` (lower `credit_bits`), or a
            zero reset (the float rule wipes the kicks a reset to zero erases; the integer form follows
            `"subtract"` and `"none"` networks).

    Example:
        >>> from sc_neurocore.data import load_digits, pretrained_network
        >>> from sc_neurocore.fpga.network_reference import quantize_network
        >>> net = quantize_network(pretrained_network(8), n_steps=25)
        >>> credit = integer_credit(net, load_digits("test").spikes[:3])
        >>> tuple(credit.scores.shape), credit.scale == 2**15 * 256 * 256
        ((3, 25, 64), True)
    """
    spec = network.spec
    if spec.reset == "zero":
        raise ValueError("network: a zero reset wipes the kicks before it, which the integer auto rule does not "
                         "follow (it covers reset='subtract' and 'none'); use SpikeAttributor(mode='auto') on the "
                         "float model")
    largest = credit_magnitudes(network, credit_bits)
    if max(largest) * spec.n_steps >= _INT64_HEADROOM:
        raise ValueError(f"credit_bits: credits of {max(largest).bit_length()} bits could leave int64 with "
                         f"credit_bits={credit_bits}; lower credit_bits")
    recorded = record_spikes(network, spikes)
    inputs = as_spike_bits(spikes)  # checked by record_spikes
    n_samples = inputs.shape[0]
    predicted = torch.argmax(recorded[-1].sum(dim=1), dim=1)  # the chip's class: the first maximum
    worth = torch.zeros_like(recorded[-1])
    worth[torch.arange(n_samples), :, predicted] = 1 << credit_bits
    credit = _carry(recorded[-1] != 0, worth, spec.beta_int[-1], spec.beta_bits)
    for index in range(len(network.weights) - 2, -1, -1):
        worth = credit @ network.weights[index + 1].T  # G_l[t] = W_{l+1} C_{l+1}[t]
        credit = _carry(recorded[index] != 0, worth, spec.beta_int[index], spec.beta_bits)
    scores = inputs * (credit @ network.weights[0].T)
    importance = scores.sum(dim=1)
    order = torch.sort(importance.abs(), dim=1, descending=True, stable=True).indices[:, :spec.top_k]
    scale = 1 << credit_bits
    for theta in spec.threshold_int:
        scale *= theta
    return IntegerCredit(scores, importance, order, torch.gather(importance, 1, order), predicted, scale)
