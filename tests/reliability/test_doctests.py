"""The Examples in the docstrings of the modules the reliability work owns run and print what they claim."""

import doctest
import importlib

import pytest

MODULES = ["sc_neurocore.inputs", "sc_neurocore.models", "sc_neurocore.concurrency", "sc_neurocore.atomic",
           "sc_neurocore.distributed.key", "sc_neurocore.distributed.lock", "sc_neurocore.distributed.shards",
           "sc_neurocore.distributed.dataset", "sc_neurocore.distributed.cli"]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    if name == "sc_neurocore.distributed.dataset":
        from conftest import require_module

        require_module("safetensors", "data")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
