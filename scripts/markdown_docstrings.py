#!/usr/bin/env python3
"""Rewrite reST markup in docstrings as the Markdown the docs site renders (mkdocstrings reads Markdown).

A mechanical, line-preserving rewrite, so that it can run over files other people are editing:

* a role such as :class:`~pkg.mod.Name`, :func:`pkg.f` or :meth:`Name.m` becomes `` `Name` ``,
  `` `pkg.f` ``, `` `Name.m` `` (a leading `~` keeps the last component, as Sphinx shows it; an explicit
  title, :func:`text <target>`, keeps the text);
* :math:`x` becomes `$x$`;
* a `.. math::` block becomes a `$$ ... $$` block at the same indentation;
* a paragraph ending in `::` (a reST literal block follows) ends in `:` (the indented block that follows
  is a code block in Markdown too).

Usage: `python scripts/markdown_docstrings.py [--check] PATH...` (folders are searched for `*.py`).
With `--check` nothing is written, and the exit status is 1 when any file still has reST markup.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

#: A reST role with its content: :class:`...`, :py:func:`...`, :math:`...`.
ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|attr|data|exc|obj|const|math|ref|term|doc|any):`([^`]+)`")
#: Anything the site must not show: a role, or a reST directive such as `.. math::`.
RAW_MARKUP = re.compile(
    r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|math|ref|term|doc|any):`"
    r"|^\s*\.\. [a-z-]+::",
    re.MULTILINE,
)
_MATH_DIRECTIVE = re.compile(r"^(\s*)\.\. math::\s*$")
_LITERAL_MARKER = re.compile(r"(?<=[\w)\]`'\"])::(\s*)$")


def _role(match: re.Match[str]) -> str:
    kind, content = match.group(1), match.group(2)
    if kind == "math":
        return f"${content}$"
    titled = re.fullmatch(r"(.+?)\s*<([^>]+)>", content)
    if titled:
        content = titled.group(1)
    elif content.startswith("~"):
        content = content[1:].rsplit(".", 1)[-1]
    return f"`{content.lstrip('!')}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _split_math_blocks(lines: list[str]) -> list[str]:
    """Each `$$` block that holds blank lines (Markdown would end it at the first) as one block per group."""
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        end = None
        if line.strip() == "$$":
            end = next((row for row in range(index + 1, len(lines)) if lines[row].strip() == "$$"), None)
        if end is None:
            out.append(line)
            index += 1
            continue
        margin = line[: _indent(line)]
        groups: list[list[str]] = [[]]
        for row in lines[index + 1 : end]:
            if row.strip():
                groups[-1].append(row)
            elif groups[-1]:
                groups.append([])
        for number, group in enumerate(group for group in groups if group):
            out += ([""] if number else []) + [f"{margin}$$", *group, f"{margin}$$"]
        index = end + 1
    return out


def convert(text: str) -> str:
    """`text` with its reST roles, math directives and literal-block markers written as Markdown.

    Example:
        >>> convert("See :class:`~sc_neurocore.explain.CausalResult` and :math:`\\\\beta^t`.")
        'See `CausalResult` and $\\\\beta^t$.'
        >>> print(convert("Update:\\n\\n.. math::\\n\\n    v' = \\\\beta v\\n\\nDone."))
        Update:
        <BLANKLINE>
        $$
        v' = \\beta v
        $$
        <BLANKLINE>
        Done.
    """
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        directive = _MATH_DIRECTIVE.match(line)
        if directive:
            margin = directive.group(1)
            body_start = index + 1
            while body_start < len(lines) and not lines[body_start].strip():
                body_start += 1
            end = body_start
            while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > len(margin)):
                end += 1
            while end > body_start and not lines[end - 1].strip():  # trailing blank lines stay outside
                end -= 1
            body = lines[body_start:end]
            shift = min((_indent(row) for row in body if row.strip()), default=len(margin)) - len(margin)
            out.append(f"{margin}$$")
            out.extend(row[shift:] if row.strip() else "" for row in body)
            out.append(f"{margin}$$")
            index = end
            continue
        line = ROLE.sub(_role, line)
        following = next((row for row in lines[index + 1 :] if row.strip()), None)
        if following is not None and _indent(following) > _indent(line):
            line = _LITERAL_MARKER.sub(r":\1", line)
        out.append(line)
        index += 1
    return "\n".join(_split_math_blocks(out))


def raw_markup(text: str) -> list[str]:
    """The lines of `text` that still hold reST markup (empty when it is clean Markdown).

    Example:
        >>> raw_markup("fine `x`\\nsee :func:`f`")
        ['see :func:`f`']
    """
    return [line.strip() for line in text.splitlines() if RAW_MARKUP.search(line)]


def python_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="files or folders (searched for *.py)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any reST markup is left")
    args = parser.parse_args(argv)
    dirty = 0
    for path in python_files(args.paths):
        text = path.read_text(encoding="utf-8")
        if args.check:
            for line in raw_markup(text):
                print(f"{path}: {line}")
                dirty = 1
            continue
        converted = convert(text)
        if converted != text:
            path.write_text(converted, encoding="utf-8")
            print(f"rewrote {path}")
    return dirty


if __name__ == "__main__":
    sys.exit(main())
