"""Any torch module mapping a spike sequence to outputs, as a SpikingModel: `from_module`.

For models that are not plain stacks: a user ``nn.Module`` whose ``forward`` runs its own time loop
(the snnTorch tutorials' style), a Norse module that is not a ``SequentialState``, or anything else that
takes the whole spike sequence in one call. The module is called once per forward pass with the whole
sequence, time-first ``(T, B, ...)`` or batch-first ``(B, T, ...)`` as ``time_first`` says (never
guessed), and may return:

* a ``(B, C)`` tensor: already the readout, used as it is (leave ``readout`` unset);
* a spike record ``(T, B, C)`` (or ``(B, T, C)`` when batch-first), reduced by the readout;
* a tuple ``(spk_rec, mem_rec, ...)`` or Norse's ``(z, state)``: spikes first, a membrane record second
  when it has the spikes' shape.

Neuron layers are the snnTorch, Norse and SpikingJelly neuron submodules the model calls (found automatically) or
the submodules named in ``neuron_layers=``; their outputs are read as the frameworks' (a bare spike
tensor, or a tuple with the spikes first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from .hooked import Candidate, Emitted, HookedModel, infer_input_shape
from .readout import check_readout


class ModuleModel(HookedModel):
    """A module called once on the whole sequence, read from what it returns (built by `from_module`)."""

    _readout_from_last_layer = False

    def __init__(self, module: nn.Module, *, time_first: bool, input_shape: Sequence[int], readout: str | None,
                 candidates: Sequence[Candidate], state_buffers: Sequence[tuple[nn.Module, str]] = (),
                 n_steps: int | None = None) -> None:
        if not isinstance(time_first, bool):
            raise TypeError(f"time_first: expected True ((T, B, ...) inputs) or False ((B, T, ...)), got {time_first!r}")
        self._readout_given = readout is not None
        super().__init__(module, candidates, input_shape=input_shape, readout=readout, time_first=time_first,
                         state_buffers=state_buffers, n_steps=n_steps)

    def _choose_readout(self, readout: str | None) -> str:
        return "count" if readout is None else check_readout(readout)

    def _drive(self, inputs: Tensor) -> Any:
        return self.module(inputs)

    def _activity(self, returned: Any, batch: int) -> tuple[Tensor | None, Tensor | None] | Tensor:
        spikes, membrane = returned, None
        if isinstance(returned, (tuple, list)) and returned and isinstance(returned[0], Tensor):
            spikes = returned[0]
            second = returned[1] if len(returned) > 1 else None
            membrane = second if isinstance(second, Tensor) and second.shape == spikes.shape else None
        if not isinstance(spikes, Tensor):
            raise TypeError(f"model: expected it to return a tensor or a tuple starting with one, got "
                            f"{type(returned).__name__}")
        if spikes.ndim == 2 and spikes.shape[0] == batch:
            if self._readout_given:
                raise ValueError(f"readout: {type(self.module).__name__} returns a ({batch}, C) readout itself, so "
                                 f"readout={self.readout!r} has nothing to reduce; leave readout unset")
            return spikes
        if spikes.ndim != 3:
            raise ValueError(f"model: expected it to return (B, C) or a spike record (T, B, C), got shape "
                             f"{tuple(spikes.shape)}")
        if not self.time_first:
            spikes = spikes.transpose(0, 1)
            membrane = None if membrane is None else membrane.transpose(0, 1)
        if spikes.shape[1] != batch:
            raise ValueError(f"model: returned a record of shape {tuple(spikes.shape)} for {batch} samples; with "
                             f"time_first={self.time_first} the batch must be dimension {1 if self.time_first else 0}")
        return spikes, membrane


def split_generic(module: nn.Module, args: tuple, output: Any) -> Emitted:
    """A user-named neuron layer's output: a spike tensor, or a tuple with the spikes first."""
    if isinstance(output, Tensor):
        return Emitted(output, None, lambda spikes: spikes)
    if isinstance(output, tuple) and output and isinstance(output[0], Tensor):
        rest = output[1:]
        last = output[-1]
        membrane = (lambda: last) if isinstance(last, Tensor) and last.shape == output[0].shape and rest else None
        return Emitted(output[0], membrane, lambda spikes: (spikes, *rest))
    raise TypeError(f"model: neuron layer {type(module).__name__} returned {type(output).__name__}; expected a "
                    "spike tensor or a tuple starting with one")


def framework_candidates(model: nn.Module) -> list[Candidate]:
    """The snnTorch, Norse and SpikingJelly neuron submodules of ``model``, for the frameworks already imported."""
    from .norse import neuron_candidates as norse_candidates
    from .snntorch import neuron_candidates as snntorch_candidates
    from .spikingjelly import neuron_candidates as spikingjelly_candidates

    return snntorch_candidates(model) + norse_candidates(model) + spikingjelly_candidates(model)


def from_module(model: nn.Module, *, time_first: bool, neuron_layers: Sequence[str] | None = None,
                readout: str | None = None, input_shape: int | Sequence[int] | None = None,
                n_steps: int | None = None) -> ModuleModel:
    """Wrap any module that maps a whole spike sequence to outputs (see the module docstring).

    Args:
        model: the module; never modified (neuron state and ``training`` flags are restored after calls).
        time_first: ``True`` if ``model`` takes ``(T, B, ...)`` (snnTorch and Norse convention), ``False``
            for ``(B, T, ...)``. Required: a layout is never guessed.
        neuron_layers: names (as in ``model.named_modules()``) of the submodules whose outputs are neuron
            spikes, called once per timestep or once per sequence. Default: every snnTorch / Norse neuron
            submodule the model calls.
        readout: ``"count"`` (default), ``"rate"``, ``"final_membrane"`` or ``"max_membrane"`` for a model
            returning a spike record; leave unset for a model returning ``(B, C)``.
        input_shape: per-timestep input shape; default: the first Linear's ``in_features``.
        n_steps: the number of timesteps the model runs, when its forward only works for one (a loop over
            a fixed `num_steps`); default: found at the first call.

    Returns:
        A `SpikingModel` and ``nn.Module``; ``adapter.module`` is ``model``.

    Example:
        >>> import torch
        >>> class Rate(torch.nn.Module):      # any (T, B, N) -> (T, B, C) module
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc = torch.nn.Linear(6, 2)
        ...     def forward(self, x):
        ...         return (self.fc(x) > 0).float()
        >>> model = from_module(Rate(), time_first=True, neuron_layers=[])
        >>> model.run(torch.ones(4, 10, 6)).shape
        torch.Size([4, 2])
    """
    from .snntorch import state_buffers

    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch nn.Module, got {type(model).__name__}")
    if neuron_layers is None:
        candidates = framework_candidates(model)
    else:
        if isinstance(neuron_layers, str) or not all(isinstance(name, str) for name in neuron_layers):
            raise TypeError(f"neuron_layers: expected a list of submodule names, got {neuron_layers!r}")
        modules = dict(model.named_modules())
        unknown = [name for name in neuron_layers if name not in modules or not name]
        if unknown:
            raise ValueError(f"neuron_layers: {unknown} are not submodules of {type(model).__name__}; its "
                             f"submodules are {[name for name in modules if name]}")
        known = {candidate.name: candidate for candidate in framework_candidates(model)}
        candidates = [known.get(name, Candidate(name, modules[name], split_generic)) for name in neuron_layers]
    return ModuleModel(model, time_first=time_first, input_shape=infer_input_shape(model, input_shape), readout=readout,
                       candidates=candidates, state_buffers=state_buffers(model), n_steps=n_steps)

