"""What the perturbation explainers share: how they take a model, a budget and inputs.

`TemporalSaliency` and `CausalImportance`
both run the model on many perturbed copies of the input. They accept the same ``run_fn`` forms and
options, evaluate the unperturbed baseline once per sample, and hand their plans to the engine, which
runs them in as few forward passes as ``max_memory`` allows.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..adapters import as_spiking_model
from ..adapters.hooked import module_fingerprint
from ..adapters.nir import is_nir_graph, nir_fingerprint
from ..engine import ENGINES, Execution, execute
from ..engine.budget import check_max_memory
from ..engine.plans import Silencing, SpikeRemovals
from ..inputs import SpikeBatch, as_choice, as_spikes, check_same_device
from ..graph.model import ModelGraph
from ..protocol import SpikingModel
from .layout import normalise_layout, warn_if_time_first


class Prepared(NamedTuple):
    """A validated call.

    Attributes:
        batch: the spikes `(B, T, N)` and how to give results back.
        model: what the perturbations run on: the model's verified traced graph where it has one, else
            the model itself through the protocol.
        baseline: the unperturbed outputs `(B, C)`.
        engine: `"graph"` (the traced graph) or `"model"` (the model's own forward).
        reason: why the graph was not used (`""` when it was).
        feature_shape: the per-timestep shape the caller's spikes had.
    """

    batch: SpikeBatch
    model: SpikingModel
    baseline: Tensor
    engine: str = "model"
    reason: str = ""
    feature_shape: tuple[int, ...] = ()


class PerturbationExplainer:
    """Base of the explainers that run the model on perturbed copies of the input.

    Args:
        run_fn: a `SpikingModel` (an adapter, an ``LIFNetwork``), an
            ``nn.Module`` or a batched callable ``(B, T, N) -> (B, C)``, or the tutorial's unbatched
            callable ``(T, N) -> (C,)``.
        batched: whether a plain callable is batched. ``None``: modules are batched, other callables are
            not. Never guessed by trial calls.
        max_memory: peak bytes of the perturbed copies and activations in one forward pass; ``None`` picks
            512 MiB on CPU and half the free memory on CUDA.
        progress: show a progress bar (tqdm) while the perturbations run.
        engine: the executor of the perturbations: `"auto"` (the cost model of `sc_neurocore.engine.cost`
            picks), `"event"`, `"incremental"` or `"batched"` (forced; a `ValueError` says why when it
            cannot run). Every executor gives the same outputs outside the reported tie mask.
    """

    def __init__(self, run_fn: Any, *, batched: bool | None = None, max_memory: int | None = None,
                 progress: bool = False, engine: str = "auto") -> None:
        if not callable(run_fn) and not isinstance(run_fn, SpikingModel) and not is_nir_graph(run_fn):
            raise TypeError(f"run_fn: expected a SpikingModel, an nn.Module, a NIR graph or a callable, got "
                            f"{type(run_fn).__name__}")
        if batched is not None and not isinstance(batched, bool):
            raise TypeError(f"batched: expected True, False or None, got {batched!r}")
        self.run_fn = run_fn
        self.batched = batched
        self.max_memory = check_max_memory(max_memory)
        self.progress = bool(progress)
        self.engine = as_choice(engine, ENGINES, "engine")
        self._front_end: tuple[Any, tuple, SpikingModel] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_front_end"] = None  # a copy builds its own (its model is a copy)
        return state

    def _model_for(self, batch: SpikeBatch, input_shape: tuple[int, ...]) -> SpikingModel:
        """`run_fn` as a `SpikingModel`: a bare framework model is wrapped by its front end once, and a NIR
        graph read by `from_nir` once; the result (with the traced graphs and checks it keeps) is reused
        while the model's fingerprint (the front end's `fingerprint`, `module_fingerprint` or
        `nir_fingerprint`) and this call's options are unchanged. A replaced `run_fn`, submodule or
        parameter, an in-place edit of a weight or a changed setting builds a fresh one."""
        run_fn = self.run_fn
        n_inputs = batch.spikes.shape[2]

        def built() -> SpikingModel:
            return as_spiking_model(run_fn, batched=self.batched, n_inputs=n_inputs, numpy_io=batch.numpy,
                                    input_shape=input_shape)

        if isinstance(run_fn, SpikingModel) or not (is_nir_graph(run_fn) or isinstance(run_fn, nn.Module)):
            return built()
        source = nir_fingerprint(run_fn) if is_nir_graph(run_fn) else None  # the source's, not the build's

        def fingerprint(model: SpikingModel) -> tuple:
            return source if source is not None else _fingerprint(model, run_fn)

        options = (self.batched, n_inputs, batch.numpy, input_shape)
        kept = self._front_end
        if kept is not None and kept[0] is run_fn and kept[1] == (options, fingerprint(kept[2])):
            return kept[2]
        model = built()
        self._front_end = (run_fn, (options, fingerprint(model)), model)
        return model

    def _prepare(self, input_spikes: Any, time_first: bool = False) -> Prepared:
        layout = normalise_layout(input_spikes, self.run_fn, time_first=time_first)
        batch = as_spikes(layout.spikes)
        model = self._model_for(batch, layout.feature_shape)
        _check_inputs_fit(model, batch.spikes)
        warn_if_time_first(batch.spikes, model, time_first)
        if isinstance(model, ModelGraph):  # a NIR graph, or a graph built by hand: it is its own reference
            with torch.inference_mode():
                baseline = execute(model, batch.spikes, None, max_memory=self.max_memory)
            return Prepared(batch, model, baseline, "graph", "", layout.feature_shape)
        check_graph = getattr(model, "check_graph", None)
        if callable(check_graph):
            graph, baseline = check_graph(batch.spikes, reuse=True)
            if graph is not None:
                if baseline is None:  # verified on this shape before: the graph's own (recorded) forward
                    with torch.inference_mode():
                        baseline = execute(graph, batch.spikes, None, max_memory=self.max_memory)
                return Prepared(batch, graph, baseline, "graph", "", layout.feature_shape)
            return Prepared(batch, model, baseline, "model", str(getattr(model, "graph_reason", "")),
                            layout.feature_shape)
        with torch.inference_mode():
            baseline = execute(model, batch.spikes, None, max_memory=self.max_memory)
        return Prepared(batch, model, baseline, "model", "", layout.feature_shape)

    def _run(self, prepared: Prepared, plan: SpikeRemovals | Silencing,
             columns: Tensor | None = None) -> tuple[Tensor, Execution]:
        """Outputs ``(P, C)`` of every row of ``plan``, and which executor ran them (with its tie mask);
        given ``columns`` (one per row), only ``outputs[p, columns[p]]`` is computed (the rest is NaN)."""
        with torch.inference_mode():
            return execute(prepared.model, prepared.batch.spikes, plan, max_memory=self.max_memory,
                           n_outputs=prepared.baseline.shape[1], progress=self.progress, engine=self.engine,
                           return_info=True, columns=columns)


def _fingerprint(model: SpikingModel, module: nn.Module) -> tuple:
    """What a kept front end needs unchanged: its own `fingerprint` (neuron state left out), else the module's."""
    own = getattr(model, "fingerprint", None)
    return own() if callable(own) else module_fingerprint(module)


def _check_inputs_fit(model: SpikingModel, spikes: Tensor) -> None:
    expected = model.n_inputs
    if expected != spikes.shape[2]:
        raise ValueError(f"input_spikes: the model takes {expected} input neurons, got {spikes.shape[2]}")
    # The module that holds the weights: the model itself, or the nn.Module a plain-callable wrapper calls.
    module = next((m for m in (model, getattr(model, "fn", None), getattr(model, "module", None))
                   if isinstance(m, nn.Module)), None)
    tensor = None if module is None else next(itertools.chain(module.parameters(), module.buffers()), None)
    check_same_device(spikes, None if tensor is None else tensor.device, "input_spikes")


def described(result: Any, prepared: Prepared, execution: Execution | None = None,
              tie_mask: Tensor | None = None) -> Any:
    """`result` with how it was computed.

    - `engine`: what the perturbations ran on, `"graph"` (the model's traced graph, verified bit for bit)
      or `"model"` (the model's own forward); `engine_reason` says why not the graph;
    - `executor`: which executor ran them (`"event"`, `"incremental"` or `"batched"`) and
      `executor_reason` why (the cost model's estimates, or a forced choice);
    - `tie_mask`: where the result may differ between executors or batch sizes because a spike decision
      sat within rounding of its threshold (`None`: nowhere reported);
    - `feature_shape`: the per-timestep shape of the caller's spikes.
    """
    result.engine = prepared.engine
    result.engine_reason = prepared.reason
    result.executor = None if execution is None else execution.engine
    result.executor_reason = "" if execution is None else execution.reason
    result.tie_mask = tie_mask
    result.feature_shape = prepared.feature_shape
    return result


def target_column(outputs: Tensor, targets: Tensor) -> Tensor:
    """``outputs[p, targets[p]]`` for every row: ``(P,)``."""
    return outputs.gather(1, targets[:, None])[:, 0]
