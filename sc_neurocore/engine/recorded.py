"""One recorded forward per explainer call: the baseline, the compiled check and the executors' start share it.

An explainer first asks `sc_neurocore.engine.execute` for the unperturbed outputs, then for the
perturbed ones, on the same spikes tensor. `recorded` runs the compiled stack's recorded forward once,
keeps it for that tensor (one slot: the most recent spikes, held by a weak reference and checked against
the tensor's version counter, so an in-place change or a new tensor is never served stale), and returns
it to both calls.

The check that the compiled stack reproduces the model bit for bit needs the model's own forward too. It
runs once per model, input shape, dtype and device, and again whenever a parameter of the model changes
(the parameters' storage and version counters are part of the key), as the traced graph's check is cached.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..adapters.hooked import module_fingerprint

from .incremental import Baseline, CompiledStack, stack_forward

logger = logging.getLogger(__name__)


class Recording(NamedTuple):
    """A verified compiled stack and its recorded forward on some spikes.

    Attributes:
        stack: the compiled network.
        baseline: its recorded forward (``None`` when the samples were too many to record at once).
        outputs: ``(B, C)`` the unperturbed outputs (bit for bit the model's own), when recorded.
        same_ops: whether the stack's membranes matched the model's own recorded membranes bit for bit too
            (checked once with the outputs): its ops are then the model's, and the event engine may anchor
            its tight test on the recorded forward (`sc_neurocore.engine.event_tables.layer_tables`).
    """

    stack: CompiledStack
    baseline: Baseline | None
    outputs: Tensor | None
    same_ops: bool = False


#: model -> {check key: whether its membranes matched too (`Recording.same_ops`)}.
_checked: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()
_last: dict[str, Any] = {}


def _module(model) -> nn.Module | None:
    return next((m for m in (model, getattr(model, "module", None)) if isinstance(m, nn.Module)), None)


def _parameter_key(model) -> tuple:
    module = _module(model)
    return () if module is None else module_fingerprint(module)


def check_key(model, spikes: Tensor) -> tuple:
    """What a cached compiled check depends on: input shape, dtype, device and the model's parameters,
    submodules and settings (`sc_neurocore.adapters.hooked.module_fingerprint`)."""
    return (tuple(spikes.shape), spikes.dtype, str(spikes.device), _parameter_key(model))


def forget() -> None:
    """Drop every cached check and recording (tests use it to count forwards).

    Example:
        >>> forget()
    """
    _checked.clear()
    _last.clear()


def cached(model, spikes: Tensor) -> Recording | None:
    """The recording of ``model`` on exactly this ``spikes`` tensor (same object, same version), if kept."""
    if not _last:
        return None
    ref, version, model_ref, key, recording = (_last[k] for k in ("spikes", "version", "model", "key", "recording"))
    if ref() is spikes and version == spikes._version and model_ref() is model and key == check_key(model, spikes):
        return recording
    return None


def recorded(model, spikes: Tensor, stack: CompiledStack, record: bool, max_memory: int | None) -> Recording | None:
    """``stack``'s recording on ``spikes`` if it reproduces ``model`` bit for bit (else ``None``).

    Args:
        model: the spiking model.
        spikes: ``(B, T, N)``.
        stack: ``compile_model(model)``.
        record: keep the recorded baseline (the caller checked that it fits the budget); otherwise the
            check runs in chunks and only the outputs are kept.
        max_memory: the budget of a chunked check.

    Returns:
        A `Recording`, or ``None`` when the stack does not reproduce the model.

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> x = (torch.rand(2, 10, 8) < 0.3).float()
        >>> recorded(net, x, compile_model(net), True, None).outputs.shape
        torch.Size([2, 2])
    """
    hit = cached(model, spikes)
    if hit is not None and (hit.baseline is not None or not record):
        return hit
    key = check_key(model, spikes)
    try:
        known = key in _checked.get(model, {})
        same_ops = bool(_checked.get(model, {}).get(key, False))
    except TypeError:  # a model that cannot be weakly referenced: check every time
        known = same_ops = False
    dtype = stack.layers[0].weight.dtype
    baseline: Baseline | None
    outputs: Tensor | None
    with torch.no_grad():
        if known and record and _checked_membranes(model, key):
            forward = stack_forward(stack, spikes.to(dtype), record=True)
            assert isinstance(forward, tuple)
            outputs, baseline = forward
        else:
            checked, baseline = verify(model, spikes, stack, record=record, max_memory=max_memory)
            if not checked:
                return None
            # Without a recording (too many samples at once) the outputs are not needed: plan calls replay
            # from per-chunk recordings, and baseline calls take the model's own chunked forward.
            outputs = None if baseline is None else readout_outputs(stack, baseline, spikes.shape[1])
            same_ops = baseline is not None and same_membranes(model, spikes, stack, baseline)
            try:
                previous = _checked.get(model, {}).get(key)
                _checked.setdefault(model, {})[key] = same_ops if baseline is not None else previous
            except TypeError:
                pass
    recording = Recording(stack, baseline, outputs, same_ops)
    try:
        _last.update(spikes=weakref.ref(spikes), version=spikes._version, model=weakref.ref(model), key=key,
                     recording=recording)
    except TypeError:
        _last.clear()
    return recording


def _checked_membranes(model, key: tuple) -> bool:
    """Whether the cached check of ``key`` compared membranes (``None``: only outputs, no recording then)."""
    try:
        return _checked.get(model, {}).get(key) is not None
    except TypeError:
        return False


def same_membranes(model, spikes: Tensor, stack: CompiledStack, baseline: Baseline) -> bool:
    """Whether ``model.record(spikes)`` gives every layer the stack's recorded membranes bit for bit.

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.engine.incremental import stack_forward
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> x = (torch.rand(2, 10, 8) < 0.3).float()
        >>> same_membranes(net, x, compile_model(net), stack_forward(compile_model(net), x, record=True)[1])
        True
    """
    try:
        with torch.no_grad():
            layers = model.record(spikes).layers
    except Exception:  # noqa: BLE001 (a model that cannot record: the tight test is not used)
        return False
    if len(layers) != len(stack.layers):
        return False
    for layer, state in zip(layers, baseline.states, strict=True):
        membrane = getattr(layer, "membrane", None)
        mine = getattr(state, "membrane", None)
        if not isinstance(membrane, Tensor) or not isinstance(mine, Tensor) or membrane.shape != mine.shape \
                or membrane.dtype != mine.dtype or not torch.equal(membrane, mine):
            return False
    return True


def verify(model, spikes: Tensor, stack: CompiledStack, record: bool,
           max_memory: int | None = None) -> tuple[bool, Baseline | None]:
    """Whether ``stack`` reproduces ``model.run(spikes)`` bit for bit, and its recorded forward if ``record``.

    Without ``record`` the check runs in chunks of samples that keep the model's and the stack's forwards
    within ``max_memory`` together (``None``: the automatic budget); with ``record`` the caller has made sure
    the whole batch fits.

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> verify(net, (torch.rand(2, 10, 8) < 0.3).float(), compile_model(net), False)[0]
        True
    """
    from .budget import bytes_per_row, default_max_memory, workable_budget

    if stack.layers[0].weight.device != spikes.device:
        return False, None
    n_samples, n_steps, n_inputs = spikes.shape
    if record:
        chunk = max(1, n_samples)
    else:
        budget = default_max_memory(spikes.device) if max_memory is None else max_memory
        sample_bytes = 2 * bytes_per_row(n_steps, n_inputs, stack.sizes, spikes.element_size())
        chunk = workable_budget(budget, sample_bytes, "the compiled check (one sample per chunk)") // sample_bytes
    baseline = None
    dtype = stack.layers[0].weight.dtype
    with torch.no_grad():
        for start in range(0, n_samples, chunk):
            rows = spikes[start:start + chunk]
            expected = model.run(rows)
            compiled = stack_forward(stack, rows.to(dtype), record=record)
            got, baseline = compiled if isinstance(compiled, tuple) else (compiled, None)
            if not isinstance(expected, Tensor) or expected.shape != got.shape or expected.dtype != got.dtype \
                    or not torch.equal(expected, got):
                logger.info("%s: the compiled stack does not reproduce the model's forward bit for bit; using "
                            "the generic batched path", type(model).__name__)
                return False, None
    return True, baseline


def compiled_stack(model) -> CompiledStack | None:
    """The compiled stack of ``model``: a traced graph lowered (`sc_neurocore.engine.lower`), anything else by
    `sc_neurocore.engine.compile.compile_model` (structure only; `verify` checks it)."""
    from ..graph import ModelGraph

    if isinstance(model, ModelGraph):
        from .lower import to_compiled_stack

        return to_compiled_stack(model)
    from .compile import compile_model

    return compile_model(model)


def readout_outputs(stack: CompiledStack, baseline: Baseline, n_steps: int) -> Tensor:
    """The outputs ``(B, C)`` of a recorded forward (its readout accumulator after the last step)."""
    from .incremental import readout_finish

    return readout_finish(stack.readout, baseline.partial_outputs[:, n_steps], n_steps)
