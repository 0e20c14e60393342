#!/usr/bin/env bash
# The one test command: install (with the development tools, no demo), check the code with ruff,
# then run the test suite. Extra arguments go to pytest, e.g. installer/test.sh -k ipc -x
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DESCRIBE_SCREEN_VENV:-$REPO/.venv}"

"$REPO/installer/install.sh" --dev --no-run
cd "$REPO"
echo "==> Checking the code with ruff"
"$VENV/bin/ruff" check .
echo "==> Running the tests"
exec "$VENV/bin/python" -m pytest -q "$@"
