r"""The integer step functions of the on-chip network's neurons (`network_reference` runs them).

* `fixed_lif_step`: `sc_neurocore.dynamics.lif_step` on `int64` tensors with `beta = 1` and the
  floor-shifted leak folded into the current, `I' = I + floor(beta_int * v / 2**kb) - v`, so that
  `lif_step`'s own reset and threshold logic gives `v_t = floor(beta_int v / 2**kb) + I - r theta` exactly
  (an integer variant is needed because `lif_step` multiplies by a float `beta`, and the chip rounds that
  product down to its membrane grid every step).
* `fixed_cuba_step`: a current-based (CUBA) layer, Norse's `LIFCell` in integers, in the order of
  `sc_neurocore.dynamics.current_lif_step` (and of Norse's `lif_feed_forward_step`): the input jumps the
  synaptic current, `J = c + I`; the membrane takes `fixed_lif_step` with `J` as its input; then the
  current decays, `c' = floor(alpha_int J / 2**kb)`.

Both are pure: integer tensors in, integer tensors out, nothing kept between calls.
"""

from __future__ import annotations

from torch import Tensor

from ..dynamics import LIFParameters, LIFState, lif_step


def fixed_lif_step(current: Tensor, membrane: Tensor, beta_int: int, beta_bits: int, threshold_int: int,
                   reset: str = "subtract", reset_delay: bool = True) -> tuple[Tensor, Tensor]:
    """One integer LIF step: `lif_step` with the floor-shifted leak folded into the current.

    Args:
        current: `int64` synaptic input `I_t`, any shape.
        membrane: `int64` membranes after `t - 1`.
        beta_int: the leak multiplier `round(beta * 2**beta_bits)`.
        beta_bits: its fraction bits.
        threshold_int: the threshold in membrane units.
        reset: `"subtract"`, `"zero"` or `"none"`.
        reset_delay: `False` resets in the same step (with `"zero"`: Norse's box neuron).

    Returns:
        `(spikes, membrane)`, both `int64`.

    Example:
        >>> import torch
        >>> fixed_lif_step(torch.tensor([300, 10]), torch.tensor([0, 300]), 14746, 14, 256)
        (tensor([1, 0]), tensor([300,  24]))
        >>> fixed_lif_step(torch.tensor([300, 10]), torch.tensor([0, 200]), 14746, 14, 256, "zero", False)
        (tensor([1, 0]), tensor([  0, 190]))
    """
    # The membrane the leak acts on: a zero reset (lif_step's beta * (1 - r) v) leaks nothing after a spike.
    kept = membrane * (membrane <= threshold_int) if reset == "zero" else membrane
    leak = (beta_int * kept) >> beta_bits  # floor: an arithmetic shift
    params = LIFParameters(1, threshold_int, reset, reset_delay=reset_delay)  # type: ignore[arg-type]  # checked by NetworkSpec
    spikes, state = lif_step(current + leak - kept, LIFState(membrane), params)
    return spikes, state.membrane


def fixed_cuba_step(current: Tensor, membrane: Tensor, synaptic: Tensor, beta_int: int, alpha_int: int,
                    beta_bits: int, threshold_int: int, reset: str = "zero",
                    reset_delay: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    r"""One integer current-based LIF step: $J = c + I$, the membrane by `fixed_lif_step` on $J$, then
    $c' = \lfloor \alpha_{int} J / 2^{k_b} \rfloor$.

    Args:
        current: `int64` synaptic input `I_t` (the weighted input spikes), any shape.
        membrane: `int64` membranes after `t - 1`.
        synaptic: `int64` synaptic currents after `t - 1`, the membrane's shape and units.
        beta_int: the membrane leak multiplier `round(beta * 2**beta_bits)`.
        alpha_int: the current decay multiplier `round(alpha * 2**beta_bits)`.
        beta_bits: the fraction bits of both multipliers.
        threshold_int: the threshold in membrane units.
        reset: `"zero"` (Norse's, the default), `"subtract"` or `"none"`.
        reset_delay: `False` (Norse's same-step reset, the default) or `True`.

    Returns:
        `(spikes, membrane, synaptic)`, all `int64`.

    Example:
        >>> import torch
        >>> fixed_cuba_step(torch.tensor([200, 10]), torch.tensor([0, 100]), torch.tensor([100, 0]),
        ...                 14746, 13107, 14, 256)
        (tensor([1, 0]), tensor([  0, 100]), tensor([239,   7]))
    """
    jumped = synaptic + current
    spikes, membrane = fixed_lif_step(jumped, membrane, beta_int, beta_bits, threshold_int, reset, reset_delay)
    return spikes, membrane, (alpha_int * jumped) >> beta_bits
