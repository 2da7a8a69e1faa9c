#!/usr/bin/env bash
# The GPU path's check, on a machine with one CUDA GPU, in under 8 minutes (scripts/gpu_check.py).
# `scripts/gpu_check.sh --device cpu` is its CPU dry run. Exit 2: no CUDA GPU; 124: over time.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout "${GPU_CHECK_TIMEOUT:-480}" python scripts/gpu_check.py "$@"
