"""snnTorch models, built as snnTorch's tutorials and docs build them (seeded and scaled so they fire on
the bundled 8x8 digits)."""

from __future__ import annotations

import torch
from torch import nn

from .common import (
    digit_spikes,
    scale_layers,
    seeded,
    snntorch_sequential_forward,
    time_first_forward,
    zero_neuron_hook,
)
from .entry import Built, ZooModel

STEPS = 12


def _mlp(neuron, *, hidden: int = 24, gain: float = 6.0, seed: int = 0, readout: str = "count",
         **wrap) -> Built:
    import snntorch as snn  # noqa: F401 -- the neuron factory uses it

    seeded(seed)
    net = nn.Sequential(nn.Linear(64, hidden), neuron(hidden, False), nn.Linear(hidden, 10), neuron(10, True))
    scale_layers(net, gain)
    from sc_neurocore.adapters import from_snntorch

    model = from_snntorch(net, readout=readout, **wrap) if readout != "count" or wrap else net
    return Built(model, snntorch_sequential_forward(net, (64,), readout), digit_spikes(1, STEPS),
                 {"1": (net[1], hidden)})


def _leaky(**options):
    import snntorch as snn

    return lambda n, output: snn.Leaky(beta=options.pop("beta", 0.85), init_hidden=True, output=output, **options)


def sequential_leaky() -> Built:
    import snntorch as snn

    return _mlp(lambda n, out: snn.Leaky(beta=0.85, init_hidden=True, output=out))


def sequential_reset(mechanism: str):
    def build() -> Built:
        import snntorch as snn

        return _mlp(lambda n, out: snn.Leaky(beta=0.85, init_hidden=True, output=out, reset_mechanism=mechanism))
    return build


def sequential_same_step_reset() -> Built:
    import snntorch as snn

    return _mlp(lambda n, out: snn.Leaky(beta=0.85, init_hidden=True, output=out, reset_delay=False))


def sequential_graded() -> Built:
    import snntorch as snn

    return _mlp(lambda n, out: snn.Leaky(beta=0.85, init_hidden=True, output=out, graded_spikes_factor=0.5))


def sequential_learned() -> Built:
    """Learned per-neuron beta and threshold (tensors of one value per neuron)."""
    import snntorch as snn

    def neuron(n, out):
        generator = torch.Generator().manual_seed(n)
        beta = 0.6 + 0.35 * torch.rand(n, generator=generator)
        threshold = 0.7 + 0.6 * torch.rand(n, generator=generator)
        return snn.Leaky(beta=beta, threshold=threshold, learn_beta=True, learn_threshold=True, init_hidden=True,
                         output=out)
    return _mlp(neuron)


def sequential_synaptic() -> Built:
    import snntorch as snn

    return _mlp(lambda n, out: snn.Synaptic(alpha=0.7, beta=0.85, init_hidden=True, output=out), gain=4.0)


def sequential_alpha() -> Built:
    import snntorch as snn

    return _mlp(lambda n, out: snn.Alpha(alpha=0.8, beta=0.7, init_hidden=True, output=out), gain=8.0)


def sequential_membrane(readout: str):
    def build() -> Built:
        import snntorch as snn

        return _mlp(lambda n, out: snn.Leaky(beta=0.85, init_hidden=True, output=out), readout=readout)
    return build


def _recurrent(kind: str, all_to_all: bool) -> Built:
    import snntorch as snn

    seeded(1)
    cls = snn.RLeaky if kind == "rleaky" else snn.RSynaptic
    extra = {"alpha": 0.7} if kind == "rsynaptic" else {}
    hidden = cls(beta=0.85, linear_features=24, all_to_all=all_to_all, init_hidden=True, **extra) if all_to_all \
        else cls(beta=0.85, V=0.5, all_to_all=False, init_hidden=True, **extra)
    net = nn.Sequential(nn.Linear(64, 24), hidden, nn.Linear(24, 10), snn.Leaky(beta=0.85, init_hidden=True,
                                                                                output=True))
    scale_layers(net, 5.0)
    return Built(net, snntorch_sequential_forward(net, (64,)), digit_spikes(1, STEPS), {"1": (net[1], 24)},
                 lambda module, j: zero_neuron_hook(24, j, feed_back="spk"))


def csnn_tutorial7() -> Built:
    """snnTorch tutorial 7's convolutional SNN on a real digit: Conv2d, MaxPool2d, Leaky, ... Flatten, Linear."""
    import snntorch as snn

    seeded(2)
    net = nn.Sequential(nn.Conv2d(1, 6, 3), nn.MaxPool2d(2), snn.Leaky(beta=0.8, init_hidden=True),
                        nn.Conv2d(6, 8, 2), snn.Leaky(beta=0.8, init_hidden=True), nn.Flatten(),
                        nn.Linear(8 * 2 * 2, 10), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    scale_layers(net, 5.0)
    spikes = digit_spikes(1, STEPS).reshape(1, STEPS, 1, 8, 8)
    return Built(net, snntorch_sequential_forward(net, (1, 8, 8)), spikes,
                 {"2": (net[2], 6 * 3 * 3), "4": (net[4], 8 * 2 * 2)})


def csnn_avgpool_batchnorm() -> Built:
    import snntorch as snn

    seeded(3)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.AvgPool2d(2),
                        snn.Leaky(beta=0.8, init_hidden=True), nn.Dropout(0.2), nn.Flatten(), nn.Linear(4 * 4 * 4, 10),
                        snn.Leaky(beta=0.8, init_hidden=True, output=True))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.1, 0.1)
        net[1].running_var.uniform_(0.5, 1.5)
    scale_layers(net, 4.0)
    net.eval()
    spikes = digit_spikes(1, STEPS).reshape(1, STEPS, 1, 8, 8)
    return Built(net, snntorch_sequential_forward(net, (1, 8, 8)), spikes, {"3": (net[3], 4 * 4 * 4)})


class Tutorial5(nn.Module):
    """snnTorch tutorial 5's `Net`: its own loop over the time-first input, explicit membranes."""

    def __init__(self, record_membrane: bool = True, num_steps: int | None = None) -> None:
        import snntorch as snn

        super().__init__()
        self.fc1, self.lif1 = nn.Linear(64, 24), snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = nn.Linear(24, 10), snn.Leaky(beta=0.9)
        self.record_membrane, self.num_steps = record_membrane, num_steps

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk2_rec, mem2_rec = [], []
        for step in range(self.num_steps if self.num_steps is not None else x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        if self.record_membrane:
            return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)
        return torch.stack(spk2_rec, dim=0)


def tutorial5(record_membrane: bool, fixed_steps: bool = False):
    def build() -> Built:
        seeded(4)
        net = scale_layers(Tutorial5(record_membrane, STEPS if fixed_steps else None), 6.0)
        return Built(net, time_first_forward(net, (64,)), digit_spikes(1, STEPS), {"lif1": (net.lif1, 24)})
    return build


def leaky_parallel() -> Built:
    import snntorch as snn

    seeded(5)
    net = nn.Sequential(snn.LeakyParallel(64, 24, beta=0.85), snn.LeakyParallel(24, 10, beta=0.85))
    with torch.no_grad():
        for layer in net:
            layer.rnn.weight_ih_l0.mul_(6.0)

    def forward(spikes):
        with torch.no_grad():
            return net(spikes.transpose(0, 1)).sum(0)
    return Built(net, forward, digit_spikes(1, STEPS), {"0": (net[0], 24)})


MODELS = [
    ZooModel("snntorch-sequential-leaky", "snntorch", ("Linear", "Leaky"), sequential_leaky, "snntorch"),
    ZooModel("snntorch-reset-zero", "snntorch", ("Linear", "Leaky[zero]"), sequential_reset("zero"), "snntorch"),
    ZooModel("snntorch-reset-none", "snntorch", ("Linear", "Leaky[none]"), sequential_reset("none"), "snntorch"),
    ZooModel("snntorch-same-step-reset", "snntorch", ("Linear", "Leaky[reset_delay=False]"),
             sequential_same_step_reset, "snntorch"),
    ZooModel("snntorch-graded-spikes", "snntorch", ("Linear", "Leaky[graded]"), sequential_graded, "snntorch"),
    ZooModel("snntorch-learned-beta-threshold", "snntorch", ("Linear", "Leaky[per-neuron]"), sequential_learned,
             "snntorch"),
    ZooModel("snntorch-synaptic", "snntorch", ("Linear", "Synaptic"), sequential_synaptic, "snntorch"),
    ZooModel("snntorch-alpha", "snntorch", ("Linear", "Alpha"), sequential_alpha, "snntorch", engine="model"),
    ZooModel("snntorch-final-membrane", "snntorch", ("Linear", "Leaky"), sequential_membrane("final_membrane"),
             "snntorch"),
    ZooModel("snntorch-max-membrane", "snntorch", ("Linear", "Leaky"), sequential_membrane("max_membrane"),
             "snntorch"),
    ZooModel("snntorch-rleaky-linear", "snntorch", ("Linear", "RLeaky"), lambda: _recurrent("rleaky", True),
             "snntorch", refused={"attribution_linear": "recurren", "attribution_gated": "recurren"}),
    ZooModel("snntorch-rleaky-one-to-one", "snntorch", ("Linear", "RLeaky[V]"), lambda: _recurrent("rleaky", False),
             "snntorch", refused={"attribution_linear": "recurren", "attribution_gated": "recurren"}),
    ZooModel("snntorch-rsynaptic", "snntorch", ("Linear", "RSynaptic"), lambda: _recurrent("rsynaptic", True),
             "snntorch", refused={"attribution_linear": "recurren", "attribution_gated": "recurren"}),
    ZooModel("snntorch-tutorial7-csnn", "snntorch", ("Conv2d", "MaxPool2d", "Leaky", "Flatten", "Linear"),
             csnn_tutorial7, "snntorch"),
    ZooModel("snntorch-csnn-avgpool-batchnorm", "snntorch",
             ("Conv2d", "BatchNorm2d", "AvgPool2d", "Leaky", "Dropout", "Flatten", "Linear"), csnn_avgpool_batchnorm,
             "snntorch"),
    ZooModel("snntorch-tutorial5-module", "snntorch", ("Linear", "Leaky", "own loop"), tutorial5(True), "snntorch"),
    ZooModel("snntorch-tutorial5-spikes-only", "snntorch", ("Linear", "Leaky", "own loop"), tutorial5(False),
             "snntorch"),
    ZooModel("snntorch-fixed-num-steps", "snntorch", ("Linear", "Leaky", "own loop"), tutorial5(True, True),
             "snntorch"),
    ZooModel("snntorch-leaky-parallel", "snntorch", ("LeakyParallel",), leaky_parallel, "snntorch", engine="model",
             refused={"attribution_linear": "no traced graph", "attribution_gated": "no traced graph"}),
]
