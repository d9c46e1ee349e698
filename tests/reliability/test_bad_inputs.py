"""Every bad input of the table (``cases.py``) gets its documented error, raised by our own code."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

import sc_neurocore
from conftest import require_module

from .cases import CommandFailed, all_cases

CASES = all_cases()
PACKAGE = str(Path(sc_neurocore.__file__).parent)


def test_the_table_is_big_and_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert sum(case.raises is not None and not case.gap for case in CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, request):
    for module, extra in case.needs:
        require_module(module, extra)
    if case.gap:
        request.applymarker(pytest.mark.xfail(strict=True, reason=case.gap))
    if case.raises is None:
        case.check(case.call())
        return
    with pytest.raises(case.raises) as info:
        case.call()
    message = str(info.value)
    for fragment in case.match:
        assert fragment in message, f"{fragment!r} not in the message {message!r}"
    if case.raises is CommandFailed:
        assert info.value.status == 2
        # One error line (after argparse's usage lines, for a malformed flag), never a traceback.
        assert "Traceback" not in message and "error: " in message.splitlines()[-1], message
        return
    # The argument is named first ("name: expected ..."), and the error comes from a check of ours, not
    # from deep inside torch or NumPy: the innermost frame is sc-neurocore code.
    assert message.startswith(case.match[0]), f"message does not start with {case.match[0]!r}: {message!r}"
    innermost = traceback.extract_tb(info.tb)[-1].filename
    assert innermost.startswith(PACKAGE), f"raised from {innermost}, not by sc-neurocore's own checks"
