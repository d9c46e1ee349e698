"""Griffe extension: read the project's ``Example:`` docstring sections as Google-style examples.

The house style writes ``Example:`` (one example per docstring); griffe reads only ``Examples:`` as an
examples section and would render the doctest lines as Markdown. Renaming the title at load time keeps
the docstrings as they are and renders their doctests as code.
"""

from __future__ import annotations

import re

import griffe

_EXAMPLE_TITLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_TITLE.sub(r"\1Examples:", obj.docstring.value)
