#!/usr/bin/env bash
# Builds everything and runs the test suite. Tests labelled `gpu` skip (exit 77) without a GPU;
# every kernel is still compiled with nvcc for sm_90a.
set -euo pipefail
source "$(dirname "$0")/env.sh"

cmake -S "$KG_ROOT" -B "$KG_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKERNELGEN_BUILD_TESTS=ON
cmake --build "$KG_BUILD" -j "$KG_JOBS"
ctest --test-dir "$KG_BUILD" --output-on-failure -j "$KG_JOBS" "$@"
