#!/usr/bin/env bash
# Regenerate deploy/constraints.txt from the virtualenv: every distribution pacs-ingest and its
# test tools run with, pinned. Run after changing a dependency in pyproject.toml (upgrade first
# with `.venv/bin/pip install -U -e '.[test]'`); tests/test_deploy_files.py checks they agree.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Pinned versions of every dependency (runtime and test), made by scripts/lock.sh from the"
  echo "# virtualenv. The Dockerfile and scripts/test.sh install with -c deploy/constraints.txt."
  .venv/bin/pip freeze --exclude-editable --disable-pip-version-check
} > deploy/constraints.txt
