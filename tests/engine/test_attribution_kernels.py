"""The attribution kernels write the naive expression's bits, once, into a reused buffer or at the spikes only."""

from __future__ import annotations

import pytest
import torch

from sc_neurocore.dynamics import decay_weights
from sc_neurocore.engine.attribution_kernels import linear_attribution, sparse_linear_attribution, write_floor_seconds


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_bits_as_the_naive_expression(dtype):
    generator = torch.Generator().manual_seed(0)
    spikes = (torch.rand(7, 13, 29, generator=generator) < 0.2).to(dtype)
    spikes[0, 0, 0] = 0.5  # graded values too
    weights = decay_weights(13, 0.9, dtype=dtype)
    path = torch.randn(7, 29, generator=generator, dtype=dtype)
    naive = spikes * weights[None, :, None] * path[:, None, :]
    assert torch.equal(linear_attribution(spikes, weights, path), naive)
    buffer = torch.full_like(spikes, float("nan"))
    assert linear_attribution(spikes, weights, path, out=buffer) is buffer and torch.equal(buffer, naive)
    sparse = sparse_linear_attribution(spikes, weights, path)
    assert sparse.value.numel() == int((spikes != 0).sum())
    assert torch.equal(sparse.to_dense(), naive)
    assert torch.equal(sparse.to_dense(out=torch.ones_like(spikes)), naive)


def test_bad_shapes_and_buffers_are_refused():
    spikes = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="spikes, time_weights, path"):
        linear_attribution(spikes, torch.ones(4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="out: expected"):
        linear_attribution(spikes, torch.ones(3), torch.ones(2, 4), out=torch.zeros(2, 3, 4, dtype=torch.float64))


def test_reusing_a_buffer_allocates_nothing_new():
    spikes = (torch.rand(64, 25, 784) < 0.05).float()
    weights, path = decay_weights(25, 0.9), torch.randn(64, 784)
    buffer = torch.empty_like(spikes)
    pointer = buffer.data_ptr()
    for _ in range(3):
        assert linear_attribution(spikes, weights, path, out=buffer).data_ptr() == pointer
    assert write_floor_seconds((64, 25, 784)) > 0
