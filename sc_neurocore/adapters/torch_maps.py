"""Plain torch modules as graph maps: what a traced `nn.Linear`, `nn.Conv2d`, pooling, `nn.Flatten`,
`nn.Dropout` or `nn.BatchNorm2d` (in evaluation mode) becomes.

`torch_map(module, in_shape, out_shape)` gives the map, or raises `Untraceable` saying why the module
cannot be one (a `ceil_mode` pool, a padding mode other than zeros, a batch norm without running
statistics, a module that is not a known linear map). The per-sample shapes come from the traced call.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..graph.maps import BatchNorm, Conv, Dense, Identity, LinearMap, MaxPool, Pool, Reshape


class Untraceable(Exception):
    """A model (or one of its modules) the graph cannot represent exactly; the message says why."""


def _pair(value: Any, spatial: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * spatial


def torch_map(module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> LinearMap:
    """The graph map of one traced torch module.

    Example:
        >>> import torch
        >>> torch_map(torch.nn.Linear(3, 2), (3,), (2,)).n_out
        2
    """
    if isinstance(module, nn.Linear):
        return Dense(in_shape, out_shape, module.weight.detach(), None if module.bias is None else module.bias.detach())
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if module.padding_mode != "zeros":
            raise Untraceable(f"{type(module).__name__} with padding_mode={module.padding_mode!r}")
        return Conv(in_shape, out_shape, module.weight.detach(), None if module.bias is None else module.bias.detach(),
                    tuple(module.stride), module.padding if isinstance(module.padding, str) else tuple(module.padding),
                    tuple(module.dilation), module.groups)
    if isinstance(module, (nn.AvgPool1d, nn.AvgPool2d)):
        spatial = 1 if isinstance(module, nn.AvgPool1d) else 2
        if module.ceil_mode:
            raise Untraceable(f"{type(module).__name__} with ceil_mode=True")
        kernel = _pair(module.kernel_size, spatial)
        stride = _pair(module.stride if module.stride else module.kernel_size, spatial)
        divisor = getattr(module, "divisor_override", None)
        return Pool(in_shape, out_shape, kernel, stride, _pair(module.padding, spatial), "avg",
                    module.count_include_pad, divisor)
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)):
        spatial = 1 if isinstance(module, nn.MaxPool1d) else 2
        if module.ceil_mode or module.return_indices:
            raise Untraceable(f"{type(module).__name__} with ceil_mode or return_indices")
        max_stride: Any = module.stride if module.stride else module.kernel_size
        return MaxPool(in_shape, out_shape, _pair(module.kernel_size, spatial), _pair(max_stride, spatial),
                       _pair(module.padding, spatial), _pair(module.dilation, spatial))
    if isinstance(module, (nn.Flatten, nn.Unflatten)):
        return Reshape(in_shape, out_shape)
    if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)):
        if in_shape != out_shape:
            raise Untraceable(f"{type(module).__name__} changed the shape {in_shape} -> {out_shape}")
        return Identity(in_shape, out_shape)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if module.running_mean is None or module.running_var is None:
            raise Untraceable(f"{type(module).__name__} without running statistics (track_running_stats=False)")
        return BatchNorm(in_shape, out_shape, module.running_mean.detach(), module.running_var.detach(),
                         None if module.weight is None else module.weight.detach(),
                         None if module.bias is None else module.bias.detach(), float(module.eps))
    raise Untraceable(f"{type(module).__name__} is not a map the graph knows (Linear, Conv1d/2d, AvgPool, MaxPool, "
                      "Flatten, Dropout, Identity, BatchNorm)")
