#!/usr/bin/env bash
# The test command of the README: install everything the tests need (the pinned requirements, the test tools,
# the project itself with `pip install -e .`), then run every test. Extra arguments go to pytest, e.g.
# `bash tests/run.sh -m "not slow and not browser"` for the fast tier (markers: pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# The project itself (pyproject.toml), editable, so the tests import the package it installs; and the test tools.
.venv/bin/pip install -q -e . -r tests/requirements.txt
# The browser test drives a real headless Chromium through Playwright (never `playwright install`):
# install the distribution's chromium when it is missing and we are root; without it that test is skipped.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; tests/test_browser.py will be skipped" >&2
fi
exec .venv/bin/python -m pytest tests "$@"
