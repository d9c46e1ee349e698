r"""The one fixed-point format shared by the FPGA core, its integer reference and ``SpikeAttributor``.

Everything that computes a hardware trace or importance -- the Migen core, the exported Verilog, the
integer reference and ``SpikeAttributor(..., fixed_point=spec)`` -- reads its widths and constants from a
`FixedPointSpec`, so that they cannot drift apart.

Format (``W = trace_bits``, ``F = frac_bits``, ``k = decay_bits``, ``B = weight_bits``,
``G = weight_frac_bits``):

* **Trace**: unsigned ``W``-bit integer ``x``, real value ``x / 2**F``. A spike adds the increment
  ``2**F`` (one spike = 1.0).
* **Decay**: the integer multiplier ``D_int = round(decay * 2**k)``; the hardware decays by
  ``D = D_int / 2**k``.
* **Step** (`sc_neurocore.dynamics.trace_step` on integers, then a floor shift and saturation):

      x[t] = min( floor( D_int * (x[t-1] + 2**F * s[t]) / 2**k ), 2**W - 1 ),   x[-1] = 0

  Floor rounding (a right shift) lets a lone trace decay all the way to 0 (round-half-up would stick at
  a dead band); saturation clamps at ``2**W - 1`` and never wraps (a wrapped trace would invert the
  ranking of the most active inputs).
* **Weight**: signed two's complement ``B``-bit integer ``w``, real value ``w / 2**G``, quantised by
  rounding to nearest (``round half to even``, as `torch.round`). A weight outside the range is an
  error, not a silent saturation: it would break the error bound below.
* **Importance** of input ``i`` for output neuron ``c``: ``x_T[i] * w[i, c]`` at full width
  (``W + B`` bits, signed), real value ``x_T[i] * w[i, c] / 2**(F + G)``.

Float vs fixed error bound (proved in the docs of `FixedPointSpec.trace_error_bound`, tested in
``tests/fpga/test_spec.py``): when the trace does not saturate, with ``d`` the float decay and
``y_T = sum_t d**(T - t) s[t]`` the float trace over ``T`` steps,

$$
|y_T - x_T / 2^F| \le \sum_{n=1}^{T} |d^n - D^n| + 2^{-F} \sum_{m=0}^{T-1} D^m
$$

and the importance error is at most ``trace_bound * |w| + x_max * 2**-(G+1)`` with ``x_max`` the
largest possible fixed-point trace value.

The MAC constraint: each lane multiplies ``D_int`` by ``x + 2**F`` in one ``SB_MAC16`` (16 x 16 bits,
unsigned), so ``W + 1 <= 16`` and ``k <= 15``; the importance ``W + B`` bits must fit one 32-bit CSR.
"""

from __future__ import annotations

import math
import numbers
from typing import cast
from dataclasses import dataclass

import torch
from torch import Tensor

#: The multiplier width of an iCE40 ``SB_MAC16`` (one operand).
MAC_WIDTH = 16
#: The CSR bus word: the importance must fit one read.
CSR_WIDTH = 32


def _check_int(value, name: str, low: int, high: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if not low <= cast(int, value) <= high:
        raise ValueError(f"{name}: expected an int in [{low}, {high}], got {value}")
    return int(value)


@dataclass(frozen=True)
class FixedPointSpec:
    """The fixed-point format of a hardware trace explainer (see the module docstring).

    Args:
        decay: the float decay ``d`` in ``(0, 1]``; the hardware uses ``round(d * 2**decay_bits) / 2**decay_bits``.
        trace_bits: unsigned trace width ``W`` (2 to 15: ``W + 1`` bits enter a 16-bit multiplier).
        frac_bits: trace fraction bits ``F`` (``0 <= F < W``); a spike adds ``2**F``.
        decay_bits: fraction bits ``k`` of the decay constant (1 to 15).
        weight_bits: signed weight width ``B`` (2 to 16; ``W + B <= 32``).
        weight_frac_bits: weight fraction bits ``G`` (``0 <= G < B``).

    Raises:
        ValueError: a width out of range (for example a trace too wide for the 16-bit multiplier), or a
            decay that rounds to 0 with ``decay_bits`` bits.

    Example:
        >>> spec = FixedPointSpec(decay=0.9)
        >>> spec.decay_int, spec.spike_increment, spec.trace_max
        (29491, 1024, 32767)
    """

    decay: float = 0.9
    trace_bits: int = 15
    frac_bits: int = 10
    decay_bits: int = 15
    weight_bits: int = 16
    weight_frac_bits: int = 12

    def __post_init__(self) -> None:
        if not isinstance(self.decay, numbers.Real) or isinstance(self.decay, bool) or not math.isfinite(self.decay):
            raise TypeError(f"decay: expected a float in (0, 1], got {self.decay!r}")
        if not 0 < self.decay <= 1:
            raise ValueError(f"decay: expected a float in (0, 1], got {self.decay}")
        object.__setattr__(self, "decay", float(self.decay))
        trace_bits = _check_int(self.trace_bits, "trace_bits", 2, 10**6)
        if trace_bits + 1 > MAC_WIDTH:
            raise ValueError(f"trace_bits: a {trace_bits}-bit trace plus a spike needs {trace_bits + 1} bits, which "
                             f"overflows the {MAC_WIDTH}-bit SB_MAC16 operand; expected trace_bits <= {MAC_WIDTH - 1}")
        _check_int(self.frac_bits, "frac_bits", 0, trace_bits - 1)
        _check_int(self.decay_bits, "decay_bits", 1, MAC_WIDTH - 1)
        weight_bits = _check_int(self.weight_bits, "weight_bits", 2, MAC_WIDTH)
        _check_int(self.weight_frac_bits, "weight_frac_bits", 0, weight_bits - 1)
        if trace_bits + weight_bits > CSR_WIDTH:
            raise ValueError(f"weight_bits: importance needs trace_bits + weight_bits = {trace_bits + weight_bits} "
                             f"bits, more than one {CSR_WIDTH}-bit CSR word")
        if self.decay_int == 0:
            raise ValueError(f"decay: {self.decay} rounds to 0 with decay_bits={self.decay_bits}; "
                             "use more decay_bits or a larger decay")

    # Derived integer constants, the ones the gateware is built from.
    @property
    def decay_int(self) -> int:
        """``D_int = round(decay * 2**decay_bits)`` (half away from zero; ``decay > 0``)."""
        return int(math.floor(self.decay * (1 << self.decay_bits) + 0.5))

    @property
    def decay_fixed(self) -> float:
        """The decay the hardware applies, ``D = D_int / 2**decay_bits``."""
        return self.decay_int / (1 << self.decay_bits)

    @property
    def spike_increment(self) -> int:
        """What a spike adds to the trace: ``2**frac_bits`` (1.0)."""
        return 1 << self.frac_bits

    @property
    def trace_max(self) -> int:
        """The saturation value ``2**trace_bits - 1``."""
        return (1 << self.trace_bits) - 1

    @property
    def weight_min(self) -> int:
        """The most negative quantised weight, ``-2**(B-1)``."""
        return -(1 << (self.weight_bits - 1))

    @property
    def weight_max(self) -> int:
        """The largest quantised weight, ``2**(B-1) - 1``."""
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def importance_bits(self) -> int:
        """Width of ``trace * weight`` at full precision (signed)."""
        return self.trace_bits + self.weight_bits

    @property
    def importance_scale(self) -> float:
        """Real value of one importance LSB: ``2**-(frac_bits + weight_frac_bits)``."""
        return 2.0 ** -(self.frac_bits + self.weight_frac_bits)

    def with_decay(self, decay: float) -> FixedPointSpec:
        """The same widths with another decay.

        Args:
            decay: the new float decay in ``(0, 1]``.

        Returns:
            A new `FixedPointSpec` (specs are immutable).

        Example:
            >>> FixedPointSpec(decay=0.9, frac_bits=8).with_decay(0.5).decay_int
            16384
        """
        return FixedPointSpec(decay, self.trace_bits, self.frac_bits, self.decay_bits, self.weight_bits,
                              self.weight_frac_bits)

    # Conversions.
    def quantize_weights(self, weights: Tensor, name: str = "weights") -> Tensor:
        """Float weights -> signed integers ``round(w * 2**weight_frac_bits)`` (``int64``), checked in range.

        Args:
            weights: a real tensor of any shape.
            name: the argument name used in errors.

        Returns:
            An ``int64`` tensor of the same shape.

        Raises:
            ValueError: a weight outside ``[weight_min, weight_max] / 2**weight_frac_bits`` (saturating it
                would silently break the error bound; lower ``weight_frac_bits`` instead).

        Example:
            >>> FixedPointSpec(decay=0.9).quantize_weights(torch.tensor([0.5, -1.25]))
            tensor([ 2048, -5120])
        """
        if not isinstance(weights, Tensor) or weights.is_complex():
            raise TypeError(f"{name}: expected a real torch tensor, got {type(weights).__name__}")
        scaled = torch.round(weights.to(torch.float64) * (1 << self.weight_frac_bits))
        if not bool(torch.isfinite(scaled).all()):
            raise ValueError(f"{name}: expected finite values, found NaN or Inf")
        out_of_range = (scaled < self.weight_min) | (scaled > self.weight_max)
        if bool(out_of_range.any()):
            worst = float(weights.reshape(-1)[out_of_range.reshape(-1)].abs().max())
            low = self.weight_min / (1 << self.weight_frac_bits)
            high = self.weight_max / (1 << self.weight_frac_bits)
            raise ValueError(f"{name}: a weight of magnitude {worst:g} is outside the {self.weight_bits}-bit signed "
                             f"range [{low:g}, {high:g}] with weight_frac_bits={self.weight_frac_bits}; "
                             "use fewer weight_frac_bits or more weight_bits")
        return scaled.to(torch.int64)

    # Error bounds.
    def never_saturates(self, n_steps: int) -> bool:
        """Whether no spike train of ``n_steps`` steps can reach ``trace_max`` (so the bounds below hold).

        The fixed trace never exceeds the exact trace with decay ``D``, whose maximum is
        ``2**F * sum_{n=1..T} D**n`` (a spike every step).
        """
        return self._peak_trace(_check_int(n_steps, "n_steps", 1, 10**9)) < self.trace_max

    def trace_error_bound(self, n_steps: int) -> float:
        r"""Largest ``|y_T - x_T / 2**F|`` over all spike trains of ``n_steps`` steps, in spike units.

        Why it holds (no saturation): the hardware computes ``X_t = D (X_{t-1} + s_t) - r_t`` with the floor
        remainder ``0 <= r_t < 2**-F``, so ``X_T = sum_t D**(T-t+1) s_t - sum_t D**(T-t) r_t``; the second sum is
        below ``2**-F sum_{m<T} D**m`` (and 0 when ``D = 1``: the shift then undoes the multiply). The float trace differs from the first sum by
        ``sum_t s_t (d**(T-t+1) - D**(T-t+1))``, at most ``sum_{n=1..T} |d**n - D**n|`` in magnitude.

        Args:
            n_steps: the window length ``T``.

        Returns:
            The bound as a float (valid while `never_saturates` holds).
        """
        n_steps = _check_int(n_steps, "n_steps", 1, 10**9)
        steps = torch.arange(1, n_steps + 1, dtype=torch.float64)
        d = torch.tensor(self.decay, dtype=torch.float64)
        fixed = torch.tensor(self.decay_fixed, dtype=torch.float64)
        decay_error = float((d ** steps - fixed ** steps).abs().sum())
        # With D = 1 the shift undoes the multiply exactly: no floor remainder, no rounding term.
        exact_shift = self.decay_int == 1 << self.decay_bits
        rounding_error = 0.0 if exact_shift else float((fixed ** (steps - 1)).sum()) / self.spike_increment
        return decay_error + rounding_error

    def importance_error_bound(self, n_steps: int, weights: Tensor) -> Tensor:
        """Largest ``|y_T * w - importance * importance_scale|`` per weight, for float weights ``weights``.

        ``|y w - x q| <= |y - x| |w| + |x| |w - q|`` with ``|w - q| <= 2**-(G+1)`` and ``|x| <= trace_max / 2**F``.

        Args:
            n_steps: the window length ``T``.
            weights: float weights of any shape.

        Returns:
            A float64 tensor of ``weights``' shape.
        """
        trace_bound = self.trace_error_bound(n_steps)
        trace_peak = min(self.trace_max, self._peak_trace(n_steps)) / self.spike_increment
        return trace_bound * weights.to(torch.float64).abs() + trace_peak * 2.0 ** -(self.weight_frac_bits + 1)

    def _peak_trace(self, n_steps: int) -> float:
        steps = torch.arange(1, n_steps + 1, dtype=torch.float64)
        return float((torch.tensor(self.decay_fixed, dtype=torch.float64) ** steps).sum()) * self.spike_increment
