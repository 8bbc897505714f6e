#!/usr/bin/env bash
# Times kernelgen and kernelgend: hit path without the daemon, a cached request answered by the
# daemon, 200 parallel requests. Prints Markdown tables for docs/benchmarks.md.
#   bench/daemon_bench.sh [build-dir] [runs] [parallel]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
exec python3 "$root/bench/daemon_bench.py" "$build/wrapper/kernelgen" --runs "${2:-30}" --parallel "${3:-200}"
