"""Loading models and weights from disk without executing anything from the file.

* Weights: safetensors files, or ``torch.load(..., weights_only=True)`` for ``.pt`` / ``.pth`` files
  (which refuses pickled code: a malicious pickle raises instead of running).
* Models: given as ``package.module:factory``, imported explicitly by name and called -- never unpickled.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor


class UnsafeFileError(ValueError):
    """A weights file that could only be loaded by executing code from it (a pickle)."""


def load_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Tensors of a ``.safetensors`` file or of a ``torch.save``'d state dict (``weights_only=True``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeFileError: the file needs arbitrary code to load.
        ValueError: the file holds something other than a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights: no such file {str(path)!r}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as error:  # SafetensorError is no ValueError: say which argument, in one line
            raise ValueError(f"weights: {str(path)!r} is not a valid safetensors file: {error}") from error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError (and others) for anything not plain tensors
        raise UnsafeFileError(f"weights: {str(path)!r} is not a plain tensor file and was refused "
                              f"(weights_only=True): {error.__class__.__name__}") from error
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise ValueError(f"weights: expected {str(path)!r} to hold a dict of name -> tensor (a state dict)")
    return state


def import_factory(spec: str) -> Callable:
    """``"package.module:factory"`` -> the callable ``factory``, imported explicitly."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"model: expected 'package.module:factory', got {spec!r}")
    module_name, attribute = spec.split(":")
    if not all(part.isidentifier() for part in module_name.split(".")) or not attribute.isidentifier():
        raise ValueError(f"model: expected 'package.module:factory', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        # Only the named module missing is a bad argument; a dependency missing inside it stays an ImportError.
        if error.name is None or not (module_name == error.name or module_name.startswith(error.name + ".")):
            raise
        raise ValueError(f"model: cannot import {module_name!r} (no module named {error.name!r}); expected "
                         "'package.module:factory' with the module on the Python path") from error
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"model: {module_name!r} has no callable {attribute!r}")  # noqa: TRY004 -- a bad name, not a bad type
    return factory
