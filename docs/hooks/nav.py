"""mkdocs hook: drop nav entries whose page is not in the docs folder.

Several pages are written by other parts of the project (benchmarks, FPGA guide, ...). Listing them in
``mkdocs.yml`` keeps the site's order in one place; this hook keeps a strict build green while a page
does not exist yet, instead of failing on a dangling nav entry.
"""

from __future__ import annotations

from pathlib import Path


def _exists(target: str, docs_dir: Path) -> bool:
    """A link, a page of docs/, or a notebook (added from notebooks/ by docs/hooks/generated.py)."""
    if "://" in target or (docs_dir / target).is_file():
        return True
    return target.startswith("notebooks/") and (docs_dir.parent / target).is_file()


def _existing(entries, docs_dir: Path):
    kept = []
    for entry in entries:
        if isinstance(entry, dict):
            ((title, target),) = entry.items()
            if isinstance(target, list):
                children = _existing(target, docs_dir)
                if children:
                    kept.append({title: children})
            elif _exists(str(target), docs_dir):
                kept.append(entry)
        elif _exists(str(entry), docs_dir):
            kept.append(entry)
    return kept


def on_config(config, **kwargs):
    if config.get("nav"):
        config["nav"] = _existing(config["nav"], Path(config["docs_dir"]))
    return config
