#!/usr/bin/env bash
# Installs everything, checks style and types, and runs the whole test suite against a
# real SeaweedFS server and real FUSE mounts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests
.venv/bin/mypy
.venv/bin/pytest -q -p no:cacheprovider "$@"
