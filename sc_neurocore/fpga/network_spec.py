r"""`NetworkSpec`: the integer format of a whole LIF network on chip, beside `FixedPointSpec`.

A network of LIF layers runs on the chip in integers (`sc_neurocore.fpga.network_reference` is its
bit-exact reference, `sc_neurocore.fpga.network_core` the gateware). Every width and constant comes from
one `NetworkSpec`, so the reference, the gateware, the build's checks and the host driver cannot drift.

Format (`G = weight_frac_bits`, `kb = beta_bits`):

* **Synaptic weight**: signed `weight_bits`-bit integer `w`, real value `w / 2**G`.
* **Membrane**: signed `membrane_bits`-bit integer `v` in the same units (`2**-G`), so an input
  spike adds its weight without a shift.
* **Threshold**: `theta_int = round(threshold * 2**G)`.
* **Leak**: `beta_int = round(beta * 2**kb)`; the leak of a membrane is `floor(beta_int * v / 2**kb)`
  (an arithmetic right shift).
* **Step** (delayed reset by subtraction, snnTorch's default, as `sc_neurocore.dynamics.lif_step`):

  $$r_t = H(v_{t-1} - \theta), \quad v_t = \lfloor \beta_{int} v_{t-1} / 2^{k_b} \rfloor + I_t - r_t \theta,
  \quad s_t = H(v_t - \theta)$$

  `reset="zero"` (snnTorch's zero reset) leaks `(1 - r_t) v_{t-1}` instead and subtracts nothing;
  `reset="zero", reset_delay=False` (Norse's `LIFBoxCell` with `reset_value` to 0) stores a membrane that
  fires as `0` in the same step: $v_t = (1 - s_t)(\lfloor \beta_{int} v_{t-1} / 2^{k_b} \rfloor + I_t)$.
  `"none"` never resets.

* **Traces and attribution**: the per-input traces and the linear rule's importance use the trace
  explainer's `FixedPointSpec` (`trace`): `importance[i] = x_T[i] * q(W_eff)[i, c]` for the predicted
  class `c`, `W_eff = W_1 @ ... @ W_L` quantised once with `trace.weight_bits` / `trace.weight_frac_bits`.

Every multiplier operand is a signed 16-bit `SB_MAC16` input, so `weight_bits`, `membrane_bits` and the
trace operand `x + 2**F` must fit 16 signed bits, and `beta_int`, `D_int` at most `2**15 - 1`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from .spec import FixedPointSpec

#: One signed operand of an iCE40 `SB_MAC16` in signed mode.
SIGNED_OPERAND_BITS = 16
#: Resets the integer network supports.
SUPPORTED_RESETS = ("subtract", "zero", "none")


def _int(value, name: str, low: int, high: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name}: expected an int in [{low}, {high}], got {value}")
    return int(value)


def _floats(value, n: int, name: str, low: float, high: float) -> tuple[float, ...]:
    values = [value] * n if isinstance(value, numbers.Real) else list(value)
    if len(values) != n:
        raise ValueError(f"{name}: expected one float or {n} floats (one per layer), got {len(values)}")
    for v in values:
        if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
            raise TypeError(f"{name}: expected finite floats, got {v!r}")
        if not low <= float(v) <= high:
            raise ValueError(f"{name}: expected values in [{low}, {high}], got {v}")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class NetworkSpec:
    """The integer format of an on-chip LIF network (see the module docstring).

    Args:
        layers: neuron counts, input first, for example `(64, 32, 10)` (at least one weight layer).
        n_steps: timesteps `T` per sample (it bounds the membranes, the traces and the spike counts).
        beta: membrane decay per layer, one float in `[0, 1)` or one per layer.
        threshold: firing threshold, one positive float or one per layer.
        reset: `"subtract"`, `"zero"` or `"none"`.
        reset_delay: `True` (snnTorch's default) applies a spike's reset on the next step; `False` (Norse's
            box neuron) resets in the same step, only with `reset="zero"`.
        weight_bits: signed synaptic weight width (2 to 16).
        weight_frac_bits: weight (and membrane) fraction bits `G`.
        membrane_bits: signed membrane width (2 to 16).
        beta_bits: fraction bits `kb` of the leak multiplier (1 to 15).
        trace: the `FixedPointSpec` of the traces and the attribution (its `trace_bits` at most 14).
        top_k: how many `(input, |importance|)` pairs the chip ranks (1 to the input count; 0, the default,
            means `min(10, N)`).

    Example:
        >>> spec = NetworkSpec(layers=(64, 32, 10), n_steps=25)
        >>> spec.beta_int, spec.threshold_int, spec.count_bits
        ((14746, 14746), (256, 256), 5)
    """

    layers: tuple[int, ...]
    n_steps: int
    beta: float | tuple[float, ...] = 0.9
    threshold: float | tuple[float, ...] = 1.0
    reset: str = "subtract"
    reset_delay: bool = True
    weight_bits: int = 16
    weight_frac_bits: int = 8
    membrane_bits: int = 16
    beta_bits: int = 14
    trace: FixedPointSpec = field(default_factory=lambda: FixedPointSpec(
        decay=0.9, trace_bits=14, frac_bits=9, decay_bits=14, weight_bits=16, weight_frac_bits=14))
    top_k: int = 0

    def __post_init__(self) -> None:
        layers = tuple(self.layers) if not isinstance(self.layers, (str, bytes)) else ()
        if len(layers) < 2:
            raise ValueError(f"layers: expected at least two sizes (input first), got {self.layers!r}")
        for size in layers:
            _int(size, "layers", 1, 4096)
        object.__setattr__(self, "layers", tuple(int(size) for size in layers))
        _int(self.n_steps, "n_steps", 1, 65535)
        n_layers = len(layers) - 1
        object.__setattr__(self, "beta", _floats(self.beta, n_layers, "beta", 0.0, 1.0))
        object.__setattr__(self, "threshold", _floats(self.threshold, n_layers, "threshold", 0.0, 1e6))
        if self.reset not in SUPPORTED_RESETS:
            raise ValueError(f"reset: the chip supports {SUPPORTED_RESETS}, got {self.reset!r}")
        if not isinstance(self.reset_delay, bool):
            raise TypeError(f"reset_delay: expected a bool, got {type(self.reset_delay).__name__}")
        if not self.reset_delay and self.reset == "subtract":
            raise ValueError("reset_delay: a same-step subtractive reset is not on the chip; expected "
                             "reset_delay=True with reset='subtract' (same-step resets: reset='zero')")
        _int(self.weight_bits, "weight_bits", 2, SIGNED_OPERAND_BITS)
        _int(self.weight_frac_bits, "weight_frac_bits", 0, 24)
        _int(self.membrane_bits, "membrane_bits", 2, SIGNED_OPERAND_BITS)
        _int(self.beta_bits, "beta_bits", 1, 15)
        if not isinstance(self.trace, FixedPointSpec):
            raise TypeError(f"trace: expected a FixedPointSpec, got {type(self.trace).__name__}")
        if self.trace.trace_bits > SIGNED_OPERAND_BITS - 2:
            raise ValueError(f"trace: trace_bits={self.trace.trace_bits}, but a trace plus a spike must fit a "
                             f"signed {SIGNED_OPERAND_BITS}-bit SB_MAC16 operand; expected trace_bits <= 14")
        if self.trace.decay_int >= 1 << (SIGNED_OPERAND_BITS - 1):
            raise ValueError(f"trace: D_int={self.trace.decay_int} does not fit a signed 16-bit operand; "
                             "use decay_bits <= 14 or a decay below 1")
        if any(b >= 1 << (SIGNED_OPERAND_BITS - 1) for b in self.beta_int):
            raise ValueError(f"beta: beta_int={self.beta_int} does not fit a signed 16-bit operand; "
                             "use beta_bits <= 14 or a beta below 1")
        if any(t < 1 or t > self.membrane_max for t in self.threshold_int):
            raise ValueError(f"threshold: threshold_int={self.threshold_int} must lie in [1, {self.membrane_max}] "
                             f"({self.membrane_bits}-bit membrane, weight_frac_bits={self.weight_frac_bits})")
        if isinstance(self.top_k, int) and not isinstance(self.top_k, bool) and self.top_k == 0:
            object.__setattr__(self, "top_k", min(10, self.layers[0]))
        _int(self.top_k, "top_k", 1, self.layers[0])

    # Derived constants, the ones the gateware is built from.
    @property
    def n_inputs(self) -> int:
        """Input neurons `N` (the spike bits of one timestep)."""
        return self.layers[0]

    @property
    def n_outputs(self) -> int:
        """Output neurons `C` (the classes)."""
        return self.layers[-1]

    @property
    def beta_int(self) -> tuple[int, ...]:
        """`round(beta * 2**beta_bits)` per layer (half away from zero)."""
        return tuple(math.floor(b * (1 << self.beta_bits) + 0.5) for b in self.beta)  # type: ignore[union-attr]

    @property
    def threshold_int(self) -> tuple[int, ...]:
        """`round(threshold * 2**weight_frac_bits)` per layer."""
        return tuple(math.floor(t * (1 << self.weight_frac_bits) + 0.5)
                     for t in self.threshold)  # type: ignore[union-attr]

    @property
    def membrane_min(self) -> int:
        """The most negative membrane, `-2**(membrane_bits - 1)`."""
        return -(1 << (self.membrane_bits - 1))

    @property
    def membrane_max(self) -> int:
        """The largest membrane, `2**(membrane_bits - 1) - 1`."""
        return (1 << (self.membrane_bits - 1)) - 1

    @property
    def weight_min(self) -> int:
        """The most negative synaptic weight."""
        return -(1 << (self.weight_bits - 1))

    @property
    def weight_max(self) -> int:
        """The largest synaptic weight."""
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def count_bits(self) -> int:
        """Bits of an output spike counter (`0 .. n_steps`)."""
        return max(1, int(self.n_steps).bit_length())

    @property
    def spike_words(self) -> int:
        """32-bit words the host sends per timestep: `ceil(N / 32)`."""
        return -(-self.n_inputs // 32)

    def to_dict(self) -> dict:
        """The spec as plain JSON values (for the build report); `reset_delay` appears only when `False`.

        Example:
            >>> NetworkSpec(layers=(4, 2), n_steps=3).to_dict()["layers"]
            [4, 2]
        """
        trace = self.trace
        return {"layers": list(self.layers), "n_steps": self.n_steps, "beta": list(self.beta),  # type: ignore[arg-type]
                "threshold": list(self.threshold), "reset": self.reset,  # type: ignore[arg-type]
                **({} if self.reset_delay else {"reset_delay": False}),
                "weight_bits": self.weight_bits, "weight_frac_bits": self.weight_frac_bits,
                "membrane_bits": self.membrane_bits, "beta_bits": self.beta_bits, "top_k": self.top_k,
                "trace": {"decay": trace.decay, "trace_bits": trace.trace_bits, "frac_bits": trace.frac_bits,
                          "decay_bits": trace.decay_bits, "weight_bits": trace.weight_bits,
                          "weight_frac_bits": trace.weight_frac_bits}}
