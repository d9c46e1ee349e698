"""NIR zoo entries: graphs built with `nir`'s own node classes (`nir.NIRGraph.from_list`, as NIR's docs
build them) and graphs exported by snnTorch (`snntorch.export_nir.export_to_nir`) and Norse
(`norse.torch.to_nir`), seeded and scaled so that every layer fires on the bundled digits.

A NIR graph has no forward of its own (nirtorch maps no neuron node), so `raw_forward` is the
independent plain loop of `tests/zoo/nir_reference.py` under the discretisation `from_nir` documents.
The hand-built graphs carry their step in `graph.metadata["dt"]` and are given to the explainers bare;
the exported ones are read with `from_nir(graph, dt=...)` at the step their exporter assumes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from sc_neurocore.data import load_digits

from .entry import Built, ZooModel

STEPS = 12
BATCH = 3
DT = 1e-3


def digits(batch: int = BATCH, steps: int = STEPS) -> Tensor:
    """`(batch, steps, 64)` rate-coded 8x8 digit spikes."""
    return load_digits("test", size=8, n_steps=steps).spikes[:batch]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _weights(rng: np.random.Generator, n_out: int, n_in: int, gain: float) -> np.ndarray:
    return (rng.standard_normal((n_out, n_in)) * gain / np.sqrt(n_in)).astype(np.float32)


def _full(shape, value) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


def _lif(shape, tau: float = 5e-3, threshold: float = 0.5):
    import nir

    return nir.LIF(tau=_full(shape, tau), r=_full(shape, 1.0), v_leak=_full(shape, 0.0),
                   v_threshold=_full(shape, threshold), v_reset=_full(shape, 0.0))


def _built(graph, dt: float, input_shape: tuple[int, ...], hidden: list[str], model=None) -> Built:
    from .nir_reference import NirReference, silence_hook

    reference = NirReference(graph, dt, input_shape)
    spikes = digits()
    sizes = _layer_sizes(reference, spikes)
    return Built(graph if model is None else model, reference, spikes,
                 {name: (reference.nodes[name], sizes[name]) for name in hidden}, silence_hook)


def _layer_sizes(reference, spikes: Tensor) -> dict[str, int]:
    """Each node's number of outputs, read from one reference forward."""
    sizes: dict[str, int] = {}
    handles = [module.register_forward_hook(lambda m, a, o, name=name: sizes.__setitem__(name, o[0].numel()))
               for name, module in reference.nodes.items()]
    try:
        reference(spikes[:1])
    finally:
        for handle in handles:
            handle.remove()
    return sizes


def affine_lif_affine_li() -> Built:
    """Affine -> LIF -> Affine -> LI, an LI readout (max over time of its membrane)."""
    import nir

    rng = _rng(0)
    graph = nir.NIRGraph.from_list(nir.Affine(_weights(rng, 16, 64, 3.0), _full(16, 0.1)), _lif(16),
                                   nir.Affine(_weights(rng, 4, 16, 2.0), _full(4, 0.0)),
                                   nir.LI(tau=_full(4, 1e-2), r=_full(4, 1.0), v_leak=_full(4, 0.0)))
    graph.metadata["dt"] = DT
    return _built(graph, DT, (64,), ["lif"])


def conv_sumpool_flatten() -> Built:
    """Conv2d -> LIF -> SumPool2d -> Conv2d -> LIF -> AvgPool2d -> Flatten -> Affine -> LIF on 8x8 images."""
    import nir

    rng = _rng(1)
    conv1 = nir.Conv2d(input_shape=(8, 8), weight=(rng.standard_normal((4, 1, 3, 3)) * 0.8).astype(np.float32),
                       stride=1, padding=1, dilation=1, groups=1, bias=_full(4, 0.05))
    conv2 = nir.Conv2d(input_shape=(4, 4), weight=(rng.standard_normal((6, 4, 3, 3)) * 0.5).astype(np.float32),
                       stride=1, padding=0, dilation=1, groups=1, bias=_full(6, 0.1))
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    average = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    graph = nir.NIRGraph.from_list(conv1, _lif((4, 8, 8), threshold=0.4), pool, conv2, _lif((6, 2, 2), threshold=0.4),
                                   average, nir.Flatten(input_type={"input": np.array([6, 1, 1])}, start_dim=0),
                                   nir.Affine(_weights(rng, 3, 6, 6.0), _full(3, 0.6)), _lif(3, threshold=0.3))
    graph.metadata["dt"] = DT
    return _built(graph, DT, (1, 8, 8), ["lif", "lif_1"])


def cubalif_delay_if() -> Built:
    """Affine -> CubaLIF -> Delay (0-3 steps) -> Linear -> Scale -> IF."""
    import nir

    rng = _rng(2)
    n = 12
    cuba = nir.CubaLIF(tau_syn=_full(n, 2e-3), tau_mem=_full(n, 4e-3), r=_full(n, 2.0), v_leak=_full(n, 0.0),
                       v_threshold=_full(n, 0.5), v_reset=_full(n, 0.0), w_in=_full(n, 2.0))
    delay = nir.Delay(delay=(np.arange(n) % 4 * DT).astype(np.float64))
    graph = nir.NIRGraph.from_list(nir.Affine(_weights(rng, n, 64, 3.0), _full(n, 0.1)), cuba, delay,
                                   nir.Linear(np.abs(_weights(rng, 4, n, 2.0)) - 0.1),
                                   nir.Scale(np.array([1.5, 2.0, 2.5, 3.0], np.float32)),
                                   nir.IF(r=_full(4, 300.0), v_threshold=_full(4, 0.5), v_reset=_full(4, 0.0)))
    graph.metadata["dt"] = DT
    return _built(graph, DT, (64,), ["cubalif", "delay"])


def integrator_threshold_cubali() -> Built:
    """Affine -> I -> Threshold -> Affine -> CubaLI, a CubaLI readout."""
    import nir

    rng = _rng(3)
    n = 10
    graph = nir.NIRGraph.from_list(nir.Affine(_weights(rng, n, 64, 2.0), _full(n, -0.2)), nir.I(r=_full(n, 100.0)),
                                   nir.Threshold(threshold=_full(n, 0.5)),
                                   nir.Affine(_weights(rng, 4, n, 2.0), _full(4, 0.0)),
                                   nir.CubaLI(tau_syn=_full(4, 3e-3), tau_mem=_full(4, 6e-3), r=_full(4, 1.0),
                                              v_leak=_full(4, 0.0), w_in=_full(4, 1.0)))
    graph.metadata["dt"] = DT
    return _built(graph, DT, (64,), ["i", "threshold"])


def snntorch_net(recurrent: bool = False):
    """The snnTorch tutorial MLP with per-neuron beta and threshold (snnTorch#384: scalar ones do not
    export), `RLeaky` hidden layer and `Synaptic` output when `recurrent`; seeded, scaled to fire."""
    import snntorch as snn

    torch.manual_seed(4)
    hidden, out = 16, 4
    beta = torch.linspace(0.8, 0.95, hidden)
    if recurrent:
        neuron1 = snn.RLeaky(beta=beta, threshold=torch.ones(hidden), linear_features=hidden, init_hidden=True)
        neuron2 = snn.Synaptic(alpha=torch.full((out,), 0.6), beta=torch.full((out,), 0.85),
                               threshold=torch.ones(out), init_hidden=True, output=True)
    else:
        neuron1 = snn.Leaky(beta=beta, threshold=torch.ones(hidden), init_hidden=True)
        neuron2 = snn.Leaky(beta=torch.full((out,), 0.9), threshold=torch.ones(out), init_hidden=True, output=True)
    net = torch.nn.Sequential(torch.nn.Linear(64, hidden), neuron1, torch.nn.Linear(hidden, out), neuron2)
    with torch.no_grad():
        net[0].weight.mul_(4.0)
        net[2].weight.mul_(3.0)
        if recurrent:
            neuron1.recurrent.weight.mul_(0.5)
    return net


def snntorch_graph(net):
    """`export_to_nir(net, sample)` with the batch dimension dropped from the exported types."""
    from snntorch.export_nir import export_to_nir

    return export_to_nir(net, torch.zeros(1, 64), ignore_dims=[0])


def from_snntorch_export(recurrent: bool) -> Callable[[], Built]:
    def build() -> Built:
        from sc_neurocore.adapters import from_nir

        graph = snntorch_graph(snntorch_net(recurrent))
        hidden = "1.lif" if recurrent else "1"
        return _built(graph, 1e-4, (64,), [hidden], model=from_nir(graph, dt=1e-4))
    return build


def norse_net():
    """Norse's `SequentialState` of `Linear`, `LIFBoxCell`, `Linear`, `LIFBoxCell` (the node kinds
    `norse.torch.to_nir` exports without loss of kind), seeded and scaled to fire."""
    import norse.torch as norse

    torch.manual_seed(5)
    net = norse.SequentialState(torch.nn.Linear(64, 16), norse.LIFBoxCell(), torch.nn.Linear(16, 4),
                                norse.LIFBoxCell())
    with torch.no_grad():
        net[0].weight.mul_(40.0)
        net[2].weight.mul_(60.0)
    return net


#: Norse writes `tau = dt / tau_mem_inv` (NIR means `1 / tau_mem_inv`), so its graphs' time constants are
#: `dt` times Norse's; read at `dt = NORSE_DT ** 2` they integrate with Norse's own `dt * tau_mem_inv`.
NORSE_DT = 1e-3


def norse_graph(net):
    import norse.torch as norse

    return norse.to_nir(net, torch.zeros(1, 64), dt=NORSE_DT)


def from_norse_export() -> Built:
    from sc_neurocore.adapters import from_nir

    graph = norse_graph(norse_net())
    return _built(graph, NORSE_DT ** 2, (64,), ["1"], model=from_nir(graph, dt=NORSE_DT ** 2))


MODELS: list[ZooModel] = [
    ZooModel("nir-affine-lif-affine-li", "nir", ("Affine", "LIF", "LI"), affine_lif_affine_li, extra="nir"),
    ZooModel("nir-conv-sumpool-flatten", "nir", ("Conv2d", "LIF", "SumPool2d", "AvgPool2d", "Flatten", "Affine"),
             conv_sumpool_flatten, extra="nir"),
    ZooModel("nir-cubalif-delay-if", "nir", ("Affine", "CubaLIF", "Delay", "Linear", "Scale", "IF"), cubalif_delay_if,
             extra="nir"),
    ZooModel("nir-integrator-threshold-cubali", "nir", ("Affine", "I", "Threshold", "CubaLI"),
             integrator_threshold_cubali, extra="nir"),
    ZooModel("nir-snntorch-export", "nir", ("Affine", "LIF"), from_snntorch_export(False), extra="nir"),
    ZooModel("nir-snntorch-rleaky-export", "nir", ("Affine", "LIF", "recurrent Affine", "CubaLIF"),
             from_snntorch_export(True), extra="nir",
             refused={"attribution_linear": "recurrent", "attribution_gated": "recurrent"}),
    ZooModel("nir-norse-export", "nir", ("Affine", "LIF"), from_norse_export, extra="nir"),
]
