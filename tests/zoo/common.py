"""What the zoo's model modules share: digit spikes, weight scaling so models fire, brute-force silencing
hooks, and the frameworks' own forward loops (nothing of sc-neurocore in them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


def digit_spikes(n_samples: int = 1, steps: int = 12, size: int = 8, seed: int = 0) -> Tensor:
    """Rate-coded test digits `(B, T, size*size)` from the bundled scikit-learn digits."""
    from sc_neurocore.data import load_digits

    return load_digits("test", size=size, n_steps=steps, seed=seed).spikes[:n_samples].clone()


def seeded(seed: int) -> None:
    torch.manual_seed(seed)


def scale_layers(model: nn.Module, gain: float, kinds: tuple[type, ...] = (nn.Linear, nn.Conv2d, nn.Conv1d)) -> nn.Module:
    """Multiply the weights of every Linear / Conv by `gain` (in place, on a model the zoo just built)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, kinds):
                module.weight.mul_(gain)
    return model


def zero_neuron_hook(n_features: int, neuron: int, *, feed_back: str | None = None) -> Callable:
    """A forward hook forcing flat neuron `neuron` of a layer's emitted spikes to 0 on every call.

    Works for one timestep `(B, *shape)` or a sequence `(T, B, *shape)`, a bare tensor or a tuple with the
    spikes first; `feed_back` names the module attribute holding the spikes a recurrent layer feeds back
    (snnTorch RLeaky's `spk`), which is silenced too.
    """
    def hook(module, args, output):
        spikes = output if isinstance(output, Tensor) else output[0]
        spikes = spikes.clone()
        spikes.reshape(-1, n_features)[:, neuron] = 0
        if feed_back is not None:
            setattr(module, feed_back, spikes)
        return spikes if isinstance(output, Tensor) else (spikes, *output[1:])
    return hook


def snntorch_sequential_forward(net: nn.Sequential, input_shape: Sequence[int], readout: str = "count") -> Callable:
    """snnTorch's documented loop over an `init_hidden` Sequential: reset, one timestep per call, read the
    output layer's `(spk, mem)`."""
    import snntorch.utils

    def forward(spikes: Tensor) -> Tensor:
        batch, steps = spikes.shape[:2]
        snntorch.utils.reset(net)
        # snnTorch 1.0's reset leaves RSynaptic's fed-back `spk` from the previous call (its reset_hidden
        # clears syn and mem only): clear every spike state too, as a careful user would.
        for module in net.modules():
            if isinstance(getattr(module, "spk", None), Tensor):
                module.spk = torch.zeros_like(module.spk)
        spk_rec, mem_rec = [], []
        with torch.no_grad():
            for t in range(steps):
                spk, mem = _spk_mem(net(spikes[:, t].reshape(batch, *input_shape)))
                spk_rec.append(spk.reshape(batch, -1))
                mem_rec.append(mem.reshape(batch, -1))
        return _readout(readout, torch.stack(spk_rec), torch.stack(mem_rec))
    return forward


def _spk_mem(output) -> tuple[Tensor, Tensor]:
    """An output-layer result: `(spk, mem)` or `(spk, syn, mem)`: the spikes and the membrane (last)."""
    return output[0], output[-1]


def _readout(readout: str, spikes: Tensor, membrane: Tensor) -> Tensor:
    if readout == "count":
        return spikes.sum(0)
    if readout == "rate":
        return spikes.mean(0)
    if readout == "final_membrane":
        return membrane[-1]
    return membrane.amax(0)


def time_first_forward(net: nn.Module, input_shape: Sequence[int], readout: str = "count",
                       reset: Callable[[], None] | None = None) -> Callable:
    """A module with its own time loop, called on `(T, B, ...)` as its framework's docs call it; it returns
    a spike record `(T, B, C)` or `(spk_rec, mem_rec, ...)`."""
    def forward(spikes: Tensor) -> Tensor:
        batch, steps = spikes.shape[:2]
        if reset is not None:
            reset()
        with torch.no_grad():
            out = net(spikes.transpose(0, 1).reshape(steps, batch, *input_shape))
        spk = out if isinstance(out, Tensor) else out[0]
        mem = spk if isinstance(out, Tensor) else out[1]
        return _readout(readout, spk.reshape(steps, batch, -1), mem.reshape(steps, batch, -1))
    return forward
