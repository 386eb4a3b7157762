#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine (DCMTK, a virtualenv with the
# project and its test tools), check style, then run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v storescu >/dev/null || ! command -v echoscu >/dev/null || ! command -v strace >/dev/null; then
  echo "installing DCMTK and strace (Debian packages dcmtk, strace)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dcmtk strace >/dev/null
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "pacs-ingest needs Python 3.11 or newer ($PYTHON is older)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -c deploy/constraints.txt -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .

set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "pytest collected no tests: nothing was checked" >&2
  exit 1
fi
exit "$code"
