"""mkdocs hook: KaTeX, from the npm package `katex` (package.json), copied into the site so equations render
offline -- the site loads nothing from a CDN.

`npm ci` (run by `make docs` and `make test`) puts the package in `node_modules/`; the build stops with
that command when it is missing, instead of publishing pages whose equations do not render.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "node_modules" / "katex" / "dist"
#: Where the files land in the site (mkdocs.yml's extra_javascript / extra_css name them there).
TARGET = "assets/katex"
FILES = ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js")


def on_config(config, **kwargs):
    missing = [name for name in FILES if not (DIST / name).is_file()]
    if missing:
        raise PluginError(
            f"KaTeX is not installed ({', '.join(missing)} missing from {DIST}); run `npm ci` in "
            f"{ROOT} (make docs does)"
        )
    return config


def on_post_build(config, **kwargs):
    target = Path(config["site_dir"]) / TARGET
    for name in FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(DIST / name, target / name)
    shutil.copytree(DIST / "fonts", target / "fonts", dirs_exist_ok=True)
