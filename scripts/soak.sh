#!/usr/bin/env bash
# Long runs of the model-based tests (not part of CI): the FUSE mount over SeaweedFS with
# another client's changes, OBJMOUNT_MODEL_STEPS steps (default 10,000), and the
# engine models on the in-memory store. Prints the steps it ran.
set -euo pipefail
cd "$(dirname "$0")/.."
export OBJMOUNT_MODEL_STEPS="${OBJMOUNT_MODEL_STEPS:-10000}"
exec .venv/bin/python -m pytest -p no:cacheprovider --timeout 0 -s -q tests/test_fuse_model.py "$@"
