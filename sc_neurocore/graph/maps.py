r"""Linear maps and selections: the stateless nodes of a model graph.

Each map acts on one timestep of a batch, `x` of shape `(M, *in_shape)`, and computes exactly what the
framework's module computes (the same torch op with the same arguments, so the same rounding). Besides
`forward`, every map knows its adjoint (for weight paths, without autograd) and how one unit input
changes its output (for event-driven executors):

| map | forward | adjoint |
|---|---|---|
| `Dense` | $W x + b$ (`F.linear`) | $W^\top g$ |
| `MatMul` | $x W + b$ (`x @ W`) | $g W^\top$ |
| `Conv` | `F.conv1d` / `F.conv2d` | `conv_transpose` |
| `Pool` (avg, sum) | `F.avg_pool1d` / `F.avg_pool2d` | the window sum transposed, over each window's divisor |
| `Scale` | $x \odot s$ | $g \odot s$ |
| `BatchNorm` (eval) | `F.batch_norm` with the running statistics | $g \odot \gamma / \sqrt{\sigma^2 + \epsilon}$ |
| `Reshape`, `Identity` | a view | the inverse view |
| `MaxPool` (a selection) | `F.max_pool1d` / `F.max_pool2d` | routed through the recorded argmax |

Maps are immutable: their tensors are detached references to the model's own parameters, never copies
and never modified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True, eq=False)
class LinearMap:
    """Base of the graph's stateless maps: per-sample `in_shape` -> `out_shape`.

    Attributes:
        in_shape: the per-sample input shape, e.g. `(784,)` or `(1, 28, 28)`.
        out_shape: the per-sample output shape.
    """

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    #: Whether the map is linear in its input (affine maps are linear plus a constant).
    linear = True

    @property
    def n_in(self) -> int:
        """Number of input values per sample."""
        return math.prod(self.in_shape)

    @property
    def n_out(self) -> int:
        """Number of output values per sample."""
        return math.prod(self.out_shape)

    def forward(self, x: Tensor) -> Tensor:
        """`(M, *in_shape)` -> `(M, *out_shape)`, as the framework computes it."""
        raise NotImplementedError

    def adjoint(self, g: Tensor) -> Tensor:
        """`(M, *out_shape)` -> `(M, *in_shape)`: the transpose of the linear part."""
        raise NotImplementedError

    def dense(self) -> Tensor | None:
        """The `(n_in, n_out)` matrix of the linear part, or `None` when not worth materialising."""
        return None

    def unit_responses(self, index: Tensor) -> Tensor:
        """`(K, n_out)`: the change in the flat output when the flat input position `index[k]` goes from 0 to 1.

        Example:
            >>> dense = Dense((3,), (2,), torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), None)
            >>> dense.unit_responses(torch.tensor([2]))
            tensor([[3., 6.]])
        """
        reference = self._reference()
        unit = torch.zeros(len(index) + 1, self.n_in, dtype=reference.dtype, device=reference.device)
        unit[torch.arange(1, len(index) + 1), index] = 1
        out = self.forward(unit.reshape(-1, *self.in_shape)).reshape(len(index) + 1, self.n_out)
        return out[1:] - out[:1]

    def _own_tensor(self) -> Tensor | None:
        """The map's first floating tensor (its dtype and device), or `None` for a map without one."""
        return next((value for value in vars(self).values()
                     if isinstance(value, Tensor) and value.is_floating_point()), None)

    def _reference(self) -> Tensor:
        own = self._own_tensor()
        return torch.zeros(()) if own is None else own


@dataclass(frozen=True, eq=False)
class Dense(LinearMap):
    """A fully connected layer, `F.linear(x, weight, bias)` (`nn.Linear`, NIR `Affine` / `Linear`).

    Attributes:
        weight: `(n_out, n_in)`, as `nn.Linear` stores it.
        bias: `(n_out,)` or `None`.
    """

    weight: Tensor = field(default=None)  # type: ignore[assignment]
    bias: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def adjoint(self, g: Tensor) -> Tensor:
        return g @ self.weight

    def dense(self) -> Tensor:
        return self.weight.T

    def unit_responses(self, index: Tensor) -> Tensor:
        return self.weight.T[index]


@dataclass(frozen=True, eq=False)
class MatMul(LinearMap):
    """A fully connected layer stored input-major, `x @ weight + bias` (the reference `LIFNetwork`).

    Attributes:
        weight: `(n_in, n_out)`.
        bias: `(n_out,)` or `None`.
    """

    weight: Tensor = field(default=None)  # type: ignore[assignment]
    bias: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        current = x @ self.weight
        return current if self.bias is None else current + self.bias

    def adjoint(self, g: Tensor) -> Tensor:
        return g @ self.weight.T

    def dense(self) -> Tensor:
        return self.weight

    def unit_responses(self, index: Tensor) -> Tensor:
        return self.weight[index]


@dataclass(frozen=True, eq=False)
class Conv(LinearMap):
    """A convolution, `F.conv1d` / `F.conv2d` with the module's own arguments (zero padding only).

    Attributes:
        weight: `(C_out, C_in / groups, *kernel)`.
        bias: `(C_out,)` or `None`.
        stride, padding, dilation, groups: as `nn.Conv2d` holds them (`padding` may be `"same"`).
    """

    weight: Tensor = field(default=None)  # type: ignore[assignment]
    bias: Tensor | None = None
    stride: tuple[int, ...] = (1,)
    padding: tuple[int, ...] | str = (0,)
    dilation: tuple[int, ...] = (1,)
    groups: int = 1

    @property
    def spatial(self) -> int:
        """1 or 2: the number of spatial dimensions."""
        return self.weight.ndim - 2

    def forward(self, x: Tensor) -> Tensor:
        conv = F.conv1d if self.spatial == 1 else F.conv2d
        return conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def adjoint(self, g: Tensor) -> Tensor:
        transpose = F.conv_transpose1d if self.spatial == 1 else F.conv_transpose2d
        padding = self._numeric_padding()
        # conv_transpose can land one short of the input size when the stride does not divide it.
        natural = transpose(g, self.weight, None, self.stride, padding, 0, self.groups, self.dilation)
        extra = tuple(want - got for want, got in zip(self.in_shape[1:], natural.shape[2:], strict=True))
        if any(extra):
            natural = transpose(g, self.weight, None, self.stride, padding, extra, self.groups, self.dilation)
        return natural

    def _numeric_padding(self) -> tuple[int, ...]:
        if not isinstance(self.padding, str):
            return tuple(self.padding)
        if self.padding == "valid":
            return (0,) * self.spatial
        # "same" (stride 1): total padding d * (k - 1); torch pads the extra one on the right, which the
        # symmetric transpose cannot express, so only odd effective kernels are symmetric.
        kernel = self.weight.shape[2:]
        totals = [d * (k - 1) for d, k in zip(self.dilation, kernel, strict=True)]
        if any(total % 2 for total in totals):
            raise ValueError("padding: the adjoint of a 'same' convolution with an even kernel is asymmetric; "
                             "use explicit integer padding")
        return tuple(total // 2 for total in totals)


@dataclass(frozen=True, eq=False)
class Pool(LinearMap):
    """Average or sum pooling over windows (`nn.AvgPool1d/2d`, NIR `AvgPool2d` / `SumPool2d`).

    Attributes:
        kernel, stride, padding: window size, step and zero padding per spatial dimension.
        mode: `"avg"` (divide by the window's count) or `"sum"`.
        count_include_pad: as `nn.AvgPool2d` (padded zeros counted in the divisor).
        divisor_override: as `nn.AvgPool2d`, or `None`.
    """

    kernel: tuple[int, ...] = (1,)
    stride: tuple[int, ...] = (1,)
    padding: tuple[int, ...] = (0,)
    mode: str = "avg"
    count_include_pad: bool = True
    divisor_override: int | None = None

    def forward(self, x: Tensor) -> Tensor:
        if len(self.kernel) == 1:
            out = F.avg_pool1d(x, self.kernel, self.stride, self.padding, False, self.count_include_pad)
            return out * self.kernel[0] if self.mode == "sum" else out
        divisor = 1 if self.mode == "sum" else self.divisor_override
        return F.avg_pool2d(x, self.kernel, self.stride, self.padding, False, self.count_include_pad, divisor)

    def adjoint(self, g: Tensor) -> Tensor:
        channels = self.in_shape[0]
        ones = g.new_ones(channels, 1, *self.kernel)
        transpose = F.conv_transpose1d if len(self.kernel) == 1 else F.conv_transpose2d
        weighted = g / self._divisors(g)
        natural = transpose(weighted, ones, None, self.stride, self.padding, 0, channels)
        extra = tuple(want - got for want, got in zip(self.in_shape[1:], natural.shape[2:], strict=True))
        return transpose(weighted, ones, None, self.stride, self.padding, extra, channels) if any(extra) else natural

    def _divisors(self, like: Tensor) -> Tensor:
        """Each output window's divisor, `(C, *out_spatial)` broadcastable."""
        if self.mode == "sum":
            return like.new_ones(())
        if self.divisor_override is not None:
            return like.new_full((), float(self.divisor_override))
        if self.count_include_pad:
            return like.new_full((), float(math.prod(self.kernel)))
        ones = like.new_ones(1, 1, *self.in_shape[1:])
        conv = F.conv1d if len(self.kernel) == 1 else F.conv2d
        return conv(ones, like.new_ones(1, 1, *self.kernel), None, self.stride, self.padding)[0]


@dataclass(frozen=True, eq=False)
class Scale(LinearMap):
    """An element-wise (or per-channel broadcast) multiplication `x * scale` (snnTorch's one-to-one
    recurrence `V`, NIR `Scale`).

    Attributes:
        scale: a tensor broadcastable to the per-sample shape (or a 0-d tensor).
    """

    scale: Tensor = field(default=None)  # type: ignore[assignment]

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale

    def adjoint(self, g: Tensor) -> Tensor:
        return g * self.scale


@dataclass(frozen=True, eq=False)
class BatchNorm(LinearMap):
    """Batch normalisation in evaluation mode: `F.batch_norm` with the running statistics.

    Attributes:
        running_mean, running_var: `(C,)`.
        weight, bias: `(C,)` or `None` (no affine part).
        eps: the module's epsilon.
    """

    running_mean: Tensor = field(default=None)  # type: ignore[assignment]
    running_var: Tensor = field(default=None)  # type: ignore[assignment]
    weight: Tensor | None = None
    bias: Tensor | None = None
    eps: float = 1e-5

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def adjoint(self, g: Tensor) -> Tensor:
        gain = torch.rsqrt(self.running_var + self.eps)
        if self.weight is not None:
            gain = gain * self.weight
        return g * gain.reshape(-1, *([1] * (g.ndim - 2)))


@dataclass(frozen=True, eq=False)
class Reshape(LinearMap):
    """A change of per-sample shape (`nn.Flatten`, `nn.Unflatten`, a `view` between two modules)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.out_shape)

    def adjoint(self, g: Tensor) -> Tensor:
        return g.reshape(g.shape[0], *self.in_shape)

    def unit_responses(self, index: Tensor) -> Tensor:
        return torch.eye(self.n_in)[index]


@dataclass(frozen=True, eq=False)
class Identity(LinearMap):
    """The identity (`nn.Identity`, `nn.Dropout` in evaluation mode)."""

    def forward(self, x: Tensor) -> Tensor:
        return x

    def adjoint(self, g: Tensor) -> Tensor:
        return g

    def unit_responses(self, index: Tensor) -> Tensor:
        return torch.eye(self.n_in)[index]


@dataclass(frozen=True, eq=False)
class MaxPool(LinearMap):
    """Max pooling: a selection, not a linear map. Its adjoint routes each output's gradient to the
    input position that won the window, as recorded by `select`.

    Attributes:
        kernel, stride, padding, dilation: as `nn.MaxPool2d` holds them (no `ceil_mode`).
    """

    kernel: tuple[int, ...] = (1,)
    stride: tuple[int, ...] = (1,)
    padding: tuple[int, ...] = (0,)
    dilation: tuple[int, ...] = (1,)

    linear = False

    def forward(self, x: Tensor) -> Tensor:
        pool = F.max_pool1d if len(self.kernel) == 1 else F.max_pool2d
        return pool(x, self.kernel, self.stride, self.padding, self.dilation)

    def select(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """`(output, argmax)`: the argmax as flat positions within each channel's input plane."""
        pool = F.max_pool1d if len(self.kernel) == 1 else F.max_pool2d
        return pool(x, self.kernel, self.stride, self.padding, self.dilation, return_indices=True)

    def adjoint(self, g: Tensor, argmax: Tensor | None = None) -> Tensor:
        """Route `g` through `argmax` (from `select`); without one, every window's first position wins."""
        if argmax is None:
            raise ValueError("argmax: the adjoint of a max pool needs the recorded argmax (MaxPool.select)")
        batch, channels = g.shape[:2]
        plane = math.prod(self.in_shape[1:])
        out = g.new_zeros(batch, channels, plane)
        out.scatter_add_(2, argmax.reshape(batch, channels, -1), g.reshape(batch, channels, -1))
        return out.reshape(batch, *self.in_shape)

    def unit_responses(self, index: Tensor) -> Tensor:
        raise ValueError("a max pool is not linear: one input's effect depends on the others")
