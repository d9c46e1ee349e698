"""The run key: everything the results of a dataset run depend on, and nothing else.

A folder of shards is resumed only by a run with the same key, so a shard is never reused for another
model, dataset, method or target. The key is a SHA-256 over named fields, kept beside it in every receipt
so that a refusal can say *what* changed:

* ``model``: the model's full definition (`model_fingerprint`): its class, every tensor of its
  ``state_dict``, every public attribute of it and of its submodules that is not a tensor of the state
  dict (an LIFNetwork's reset, an adapter's readout, input shape and layout, a Norse cell's parameters),
  what a ``run_key_fields()`` method returns, and the framework versions;
* ``method``, ``options`` (the explainer's settings that change results), ``targets``, ``layer``;
* ``n_samples``, ``shard_size`` (shard boundaries), ``shard_format``, ``device_type`` (CPU and CUDA may
  round differently);
* ``batch_size`` only for gated attribution, whose float32 products may round by a row's place in a
  batch; every other method gives bit-identical per-sample results whatever the batching.

The dataset's content is keyed per shard (a digest of its input samples, in every receipt; see
`sc_neurocore.distributed.dataset.content_digest`). ``max_memory``, ``num_workers`` and ``progress``
cannot change a result and are not part of the key.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import sys
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

#: Frameworks whose version is part of a model's key when the model uses them.
FRAMEWORKS = ("torch", "snntorch", "norse", "spikingjelly", "nir")


def _tensor_digest(tensor: Tensor) -> str:
    tensor = tensor.detach()
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    if tensor.device.type == "meta":
        return f"meta|{tensor.dtype}|{tuple(tensor.shape)}"
    tensor = tensor.cpu().contiguous()
    digest = hashlib.sha256(f"{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-able description of an attribute value that identifies it (tensors by digest)."""
    if depth > 4:
        return type(value).__qualname__
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if not math.isfinite(value) else float(value)
    if isinstance(value, Tensor):
        return {"tensor": _tensor_digest(value)}
    if isinstance(value, np.ndarray):
        return {"array": _tensor_digest(torch.from_numpy(np.ascontiguousarray(value)))}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple of parameters (Norse's `p`)
        return {"type": type(value).__qualname__,
                **{name: _plain(getattr(value, name), depth + 1) for name in value._fields}}
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, nn.Module):
        return {"module": type(value).__qualname__}  # walked on its own
    qualname = getattr(value, "__qualname__", None) or getattr(type(value), "__qualname__", "?")
    module = getattr(value, "__module__", None) or type(value).__module__
    return f"{module}.{qualname}"


def _module_fields(module: Any) -> dict:
    """Public attributes of one module that the state dict does not hold, plus its ``run_key_fields()``."""
    fields = {}
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or name == "training" or isinstance(value, nn.Module):
            continue
        fields[name] = _plain(value)
    hook = getattr(module, "run_key_fields", None)
    if callable(hook):
        fields["run_key_fields"] = _plain(hook())
    return fields


def _frameworks(model: Any) -> dict[str, str]:
    used = {"torch"}
    modules = model.modules() if isinstance(model, nn.Module) else [model]
    for module in modules:
        root = type(module).__module__.split(".")[0]
        if root in FRAMEWORKS:
            used.add(root)
    versions = {}
    for name in sorted(used):
        try:
            versions[name] = torch.__version__ if name == "torch" else importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = getattr(sys.modules.get(name), "__version__", "unknown")
    return versions


def model_fingerprint(model: Any) -> dict:
    """What identifies ``model``'s forward: class, state dict digest, attributes and framework versions.

    Works on any ``nn.Module`` (walked submodule by submodule) and on a plain callable (its class and
    public attributes only: what a closure captures cannot be seen, so give such a model a
    ``run_key_fields()`` method returning what its results depend on).

    Example:
        >>> from sc_neurocore.models import LIFNetwork
        >>> a = LIFNetwork([torch.ones(3, 2)], threshold=0.5)
        >>> b = LIFNetwork([torch.ones(3, 2)], threshold=0.6)
        >>> model_fingerprint(a)["state_sha256"] == model_fingerprint(b)["state_sha256"]
        False
    """
    info: dict[str, Any] = {"class": f"{type(model).__module__}.{type(model).__qualname__}",
                            "frameworks": _frameworks(model)}
    if isinstance(model, nn.Module):
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(f"{name}|{_tensor_digest(tensor)}|".encode())
        info["state_sha256"] = digest.hexdigest()
        attributes = {name or ".": _module_fields(module) for name, module in model.named_modules()}
    else:
        attributes = {".": _module_fields(model)}
    text = json.dumps(attributes, sort_keys=True, default=str)
    info["attributes_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return info


def run_key(fields: dict) -> dict:
    """``{"run_key": sha256 over the fields, "fields": the fields}`` (fields must be JSON-able).

    Example:
        >>> run_key({"method": "saliency"})["run_key"][:12]
        'f2287cfa9e60'
    """
    text = json.dumps(fields, sort_keys=True, allow_nan=False)
    return {"run_key": hashlib.sha256(text.encode()).hexdigest(), "fields": json.loads(text)}


def describe_changes(changed: tuple[str, ...] | list[str]) -> str:
    """Human words for key fields that differ.

    Example:
        >>> describe_changes(["model", "targets"])
        'the model (its weights, neuron parameters, readout or framework), the targets'
    """
    words = {"model": "the model (its weights, neuron parameters, readout or framework)",
             "content": "the dataset's samples", "options": "the explainer's options",
             "format_version": "the shard format of sc-neurocore",
             "sparse": "the shard layout (sparse=True keeps the scores at the input spikes only)"}
    return ", ".join(words.get(name, f"the {name}") for name in changed)
