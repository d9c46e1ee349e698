"""Every `Example:` in every docstring of the package runs and prints what it claims.

One test per module, found by walking the package, so a new module is covered without being listed. A
module whose optional extra is missing (its import, or one of its examples, raises `MissingExtraError`)
skips with the install command -- and fails in CI, where every extra is installed (`SC_NEUROCORE_REQUIRE_TOOLS=1`).
"""

import doctest
import importlib
import pkgutil

import pytest

import sc_neurocore
from conftest import _missing
from sc_neurocore.extras import MissingExtraError


class _Runner(doctest.DocTestRunner):
    """Remembers an example that stopped on a missing extra, so that the test skips (fails in CI) with it."""

    missing: MissingExtraError | None = None

    def report_unexpected_exception(self, out, test, example, exc_info):
        if isinstance(exc_info[1], MissingExtraError) and self.missing is None:
            self.missing = exc_info[1]
        super().report_unexpected_exception(out, test, example, exc_info)


MODULES = sorted(info.name for info in pkgutil.walk_packages(sc_neurocore.__path__, "sc_neurocore."))


def test_every_module_is_found():
    assert {
        "sc_neurocore.plot",
        "sc_neurocore.dynamics",
        "sc_neurocore.explain.results",
        "sc_neurocore.fpga.spec",
        "sc_neurocore.engine.incremental",
    } <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_examples(name, tmp_path, monkeypatch):
    try:
        module = importlib.import_module(name)
    except MissingExtraError as error:
        _missing(f"{name}'s optional dependency", str(error).split("install it with: ")[-1])
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = _Runner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        if test.examples and (test.filename or "").endswith(".py"):
            runner.run(test)
    results = runner.summarize(verbose=False)
    if runner.missing is not None:
        _missing(f"an optional dependency of {name}'s examples", str(runner.missing).split("install it with: ")[-1])
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples in {name} failed (see above)"
