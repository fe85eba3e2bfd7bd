#!/usr/bin/env bash
# The test command of the README: install everything the tests need (the pinned requirements, the test tools,
# the project itself with `pip install -e .`), then run the tests.
#   --unit-only         the fast tier: no slow, browser, server or subprocess test (markers: pyproject.toml)
#   --integration-only  the server, browser and subprocess tiers
#   --cov               coverage of the tempo package with pytest-cov, a report in the terminal (and .coverage)
# Every other argument goes to pytest, e.g. `bash tests/run.sh --unit-only -k request -x`.
# TEMPO_TEST_PYTHON=/path/to/python: run with that interpreter's environment as it is (no venv, no install).
set -euo pipefail
cd "$(dirname "$0")/.."
marker="" coverage=() pytest_args=()
for arg in "$@"; do
  case "$arg" in
    --unit-only) tier="not slow and not browser and not server and not subprocess" ;;
    --integration-only) tier="server or browser or subprocess" ;;
    --cov) coverage=(--cov=tempo --cov-report=term); continue ;;
    *) pytest_args+=("$arg"); continue ;;
  esac
  if [ -n "$marker" ] && [ "$marker" != "$tier" ]; then
    echo "error: --unit-only and --integration-only exclude each other" >&2
    exit 2
  fi
  marker="$tier"
done
if [ -n "$marker" ]; then
  pytest_args=(-m "$marker" "${pytest_args[@]+"${pytest_args[@]}"}")
fi
if [ -n "${TEMPO_TEST_PYTHON:-}" ]; then
  python="$TEMPO_TEST_PYTHON"
else
  python3 -m venv .venv
  # The project itself (pyproject.toml), editable, so the tests import the package it installs; and the test tools.
  .venv/bin/pip install -q -e . -r tests/requirements.txt
  # The browser test drives a real headless Chromium through Playwright (never `playwright install`):
  # install the distribution's chromium when it is missing and we are root; without it that test is skipped.
  if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; tests/test_browser.py will be skipped" >&2
  fi
  python=.venv/bin/python
fi
exec "$python" -m pytest tests "${coverage[@]+"${coverage[@]}"}" "${pytest_args[@]+"${pytest_args[@]}"}"
