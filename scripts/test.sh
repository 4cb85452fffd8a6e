#!/usr/bin/env bash
# Install (if needed) and run the linter and the whole test suite, browser tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/install-test-tools.sh
.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest -q -n 2 "$@"
