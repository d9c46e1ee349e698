"""The Examples in the data package's docstrings run and print what they claim (mnist's need your MNIST files)."""

import doctest
import importlib

import pytest

from conftest import require_module

MODULES = ["sc_neurocore.data.encoding", "sc_neurocore.data.digits",
           "sc_neurocore.data.pretrained", "sc_neurocore.data.train"]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    require_module("sklearn", "data")
    require_module("snntorch", "snntorch")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
