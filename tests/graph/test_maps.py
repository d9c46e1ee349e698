"""Every graph map: its adjoint is its transpose (<A x, y> = <x, A^T y>), its unit responses are its
forward differences, and its forward is the torch module's own."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sc_neurocore.adapters.torch_maps import Untraceable, torch_map
from sc_neurocore.graph import MaxPool

torch.manual_seed(0)

MODULES = [
    ("linear", nn.Linear(12, 5), (12,)),
    ("linear-nobias", nn.Linear(12, 5, bias=False), (12,)),
    ("conv2d", nn.Conv2d(2, 3, 3), (2, 7, 7)),
    ("conv2d-strided-padded", nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 8, 8)),
    ("conv2d-same", nn.Conv2d(2, 2, 3, padding="same"), (2, 6, 6)),
    ("conv2d-groups-dilation", nn.Conv2d(4, 4, 3, groups=2, dilation=2), (4, 9, 9)),
    ("conv1d", nn.Conv1d(3, 2, 4, stride=2), (3, 11)),
    ("avgpool2d", nn.AvgPool2d(2), (3, 6, 6)),
    ("avgpool2d-padded-nocount", nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 7, 7)),
    ("avgpool1d", nn.AvgPool1d(2), (3, 8)),
    ("flatten", nn.Flatten(), (2, 3, 3)),
    ("dropout", nn.Dropout(0.5).eval(), (6,)),
    ("batchnorm2d", nn.BatchNorm2d(3).eval(), (3, 4, 4)),
]


def _module_map(module, in_shape, dtype=torch.float32):
    with torch.no_grad():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.uniform_(0.5, 2)
        out_shape = tuple(module(torch.zeros(1, *in_shape, dtype=dtype)).shape[1:])
    return torch_map(module, in_shape, out_shape)


@pytest.mark.parametrize("name, module, in_shape", MODULES, ids=[m[0] for m in MODULES])
def test_forward_is_the_module_and_adjoint_is_the_transpose(name, module, in_shape):
    linear_map = _module_map(module, in_shape)
    x = torch.randn(4, *in_shape, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(linear_map.forward(x), module(x))
    x64 = torch.randn(3, *in_shape, dtype=torch.float64)
    y64 = torch.randn(3, *linear_map.out_shape, dtype=torch.float64)
    double = _module_map(module.double(), in_shape, torch.float64)
    zero = double.forward(torch.zeros_like(x64))
    lhs = ((double.forward(x64) - zero) * y64).sum()
    rhs = (x64 * double.adjoint(y64)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10)
    index = torch.tensor([0, double.n_in // 2, double.n_in - 1])
    unit = torch.zeros(len(index), double.n_in, dtype=torch.float64)
    unit[torch.arange(len(index)), index] = 1
    expected = (double.forward(unit.reshape(-1, *in_shape)) - zero[:1]).reshape(len(index), -1)
    assert torch.allclose(double.unit_responses(index).to(torch.float64), expected, atol=1e-12)
    module.float()


def test_dense_matrix_is_the_transposed_weight():
    module = nn.Linear(4, 3)
    assert torch.equal(torch_map(module, (4,), (3,)).dense(), module.weight.detach().T)


def test_max_pool_routes_through_the_recorded_argmax():
    pool = torch_map(nn.MaxPool2d(2), (1, 4, 4), (1, 2, 2))
    assert isinstance(pool, MaxPool)
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out, argmax = pool.select(x)
    assert torch.equal(out, nn.MaxPool2d(2)(x))
    routed = pool.adjoint(torch.ones(1, 1, 2, 2), argmax)
    assert routed.sum() == 4 and routed[0, 0, 1, 1] == 1 and routed[0, 0, 3, 3] == 1
    with pytest.raises(ValueError, match="argmax"):
        pool.adjoint(torch.ones(1, 1, 2, 2))


@pytest.mark.parametrize("module, why", [
    (nn.AvgPool2d(2, ceil_mode=True), "ceil_mode"),
    (nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), "padding_mode"),
    (nn.BatchNorm1d(3, track_running_stats=False), "running statistics"),
    (nn.ReLU(), "not a map the graph knows"),
])
def test_untraceable_modules_say_why(module, why):
    with pytest.raises(Untraceable, match=why):
        torch_map(module, (1, 4, 4), (1, 4, 4))
