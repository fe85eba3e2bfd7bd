#!/usr/bin/env bash
# The test command of the README: install everything the tests need, then run them.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -r tests/requirements.txt
exec .venv/bin/python -m pytest tests "$@"
