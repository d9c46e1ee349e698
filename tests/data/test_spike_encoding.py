"""Rate and latency coding: shapes, determinism, statistics, and the latency rule against a loop."""

import numpy as np
import pytest
import torch

from sc_neurocore.data.encoding import encode, latency_encode, rate_encode


def test_rate_encode_is_binary_deterministic_and_seeded():
    intensities = torch.rand(3, 20, generator=torch.Generator().manual_seed(1))
    first = rate_encode(intensities, n_steps=30, seed=5)
    assert first.shape == (3, 30, 20) and first.dtype == torch.float32
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(first, rate_encode(intensities, n_steps=30, seed=5))
    assert not torch.equal(first, rate_encode(intensities, n_steps=30, seed=6))


def test_rate_encode_fires_at_the_intensity():
    intensities = torch.tensor([[0.0, 0.1, 0.5, 0.9, 1.0]])
    spikes = rate_encode(intensities, n_steps=20000, seed=0)
    rates = spikes[0].mean(dim=0)
    assert rates[0] == 0 and rates[4] == 1
    # 20,000 Bernoulli draws: the standard error is below 0.004.
    assert torch.allclose(rates, intensities[0], atol=0.015)


def test_rate_encode_leaves_global_random_state_alone():
    state = torch.get_rng_state()
    rate_encode(torch.full((2, 4), 0.5), n_steps=10, seed=3)
    assert torch.equal(state, torch.get_rng_state())


def test_latency_encode_matches_a_loop():
    intensities = torch.rand(4, 16, generator=torch.Generator().manual_seed(2))
    intensities[:, :3] = 0.0
    intensities[:, 3] = 1.0
    n_steps = 9
    spikes = latency_encode(intensities, n_steps)
    expected = np.zeros((4, n_steps, 16), dtype=np.float32)
    for b in range(4):
        for i in range(16):
            x = float(intensities[b, i])
            if x > 0:
                expected[b, int(np.round((1 - x) * (n_steps - 1))), i] = 1
    np.testing.assert_array_equal(spikes.numpy(), expected)
    assert spikes.sum(dim=1).max() == 1  # at most one spike per pixel
    assert torch.all(spikes[:, 0, 3] == 1)  # full intensity fires first


def test_encode_dispatches_and_rejects_bad_input():
    intensities = torch.full((2, 5), 0.5)
    assert torch.equal(encode(intensities, 10, "latency"), latency_encode(intensities, 10))
    assert torch.equal(encode(intensities, 10, "rate", seed=4), rate_encode(intensities, 10, seed=4))
    with pytest.raises(ValueError, match="encoding"):
        encode(intensities, 10, "poisson")
    with pytest.raises(ValueError, match="intensities"):
        rate_encode(torch.full((2, 5), 1.5), 10)
    with pytest.raises(ValueError, match="intensities"):
        rate_encode(torch.full((2, 5), float("nan")), 10)
    with pytest.raises(ValueError, match="intensities"):
        latency_encode(torch.full((5,), 0.5), 10)
    with pytest.raises(TypeError, match="intensities"):
        rate_encode(np.full((2, 5), 0.5), 10)
    with pytest.raises(ValueError, match="n_steps"):
        rate_encode(intensities, 0)
    with pytest.raises(TypeError, match="seed"):
        rate_encode(intensities, 5, seed=1.5)
