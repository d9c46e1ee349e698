#!/usr/bin/env bash
# Installs what the docs site's build and checks need from Debian's packages (needs root or sudo): npm, which
# installs the bundled KaTeX (package.json), and Chromium, in which tests/test_docs.py checks that the
# equations render. Skips the download when both are there.
set -euo pipefail
if command -v npm >/dev/null && { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }; then
    echo "docs tools already installed"
    exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends npm chromium
