"""Real handwriting as spikes, and trained networks that read it -- no download.

* `load_digits`: scikit-learn's bundled 8x8 digits (1,797 images) or their 28x28 MNIST-layout
  variant, split into fixed train / test sets and encoded as spikes ``(B, T, N)`` (rate or latency coding).
* `load_mnist`: the same for your own MNIST IDX files.
* `pretrained_network` / `pretrained_weights` / `pretrained_snntorch`: the shipped
  64-32-10 and 784-32-10 LIF networks (``.safetensors`` inside the package), as an
  `LIFNetwork`, as the weight list the tutorial calls ``model_weights``, or as
  an equivalent snnTorch ``nn.Sequential``.
* ``python -m sc_neurocore.data.train``: the script that trained them (see `sc_neurocore.data.train`).

Example (the tutorial's MNIST example on real handwriting):

    from sc_neurocore.data import load_digits, pretrained_network, pretrained_weights
    from sc_neurocore.explain import SpikeAttributor

    test = load_digits("test", size=28)                    # spikes (355, 25, 784)
    test_spikes = test.spikes[0]                           # (25, 784)
    predicted_class = int(pretrained_network(28)(test_spikes[None]).argmax())
    model_weights = pretrained_weights(28)
    result = SpikeAttributor(decay=0.95).attribute(test_spikes, model_weights, output_neuron=predicted_class)
    importance_image = result.spatial_importance().reshape(28, 28)

scikit-learn (``pip install 'spikexplain[data]'``) is needed for the digits, safetensors for the weights,
snnTorch (``[snntorch]``) for the snnTorch model and training.
"""

from .digits import DigitSpikes, digit_images, load_digits, split_indices, upsample_to_mnist
from .encoding import encode, latency_encode, rate_encode
from .mnist import load_mnist, read_idx, read_mnist
from .pretrained import (model_config, pretrained_network, pretrained_snntorch, pretrained_weights,
                         snntorch_sequential, snntorch_spike_counts, to_snntorch)

__all__ = ["DigitSpikes", "load_digits", "digit_images", "split_indices", "upsample_to_mnist", "encode",
           "rate_encode", "latency_encode", "load_mnist", "read_mnist", "read_idx", "model_config",
           "pretrained_network", "pretrained_weights", "pretrained_snntorch", "to_snntorch",
           "snntorch_sequential", "snntorch_spike_counts"]
